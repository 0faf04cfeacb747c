//! Pods: every container, init container and ephemeral container image is pointed at the
//! in-cluster registry; the registry pull Secret is appended (existing ones kept); the original
//! images are recorded in `jackal.dev/original-images` (container name → image).
//!
//! On UPDATE (the `ephemeralcontainers` subresource, the only way images change after creation)
//! only ephemeral containers are rewritten: the rest of a pod's spec is immutable.
//!
//! An image that is not a valid reference, or whose internal form would not be, is left as written
//! with a warning: the API server or the kubelet rejects it as its author wrote it.

use std::collections::BTreeMap;

use jackal_core::transform::{ReferenceError, to_internal};
use jackal_crds::names::ORIGINAL_IMAGES_ANNOTATION;
use kube::core::DynamicObject;
use kube::core::admission::Operation;
use serde_json::{Value, json};

use super::{HookError, Mutation, Rules, record_originals};
use crate::webhook::patch::{add, replace};

const CONTAINER_FIELDS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

pub fn mutate(pod: &DynamicObject, operation: &Operation, rules: &Rules) -> Result<Mutation, HookError> {
    let spec = &pod.data["spec"];
    let fields: &[&str] = if matches!(operation, Operation::Update) {
        &CONTAINER_FIELDS[2..]
    } else {
        &CONTAINER_FIELDS
    };
    let mut mutation = Mutation::default();
    let mut originals = BTreeMap::new();
    for field in fields {
        let Some(containers) = spec[field].as_array() else {
            continue;
        };
        for (index, container) in containers.iter().enumerate() {
            let name = container["name"].as_str().unwrap_or_default();
            let Some(image) = container["image"].as_str() else {
                continue;
            };
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
    if mutation.operations.is_empty() || matches!(operation, Operation::Update) {
        return Ok(mutation);
    }
    let secret = json!({ "name": rules.pull_secret });
    match spec["imagePullSecrets"].as_array() {
        None => mutation
            .operations
            .push(add(["spec", "imagePullSecrets"], json!([secret]))),
        Some(existing)
            if !existing
                .iter()
                .any(|entry| entry["name"] == rules.pull_secret.as_str()) =>
        {
            mutation
                .operations
                .push(add(["spec", "imagePullSecrets", "-"], secret));
        }
        Some(_) => {}
    }
    mutation
        .operations
        .push(record_originals(pod, ORIGINAL_IMAGES_ANNOTATION, originals));
    Ok(mutation)
}

#[cfg(test)]
mod tests {
    use kube::core::admission::Operation;
    use serde_json::{Value, json};

    use crate::webhook::hooks::tests::{rules, run, run_with_warnings};

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
                warnings: &[],
                input: pod(
                    json!({
                        "containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx"}],
                        "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
                    }),
                    Some(json!({"jackal.dev/original-images": r#"{"app":"nginx"}"#})),
                ),
                expected: Ok(pod(
                    json!({
                        "containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx"}],
                        "ephemeralContainers": [{"name": "debug", "image": "127.0.0.1:31999/docker.io/library/busybox"}],
                    }),
                    Some(json!({"jackal.dev/original-images": r#"{"app":"nginx"}"#})),
                )),
            },
            Case {
                name: "an IPv6 registry host is rewritten into a valid path",
                operation: Operation::Create,
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
            let result = run_with_warnings(case.operation, case.input, &rules());
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
