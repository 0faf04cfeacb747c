//! Every object bootstrap puts into the cluster, built from the spec and what earlier steps chose:
//! the payload and injector ConfigMaps, the injector pod and its Service, and the permanent
//! registry (its Secret, Deployment and Service). Pure: the steps apply them, the tests read them.

use std::collections::BTreeMap;

use jackal_crds::init::RegistryStorage;
use jackal_crds::names::{AGENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, REGISTRY_PULL_SECRET};
use jackal_crds::state::JackalState;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::seed::Placement;
use crate::registry::DockerConfig;

/// Label on every bootstrap object that is removed once the registry runs (the payload and
/// injector ConfigMaps, the injector pod and Service): cleanup deletes by it, so nothing leaks
/// even after a crash.
pub const INJECTOR_LABEL: &str = "jackal.dev/injector";
/// Value of [`INJECTOR_LABEL`].
pub const INJECTOR_VALUE: &str = "seed";
/// Name of the injector's pod, Service and binary ConfigMap, and its `app` label.
pub const INJECTOR: &str = "jackal-injector";
/// Name of the registry's Deployment, Service and Secret, and its `app` label.
pub const REGISTRY: &str = "jackal-registry";
/// The port the injector and the registry listen on in their pods.
pub const REGISTRY_PORT: i32 = 5000;
/// Where the payload chunks are mounted in the injector pod.
const PAYLOAD_DIRECTORY: &str = "/payload";
/// Where the injector binary is mounted.
const INJECTOR_DIRECTORY: &str = "/injector";
/// The account distribution's image runs as (and owns its storage as).
const REGISTRY_USER: i64 = 65532;

/// An object description that does not fit its type: a bug here, reported rather than panicking.
#[derive(Debug, thiserror::Error)]
#[error("failed to build the {kind} {name}: {reason}")]
pub struct ObjectError {
    kind: &'static str,
    name: String,
    reason: String,
}

impl ObjectError {
    /// The `kind` named `name` could not be built, for `reason`.
    pub(super) fn new(kind: &'static str, name: &str, reason: String) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            reason,
        }
    }
}

/// `value` as the typed object `kind` named `name`.
pub(super) fn typed<T: DeserializeOwned>(
    kind: &'static str,
    name: &str,
    value: serde_json::Value,
) -> Result<T, ObjectError> {
    serde_json::from_value(value).map_err(|source| ObjectError::new(kind, name, source.to_string()))
}

/// Labels of the objects cleanup removes, plus `extra`.
fn seed_labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (INJECTOR_LABEL.to_owned(), INJECTOR_VALUE.to_owned()),
    ]);
    labels.extend(
        extra
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
    );
    labels
}

/// An immutable ConfigMap holding `bytes` under the key `name` (a payload chunk or the injector).
pub fn binary_config_map(namespace: &str, name: &str, bytes: Vec<u8>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(seed_labels(&[])),
            ..ObjectMeta::default()
        },
        binary_data: Some(BTreeMap::from([(name.to_owned(), ByteString(bytes))])),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}

/// The injector pod: pinned to the placement's node, in the image borrowed there (never pulled),
/// running the injector binary from its ConfigMap on the payload chunks.
pub fn injector_pod(
    namespace: &str,
    placement: &Placement,
    chunks: &[String],
    payload_digest: &str,
) -> Result<Pod, ObjectError> {
    let sources: Vec<_> = chunks
        .iter()
        .map(|name| json!({"configMap": {"name": name}}))
        .collect();
    typed(
        "Pod",
        INJECTOR,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": INJECTOR, "namespace": namespace, "labels": seed_labels(&[("app", INJECTOR), (AGENT_LABEL, "ignore")])},
            "spec": {
                "nodeName": placement.node,
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "enableServiceLinks": false,
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "injector",
                    "image": placement.image,
                    "imagePullPolicy": "Never",
                    "command": [format!("{INJECTOR_DIRECTORY}/{INJECTOR}"), "--dir", PAYLOAD_DIRECTORY,
                                "--chunks", chunks.len().to_string(), payload_digest],
                    "ports": [{"containerPort": REGISTRY_PORT}],
                    "readinessProbe": {"httpGet": {"path": "/v2/", "port": REGISTRY_PORT}, "periodSeconds": 1},
                    // Why it refused a payload reaches the pod's status, and so the step's error.
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "resources": {"requests": {"cpu": "50m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                        "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "injector", "mountPath": INJECTOR_DIRECTORY},
                                     {"name": "payload", "mountPath": PAYLOAD_DIRECTORY}],
                }],
                "volumes": [
                    {"name": "injector", "configMap": {"name": INJECTOR, "defaultMode": 0o555}},
                    {"name": "payload", "projected": {"sources": sources}},
                ],
            },
        }),
    )
}

/// A NodePort Service for the pods labelled `app`, on `node_port` (allocated when `None`).
pub fn node_port_service(
    namespace: &str,
    name: &str,
    app: &str,
    node_port: Option<i32>,
    seed: bool,
) -> Result<Service, ObjectError> {
    let labels = if seed {
        seed_labels(&[("app", app)])
    } else {
        BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
            ("app".to_owned(), app.to_owned()),
        ])
    };
    let mut port = json!({"port": REGISTRY_PORT, "targetPort": REGISTRY_PORT});
    if let Some(node_port) = node_port {
        port["nodePort"] = json!(node_port);
    }
    typed(
        "Service",
        name,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"type": "NodePort", "selector": {"app": app}, "ports": [port]},
        }),
    )
}

/// distribution's configuration: filesystem storage, htpasswd auth, deletes allowed (for
/// `package remove`), the shared HTTP secret so replicas accept each other's upload state.
pub fn registry_config(http_secret: &str) -> String {
    format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog: {{disabled: true}}\nstorage:\n  filesystem: {{rootdirectory: /var/lib/registry}}\n  delete: {{enabled: true}}\nhttp:\n  addr: :{REGISTRY_PORT}\n  secret: {http_secret}\nauth:\n  htpasswd:\n    realm: jackal-registry\n    path: /etc/distribution/htpasswd\n"
    )
}

/// The registry's Secret: its configuration and htpasswd file.
pub fn registry_secret(namespace: &str, config: &str, htpasswd: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(REGISTRY.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY_VALUE.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            ("config.yml".to_owned(), ByteString(config.as_bytes().to_vec())),
            ("htpasswd".to_owned(), ByteString(htpasswd.as_bytes().to_vec())),
        ])),
        ..Secret::default()
    }
}

/// The `kubernetes.io/dockerconfigjson` Secret workloads in `namespace` pull from the registry
/// with (the read-only account). Bootstrap puts it into Jackal's namespace, the pull-Secret
/// controller into every rewritten one.
pub fn registry_pull_secret(namespace: &str, state: &JackalState) -> Secret {
    let registry = &state.registry;
    let config = DockerConfig::with_basic(
        &registry.address,
        &registry.pull_username,
        registry.pull_password.expose(),
    );
    Secret {
        metadata: ObjectMeta {
            name: Some(REGISTRY_PULL_SECRET.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY_VALUE.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(config.to_json()),
        )])),
        ..Secret::default()
    }
}

/// The registry's PersistentVolumeClaim (named like the registry), from
/// `spec.registry.internal.storage`: blobs then outlive the registry's pods, so a re-seeded or
/// rescheduled registry still holds every image pushed to it.
pub fn registry_claim(
    namespace: &str,
    storage: &RegistryStorage,
) -> Result<PersistentVolumeClaim, ObjectError> {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    });
    if let Some(class) = &storage.storage_class_name {
        spec["storageClassName"] = json!(class);
    }
    typed(
        "PersistentVolumeClaim",
        REGISTRY,
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": REGISTRY, "namespace": namespace,
                         "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, "app": REGISTRY}},
            "spec": spec,
        }),
    )
}

/// The registry Deployment running `image` (first from the seed registry, then from itself),
/// `replicas` pods, storing blobs in the claim `claim` or in an emptyDir (whose content a new pod
/// does not inherit: bootstrap pushes the seed images again after the switch). The Secret's checksum
/// is in the pod template, so new credentials roll the pods.
pub fn registry_deployment(
    namespace: &str,
    image: &str,
    replicas: i32,
    claim: Option<&str>,
    secret_checksum: &str,
) -> Result<Deployment, ObjectError> {
    let storage = match claim {
        Some(claim) => json!({"name": "storage", "persistentVolumeClaim": {"claimName": claim}}),
        None => json!({"name": "storage", "emptyDir": {}}),
    };
    typed(
        "Deployment",
        REGISTRY,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": REGISTRY, "namespace": namespace,
                         "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, "app": REGISTRY}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": REGISTRY}},
                // Always a new pod before the old one goes: a registry that changes its image
                // pulls the new one from the old pod (when it becomes self-hosted, from itself).
                // A ReadWriteOnce claim allows this on one node.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": {"app": REGISTRY, AGENT_LABEL: "ignore"},
                                 "annotations": {"jackal.dev/secret-checksum": secret_checksum}},
                    "spec": {
                        "priorityClassName": "system-node-critical",
                        "automountServiceAccountToken": false,
                        "enableServiceLinks": false,
                        "imagePullSecrets": [{"name": REGISTRY_PULL_SECRET}],
                        "securityContext": {"runAsNonRoot": true, "runAsUser": REGISTRY_USER,
                                            "runAsGroup": REGISTRY_USER, "fsGroup": REGISTRY_USER,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "registry",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["serve", "/etc/distribution/config.yml"],
                            "ports": [{"containerPort": REGISTRY_PORT}],
                            // `/` answers 200 without credentials; `/v2/` demands them.
                            "readinessProbe": {"httpGet": {"path": "/", "port": REGISTRY_PORT}, "periodSeconds": 2},
                            "livenessProbe": {"httpGet": {"path": "/", "port": REGISTRY_PORT}, "periodSeconds": 10,
                                              "failureThreshold": 6},
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "2Gi"}},
                            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                                "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/distribution", "readOnly": true},
                                             {"name": "storage", "mountPath": "/var/lib/registry"}],
                        }],
                        "volumes": [{"name": "config", "secret": {"secretName": REGISTRY}}, storage],
                    },
                },
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use jackal_crds::names::NAMESPACE;

    use super::*;

    #[test]
    fn payload_config_maps_are_immutable_labelled_for_cleanup_and_hold_one_key() {
        let config_map = binary_config_map(NAMESPACE, "payload-00003", vec![1, 2, 3]);
        assert_eq!(config_map.immutable, Some(true));
        let labels = config_map.metadata.labels.unwrap();
        assert_eq!(labels[INJECTOR_LABEL], INJECTOR_VALUE);
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
        assert_eq!(config_map.binary_data.unwrap()["payload-00003"].0, [1, 2, 3]);
    }

    #[test]
    fn the_injector_pod_borrows_the_image_on_its_node_and_never_pulls() {
        let placement = Placement {
            node: "node-a".into(),
            image: "registry.k8s.io/pause:3.10".into(),
            size: 1,
        };
        let chunks = vec!["payload-00000".to_owned(), "payload-00001".to_owned()];
        let pod = injector_pod(NAMESPACE, &placement, &chunks, "sha256:abc").unwrap();
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-a"));
        let container = &spec.containers[0];
        assert_eq!(container.image.as_deref(), Some("registry.k8s.io/pause:3.10"));
        assert_eq!(container.image_pull_policy.as_deref(), Some("Never"));
        assert_eq!(
            container.command.clone().unwrap(),
            [
                "/injector/jackal-injector",
                "--dir",
                "/payload",
                "--chunks",
                "2",
                "sha256:abc"
            ]
        );
        let volumes = spec.volumes.unwrap();
        let projected = volumes[1].projected.as_ref().unwrap().sources.as_ref().unwrap();
        assert_eq!(projected.len(), 2);
        assert_eq!(pod.metadata.labels.unwrap()[INJECTOR_LABEL], INJECTOR_VALUE);
    }

    #[test]
    fn services_take_a_fixed_node_port_or_let_kubernetes_choose() {
        let fixed = node_port_service(NAMESPACE, REGISTRY, REGISTRY, Some(31999), false).unwrap();
        let port = &fixed.spec.unwrap().ports.unwrap()[0];
        assert_eq!(port.node_port, Some(31999));
        assert!(!fixed.metadata.labels.unwrap().contains_key(INJECTOR_LABEL));
        let allocated = node_port_service(NAMESPACE, INJECTOR, INJECTOR, None, true).unwrap();
        assert_eq!(allocated.spec.unwrap().ports.unwrap()[0].node_port, None);
        assert_eq!(allocated.metadata.labels.unwrap()[INJECTOR_LABEL], INJECTOR_VALUE);
    }

    #[test]
    fn the_registry_stores_on_its_claim_or_an_empty_dir_and_rolls_on_new_credentials() {
        let with_claim = registry_deployment(
            NAMESPACE,
            "127.0.0.1:31999/docker.io/library/registry:3.1.2",
            2,
            Some("data"),
            "c1",
        )
        .unwrap();
        let spec = with_claim.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let strategy = spec.strategy.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        assert_eq!(
            strategy.rolling_update.unwrap().max_unavailable,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)),
            "the old pod serves the new one its image"
        );
        let template = spec.template;
        assert_eq!(
            template.metadata.unwrap().annotations.unwrap()["jackal.dev/secret-checksum"],
            "c1"
        );
        let pod = template.spec.unwrap();
        let storage = &pod.volumes.unwrap()[1];
        assert_eq!(
            storage.persistent_volume_claim.as_ref().unwrap().claim_name,
            "data"
        );
        assert_eq!(pod.image_pull_secrets.unwrap()[0].name, REGISTRY_PULL_SECRET);
        let ephemeral = registry_deployment(NAMESPACE, "seed/registry:3", 1, None, "c2").unwrap();
        let claim = registry_claim(
            NAMESPACE,
            &RegistryStorage {
                size: "20Gi".to_owned(),
                storage_class_name: Some("fast".to_owned()),
            },
        )
        .unwrap();
        let spec = claim.spec.unwrap();
        assert_eq!(claim.metadata.name.as_deref(), Some(REGISTRY));
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            spec.resources.and_then(|resources| resources.requests).unwrap()["storage"].0,
            "20Gi"
        );
        let volumes = ephemeral.spec.unwrap().template.spec.unwrap().volumes.unwrap();
        assert!(volumes[1].empty_dir.is_some());
    }

    #[test]
    fn the_registry_config_names_its_htpasswd_and_secret() {
        let config = registry_config("s3cr3t");
        assert!(config.contains("secret: s3cr3t"), "{config}");
        assert!(config.contains("path: /etc/distribution/htpasswd"), "{config}");
        let secret = registry_secret(NAMESPACE, &config, "jackal-push:$2b$...\n");
        let data = secret.data.unwrap();
        assert_eq!(data["config.yml"].0, config.as_bytes());
        assert!(data.contains_key("htpasswd"));
    }
}
