//! Where the injector can run: a node that will take a pod and an image already on that node (the
//! cluster has no registry yet, so nothing can be pulled). Decided from node status alone, as a
//! pure function, so every rule is tested without a cluster.

use k8s_openapi::api::core::v1::Node;

/// A node and an image on it the injector pod can borrow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The node to pin the pod to.
    pub node: String,
    /// An image name the node's runtime has (`registry.k8s.io/pause:3.10`).
    pub image: String,
    /// Its size on the node, bytes (smaller images start faster).
    pub size: i64,
}

/// Why no placement exists, with what was looked at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Every node was ruled out.
    #[error("no node can run the injector: {}", reasons.join("; "))]
    NoSchedulableNode {
        /// `node: why`, one per node.
        reasons: Vec<String>,
    },
    /// Nodes can take a pod, but none lists an image it could borrow.
    #[error(
        "no usable image on any schedulable node ({nodes}): set spec.injector.image to an image present on a node"
    )]
    NoUsableImage {
        /// The schedulable nodes, comma-separated.
        nodes: String,
    },
    /// `spec.injector.image` is on no schedulable node.
    #[error("spec.injector.image {image} is on no schedulable node ({nodes})")]
    ImageNotPresent {
        /// The image asked for.
        image: String,
        /// The schedulable nodes, comma-separated.
        nodes: String,
    },
}

/// Every placement the injector could use, best first: on nodes that take pods (Ready, not
/// cordoned, no `NoSchedule`/`NoExecute` taint, of `architecture` when given), images by size,
/// smallest first, with pause images (made to be borrowed) ahead of others of similar size. With
/// `image` set (`spec.injector.image`) only that image is considered.
pub fn placements(
    nodes: &[Node],
    architecture: Option<&str>,
    image: Option<&str>,
) -> Result<Vec<Placement>, PlacementError> {
    let mut reasons = Vec::new();
    let mut schedulable = Vec::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        match unschedulable_because(node, architecture) {
            Some(reason) => reasons.push(format!("{name}: {reason}")),
            None => schedulable.push((name, node)),
        }
    }
    if schedulable.is_empty() {
        if reasons.is_empty() {
            reasons.push("the cluster has no nodes".to_owned());
        }
        return Err(PlacementError::NoSchedulableNode { reasons });
    }
    let mut found = Vec::new();
    for (name, node) in &schedulable {
        let images = node.status.as_ref().and_then(|status| status.images.as_ref());
        for listed in images.into_iter().flatten() {
            let size = listed.size_bytes.unwrap_or(i64::MAX);
            for candidate in listed.names.iter().flatten() {
                let wanted = match image {
                    Some(image) => candidate == image,
                    None => is_borrowable(candidate),
                };
                if wanted {
                    found.push(Placement {
                        node: name.clone(),
                        image: candidate.clone(),
                        size,
                    });
                    // One name per image is enough: they all start the same bytes.
                    break;
                }
            }
        }
    }
    let nodes = schedulable
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if found.is_empty() {
        return Err(match image {
            Some(image) => PlacementError::ImageNotPresent {
                image: image.to_owned(),
                nodes,
            },
            None => PlacementError::NoUsableImage { nodes },
        });
    }
    found.sort_by(|a, b| {
        let rank = |placement: &Placement| (!placement.image.contains("pause"), placement.size / (1 << 20));
        rank(a)
            .cmp(&rank(b))
            .then(a.size.cmp(&b.size))
            .then(a.node.cmp(&b.node))
            .then(a.image.cmp(&b.image))
    });
    Ok(found)
}

/// Why `node` cannot take the injector, if it cannot.
fn unschedulable_because(node: &Node, architecture: Option<&str>) -> Option<String> {
    if node.spec.as_ref().and_then(|spec| spec.unschedulable) == Some(true) {
        return Some("cordoned".to_owned());
    }
    let taints = node.spec.as_ref().and_then(|spec| spec.taints.as_ref());
    if let Some(taint) = taints
        .into_iter()
        .flatten()
        .find(|taint| matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute"))
    {
        return Some(format!("tainted {}:{}", taint.key, taint.effect));
    }
    let status = node.status.as_ref();
    let ready = status
        .and_then(|status| status.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|condition| condition.type_ == "Ready" && condition.status == "True");
    if !ready {
        return Some("not Ready".to_owned());
    }
    let node_architecture = status
        .and_then(|status| status.node_info.as_ref())
        .map(|info| info.architecture.as_str());
    match (architecture, node_architecture) {
        (Some(wanted), Some(actual)) if wanted != actual => {
            Some(format!("architecture {actual}, not {wanted}"))
        }
        _ => None,
    }
}

/// Whether an image name can be used to start the injector: a tagged name (a digest-only name is
/// fine for the runtime but says nothing), and not one served by a Jackal registry (which may be
/// the thing that is down).
fn is_borrowable(name: &str) -> bool {
    let from_node_port = name
        .strip_prefix("127.0.0.1:")
        .or_else(|| name.strip_prefix("localhost:"))
        .is_some();
    !from_node_port && !name.contains('@')
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerImage, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(name: &str, images: &[(&[&str], i64)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..NodeCondition::default()
                }]),
                node_info: Some(NodeSystemInfo {
                    architecture: "amd64".into(),
                    ..NodeSystemInfo::default()
                }),
                images: Some(
                    images
                        .iter()
                        .map(|(names, size)| ContainerImage {
                            names: Some(names.iter().map(|name| (*name).to_owned()).collect()),
                            size_bytes: Some(*size),
                        })
                        .collect(),
                ),
                ..NodeStatus::default()
            }),
        }
    }

    const PAUSE: &[&str] = &[
        "registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a",
        "registry.k8s.io/pause:3.10",
    ];

    #[test]
    fn small_pause_images_come_first_and_digest_only_names_are_skipped() {
        let nodes = [node(
            "one",
            &[
                (&["docker.io/library/nginx:1.27"], 70_000_000),
                (&["docker.io/library/busybox:1.36"], 2_000_000),
                (PAUSE, 320_000),
                (&["127.0.0.1:31999/docker.io/library/registry:3.1.2"], 9_000_000),
            ],
        )];
        let found = placements(&nodes, Some("amd64"), None).unwrap();
        let images: Vec<_> = found.iter().map(|placement| placement.image.as_str()).collect();
        assert_eq!(
            images,
            [
                "registry.k8s.io/pause:3.10",
                "docker.io/library/busybox:1.36",
                "docker.io/library/nginx:1.27"
            ],
            "pause first, then by size; never an image from a Jackal NodePort registry"
        );
        assert_eq!(found[0].node, "one");
    }

    #[test]
    fn cordoned_tainted_unready_and_foreign_nodes_are_ruled_out_with_reasons() {
        let mut cordoned = node("cordoned", &[(PAUSE, 1)]);
        cordoned.spec = Some(NodeSpec {
            unschedulable: Some(true),
            ..NodeSpec::default()
        });
        let mut tainted = node("tainted", &[(PAUSE, 1)]);
        tainted.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: "node-role.kubernetes.io/control-plane".into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            }]),
            ..NodeSpec::default()
        });
        let mut unready = node("unready", &[(PAUSE, 1)]);
        if let Some(status) = unready.status.as_mut() {
            status.conditions = Some(Vec::new());
        }
        let mut arm = node("arm", &[(PAUSE, 1)]);
        if let Some(info) = arm.status.as_mut().and_then(|status| status.node_info.as_mut()) {
            info.architecture = "arm64".into();
        }
        let error = placements(&[cordoned, tainted, unready, arm.clone()], Some("amd64"), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no node can run the injector: cordoned: cordoned; tainted: tainted node-role.kubernetes.io/control-plane:NoSchedule; unready: not Ready; arm: architecture arm64, not amd64"
        );
        // A PreferNoSchedule taint does not stop it, nor does the architecture when none is asked.
        let mut preferring = node("preferring", &[(PAUSE, 1)]);
        preferring.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: "busy".into(),
                effect: "PreferNoSchedule".into(),
                ..Taint::default()
            }]),
            ..NodeSpec::default()
        });
        assert_eq!(placements(&[preferring, arm], None, None).unwrap().len(), 2);
        assert_eq!(
            placements(&[], None, None).unwrap_err().to_string(),
            "no node can run the injector: the cluster has no nodes"
        );
    }

    #[test]
    fn without_a_usable_image_the_error_says_what_to_set() {
        let nodes = [node("one", &[(&["127.0.0.1:31999/app:1"], 5)]), node("two", &[])];
        assert_eq!(
            placements(&nodes, None, None).unwrap_err().to_string(),
            "no usable image on any schedulable node (one, two): set spec.injector.image to an image present on a node"
        );
    }

    #[test]
    fn the_spec_image_is_used_only_where_it_is() {
        let nodes = [
            node("one", &[(PAUSE, 320_000)]),
            node(
                "two",
                &[(&["docker.io/library/busybox:1.36"], 2_000_000), (PAUSE, 320_000)],
            ),
        ];
        let found = placements(&nodes, None, Some("docker.io/library/busybox:1.36")).unwrap();
        assert_eq!(
            found,
            [Placement {
                node: "two".into(),
                image: "docker.io/library/busybox:1.36".into(),
                size: 2_000_000
            }]
        );
        assert_eq!(
            placements(&nodes, None, Some("quay.io/missing:1"))
                .unwrap_err()
                .to_string(),
            "spec.injector.image quay.io/missing:1 is on no schedulable node (one, two)"
        );
    }
}
