//! Pods: every container, init container and ephemeral container image is pointed at the
//! in-cluster registry; the registry pull Secret is appended (existing ones kept); the original
//! images are recorded in `jackal.dev/original-images` (container name → image).
//!
//! On UPDATE (`kubectl set image` on a pod, or the `ephemeralcontainers` subresource) only images
//! that differ from the stored pod's are rewritten, and their originals overwrite earlier records.
//! A running pod's pull Secrets cannot change, so a pod without the registry's gets a warning
//! instead. (The `ephemeralcontainers` subresource keeps only ephemeral containers from the
//! patched pod, so the annotation is not recorded there.)
//!
//! An image that is not a valid reference, or whose internal form would not be, is left as written
//! with a warning: the API server or the kubelet rejects it as its author wrote it.

use std::collections::{BTreeMap, HashMap};

use jackal_core::transform::{ReferenceError, to_internal};
use jackal_crds::names::ORIGINAL_IMAGES_ANNOTATION;
use kube::core::DynamicObject;
use kube::core::admission::Operation;
use serde_json::{Value, json};

use super::{HookError, Mutation, Rules, record_originals};
use crate::webhook::patch::{add, replace};

const CONTAINER_FIELDS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

pub fn mutate(
    pod: &DynamicObject,
    old_pod: Option<&DynamicObject>,
    operation: &Operation,
    rules: &Rules,
) -> Result<Mutation, HookError> {
    let spec = &pod.data["spec"];
    let update = matches!(operation, Operation::Update);
    // Container names are unique across the three lists, so a name finds the stored image.
    let stored_images: HashMap<&str, &str> = match old_pod.filter(|_| update) {
        Some(old_pod) => images(&old_pod.data["spec"]).collect(),
        None => HashMap::new(),
    };
    let mut mutation = Mutation::default();
    let mut originals = BTreeMap::new();
    for field in CONTAINER_FIELDS {
        let Some(containers) = spec[field].as_array() else {
            continue;
        };
        for (index, container) in containers.iter().enumerate() {
            let name = container["name"].as_str().unwrap_or_default();
            let Some(image) = container["image"].as_str() else {
                continue;
            };
            if stored_images.get(name) == Some(&image) {
                continue;
            }
            match to_internal(image, &rules.registry) {
                Ok(internal) if internal != image => {
                    let index = index.to_string();
                    mutation.operations.push(replace(
                        ["spec", field, index.as_str(), "image"],
                        Value::String(internal),
                    ));
                    originals.insert(name.to_owned(), image.to_owned());
                }
                Ok(_) => {}
                Err(source @ ReferenceError::Registry { .. }) => {
                    return Err(HookError::Image {
                        container: name.to_owned(),
                        source,
                    });
                }
                Err(error) => mutation
                    .warnings
                    .push(format!("jackal: container {name:?} left unchanged: {error}")),
            }
        }
    }
    if mutation.operations.is_empty() {
        return Ok(mutation);
    }
    let has_pull_secret = spec["imagePullSecrets"].as_array().is_some_and(|existing| {
        existing
            .iter()
            .any(|entry| entry["name"] == rules.pull_secret.as_str())
    });
    if update {
        if !has_pull_secret {
            mutation.warnings.push(format!(
                "jackal: the pod lacks pull Secret {:?} and a running pod's cannot change; pulls may fail",
                rules.pull_secret
            ));
        }
    } else if !has_pull_secret {
        let secret = json!({ "name": rules.pull_secret });
        mutation
            .operations
            .push(match spec["imagePullSecrets"].as_array() {
                Some(_) => add(["spec", "imagePullSecrets", "-"], secret),
                None => add(["spec", "imagePullSecrets"], json!([secret])),
            });
    }
    mutation
        .operations
        .push(record_originals(pod, ORIGINAL_IMAGES_ANNOTATION, originals));
    Ok(mutation)
}

/// (container name, image) of every container in `spec`.
fn images(spec: &Value) -> impl Iterator<Item = (&str, &str)> {
    CONTAINER_FIELDS
        .iter()
        .filter_map(|field| spec[field].as_array())
        .flatten()
        .filter_map(|container| Some((container["name"].as_str()?, container["image"].as_str()?)))
}

#[cfg(test)]
mod tests {
    use kube::core::admission::Operation;
    use serde_json::{Value, json};

    use crate::webhook::hooks::tests::{rules, run, run_update};

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    /// A valid name of 255 characters: too long once its host is a path segment.
    const LONGEST: &str = concat!(
        "ghcr.io/",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    );

    fn pod(spec: Value, annotations: Option<Value>) -> Value {
        let mut metadata = json!({"name": "web", "namespace": "shop"});
        if let Some(annotations) = annotations {
            metadata["annotations"] = annotations;
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    }

    struct Case {
        name: &'static str,
        operation: Operation,
        input: Value,
        /// The stored pod an UPDATE replaces.
        old: Option<Value>,
        expected: Result<Value, &'static str>,
        /// How each expected warning starts.
        warnings: &'static [&'static str],
    }

    #[test]
    fn pods_are_rewritten() {
        let digest_image = format!("ghcr.io/org/api@{DIGEST}");
        let cases = [
            Case {
                name: "every kind of container, pull secret and record added",
                operation: Operation::Create,
                old: None,
                warnings: &[],
                input: pod(
                    json!({
                        "initContainers": [{"name": "setup", "image": "busybox:1.36"}],
                        "containers": [{"name": "app", "image": "nginx"}, {"name": "api", "image": digest_image}],
                        "ephemeralContainers": [{"name": "debug", "image": "registry.example.com:5000/tools/debug:v1"}],
                    }),
                    None,
                ),
                expected: Ok(pod(
                    json!({
                        "initContainers": [{"name": "setup", "image": "127.0.0.1:31999/docker.io/library/busybox:1.36"}],
                        "containers": [
                            {"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx"},
                            {"name": "api", "image": format!("127.0.0.1:31999/ghcr.io/org/api@{DIGEST}")},
                        ],
                        "ephemeralContainers": [{"name": "debug", "image": "127.0.0.1:31999/registry.example.com_5000/tools/debug:v1"}],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(json!({"jackal.dev/original-images": format!(
                        r#"{{"api":"ghcr.io/org/api@{DIGEST}","app":"nginx","debug":"registry.example.com:5000/tools/debug:v1","setup":"busybox:1.36"}}"#
                    )})),
                )),
            },
            Case {
                name: "existing pull secrets and annotations are kept",
                operation: Operation::Create,
                old: None,
                warnings: &[],
                input: pod(
                    json!({"containers": [{"name": "app", "image": "nginx:1.27"}], "imagePullSecrets": [{"name": "mine"}]}),
                    Some(json!({"team": "shop"})),
                ),
                expected: Ok(pod(
                    json!({
                        "containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx:1.27"}],
                        "imagePullSecrets": [{"name": "mine"}, {"name": "private-registry"}],
                    }),
                    Some(json!({"team": "shop", "jackal.dev/original-images": r#"{"app":"nginx:1.27"}"#})),
                )),
            },
            Case {
                name: "already rewritten: nothing to do (idempotent)",
                operation: Operation::Create,
                old: None,
                warnings: &[],
                input: pod(
                    json!({
                        "containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx:1.27"}],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(json!({"jackal.dev/original-images": r#"{"app":"nginx:1.27"}"#})),
                ),
                expected: Ok(pod(
                    json!({
                        "containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx:1.27"}],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(json!({"jackal.dev/original-images": r#"{"app":"nginx:1.27"}"#})),
                )),
            },
            Case {
                name: "pull secret not duplicated",
                operation: Operation::Create,
                old: None,
                warnings: &[],
                input: pod(
                    json!({"containers": [{"name": "app", "image": "nginx"}], "imagePullSecrets": [{"name": "private-registry"}]}),
                    None,
                ),
                expected: Ok(pod(
                    json!({
                        "containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx"}],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(json!({"jackal.dev/original-images": r#"{"app":"nginx"}"#})),
                )),
            },
            Case {
                name: "update of ephemeral containers touches only them",
                operation: Operation::Update,
                input: pod(
                    json!({
                        "containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx"}],
                        "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(json!({"jackal.dev/original-images": r#"{"app":"nginx"}"#})),
                ),
                old: Some(pod(
                    json!({
                        "containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx"}],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(json!({"jackal.dev/original-images": r#"{"app":"nginx"}"#})),
                )),
                expected: Ok(pod(
                    json!({
                        "containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx"}],
                        "ephemeralContainers": [{"name": "debug", "image": "127.0.0.1:31999/docker.io/library/busybox"}],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(json!({"jackal.dev/original-images": r#"{"app":"nginx","debug":"busybox"}"#})),
                )),
                warnings: &[],
            },
            Case {
                name: "update setting a container and an init container image rewrites just those",
                operation: Operation::Update,
                input: pod(
                    json!({
                        "initContainers": [{"name": "setup", "image": "busybox:1.37"}],
                        "containers": [
                            {"name": "app", "image": "nginx:1.28"},
                            {"name": "legacy", "image": "quay.io/org/legacy:1"},
                        ],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(
                        json!({"jackal.dev/original-images": r#"{"app":"nginx:1.27","setup":"busybox:1.36"}"#}),
                    ),
                ),
                old: Some(pod(
                    json!({
                        "initContainers": [{"name": "setup", "image": "127.0.0.1:31999/docker.io/library/busybox:1.36"}],
                        "containers": [
                            {"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx:1.27"},
                            {"name": "legacy", "image": "quay.io/org/legacy:1"},
                        ],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(
                        json!({"jackal.dev/original-images": r#"{"app":"nginx:1.27","setup":"busybox:1.36"}"#}),
                    ),
                )),
                expected: Ok(pod(
                    json!({
                        "initContainers": [{"name": "setup", "image": "127.0.0.1:31999/docker.io/library/busybox:1.37"}],
                        "containers": [
                            {"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx:1.28"},
                            // Unchanged by this update: left as stored (no restart forced).
                            {"name": "legacy", "image": "quay.io/org/legacy:1"},
                        ],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(
                        json!({"jackal.dev/original-images": r#"{"app":"nginx:1.28","setup":"busybox:1.37"}"#}),
                    ),
                )),
                warnings: &[],
            },
            Case {
                name: "update of a pod without the pull secret rewrites and warns",
                operation: Operation::Update,
                input: pod(
                    json!({"containers": [{"name": "app", "image": "nginx:1.28"}]}),
                    None,
                ),
                old: Some(pod(
                    json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}),
                    None,
                )),
                expected: Ok(pod(
                    json!({"containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx:1.28"}]}),
                    Some(json!({"jackal.dev/original-images": r#"{"app":"nginx:1.28"}"#})),
                )),
                warnings: &[r#"jackal: the pod lacks pull Secret "private-registry""#],
            },
            Case {
                name: "update changing no image changes nothing",
                operation: Operation::Update,
                input: pod(
                    json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}),
                    None,
                ),
                old: Some(pod(
                    json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}),
                    None,
                )),
                expected: Ok(pod(
                    json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}),
                    None,
                )),
                warnings: &[],
            },
            Case {
                name: "an IPv6 registry host is rewritten into a valid path",
                operation: Operation::Create,
                old: None,
                input: pod(
                    json!({"containers": [{"name": "app", "image": "[::1]:5000/app:1"}]}),
                    None,
                ),
                expected: Ok(pod(
                    json!({
                        "containers": [{"name": "app", "image": "127.0.0.1:31999/ip6__x-x-1_5000/app:1"}],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(json!({"jackal.dev/original-images": r#"{"app":"[::1]:5000/app:1"}"#})),
                )),
                warnings: &[],
            },
            Case {
                name: "invalid images are left as written with a warning, the others rewritten",
                operation: Operation::Create,
                old: None,
                input: pod(
                    json!({"containers": [
                        {"name": "app", "image": "Nginx:latest"},
                        {"name": "bad-separator", "image": "a_-b"},
                        {"name": "good", "image": "nginx"},
                    ]}),
                    None,
                ),
                expected: Ok(pod(
                    json!({
                        "containers": [
                            {"name": "app", "image": "Nginx:latest"},
                            {"name": "bad-separator", "image": "a_-b"},
                            {"name": "good", "image": "127.0.0.1:31999/docker.io/library/nginx"},
                        ],
                        "imagePullSecrets": [{"name": "private-registry"}],
                    }),
                    Some(json!({"jackal.dev/original-images": r#"{"good":"nginx"}"#})),
                )),
                warnings: &[
                    r#"jackal: container "app" left unchanged: "Nginx:latest" is not a valid image reference"#,
                    r#"jackal: container "bad-separator" left unchanged: "a_-b" is not a valid image reference"#,
                ],
            },
            Case {
                name: "a valid image whose mapped name would be too long is left with a warning",
                operation: Operation::Create,
                old: None,
                input: pod(json!({"containers": [{"name": "app", "image": LONGEST}]}), None),
                expected: Ok(pod(
                    json!({"containers": [{"name": "app", "image": LONGEST}]}),
                    None,
                )),
                warnings: &[r#"jackal: container "app" left unchanged: "ghcr.io/aaaa"#],
            },
        ];
        assert_eq!(LONGEST.len(), 255);
        for case in cases {
            let result = run_update(case.operation, case.input, case.old, &rules());
            match (&result, &case.expected) {
                (Ok((actual, warnings)), Ok(expected)) => {
                    assert_eq!(actual, expected, "{}", case.name);
                    assert_eq!(warnings.len(), case.warnings.len(), "{}: {warnings:?}", case.name);
                    for (warning, start) in warnings.iter().zip(case.warnings) {
                        assert!(warning.starts_with(start), "{}: {warning}", case.name);
                    }
                }
                (Err(actual), Err(expected)) => {
                    assert!(actual.starts_with(expected), "{}: {actual}", case.name)
                }
                _ => panic!("{}: got {result:?}, expected {:?}", case.name, case.expected),
            }
        }
    }

    #[test]
    fn rewritten_images_map_back_to_the_originals() {
        let patched = run(
            Operation::Create,
            pod(
                json!({"containers": [{"name": "app", "image": "quay.io/org/app:2.0"}]}),
                None,
            ),
            &rules(),
        )
        .unwrap();
        let internal = patched["spec"]["containers"][0]["image"].as_str().unwrap();
        assert_eq!(
            jackal_core::transform::from_internal(internal, "127.0.0.1:31999").as_deref(),
            Some("quay.io/org/app:2.0")
        );
    }
}
