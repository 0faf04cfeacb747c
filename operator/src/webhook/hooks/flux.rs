//! Flux sources: `OCIRepository` and `HelmRepository` of type `oci` point at the in-cluster
//! registry (plain HTTP on the node, hence `insecure`, with the registry pull Secret and the
//! `generic` provider); `GitRepository` points at the git server when one is configured. Original
//! URLs are recorded in `jackal.dev/original-urls`. HTTP(S) Helm repositories are left alone: the
//! cluster has nothing to serve them from.

use std::collections::BTreeMap;

use jackal_core::transform::{git_url, oci_url};
use jackal_crds::names::ORIGINAL_URLS_ANNOTATION;
use json_patch::PatchOperation;
use kube::core::DynamicObject;
use serde_json::{Value, json};

use super::{HookError, Rules, record_originals};
use crate::webhook::patch::add;

pub fn mutate(kind: &str, source: &DynamicObject, rules: &Rules) -> Result<Vec<PatchOperation>, HookError> {
    let spec = &source.data["spec"];
    let Some(url) = spec["url"].as_str() else {
        return Err(HookError::Malformed {
            field: "spec.url".into(),
            reason: "missing or not a string",
        });
    };
    let (rewritten, secret) = match kind {
        "GitRepository" => match &rules.git {
            Some(git) => (git_url(url, &git.server), git.secret.as_str()),
            None => (None, ""),
        },
        "HelmRepository" if spec["type"] != "oci" => (None, ""),
        _ => {
            let mapped = oci_url(url, &rules.registry).map_err(|source| HookError::Url {
                field: "spec.url".into(),
                source,
            })?;
            (mapped, rules.pull_secret.as_str())
        }
    };
    let Some(rewritten) = rewritten.filter(|rewritten| rewritten != url) else {
        return Ok(Vec::new());
    };
    let mut operations = vec![
        add(["spec", "url"], Value::String(rewritten)),
        add(["spec", "secretRef"], json!({ "name": secret })),
    ];
    if kind != "GitRepository" {
        operations.push(add(["spec", "insecure"], Value::Bool(true)));
        operations.push(add(["spec", "provider"], Value::String("generic".into())));
    }
    let originals = BTreeMap::from([("spec.url".to_owned(), url.to_owned())]);
    operations.push(record_originals(source, ORIGINAL_URLS_ANNOTATION, originals));
    Ok(operations)
}

#[cfg(test)]
mod tests {
    use kube::core::admission::Operation;
    use serde_json::{Value, json};

    use crate::webhook::hooks::Rules;
    use crate::webhook::hooks::tests::{rules, run};

    fn source(kind: &str, spec: Value, annotations: Option<Value>) -> Value {
        let mut metadata = json!({"name": "podinfo", "namespace": "flux-system"});
        if let Some(annotations) = annotations {
            metadata["annotations"] = annotations;
        }
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": kind, "metadata": metadata, "spec": spec})
    }

    fn original(url: &str) -> Option<Value> {
        Some(json!({"jackal.dev/original-urls": format!(r#"{{"spec.url":"{url}"}}"#)}))
    }

    #[test]
    fn flux_sources_are_rewritten() {
        let no_git = Rules { git: None, ..rules() };
        let git_mirror = jackal_core::transform::git_url(
            "https://github.com/stefanprodan/podinfo",
            &rules().git.unwrap().server,
        )
        .unwrap();
        let cases: Vec<(&str, Value, Result<Value, &str>, Rules)> = vec![
            (
                "OCIRepository to the registry, plain HTTP with the pull secret",
                source(
                    "OCIRepository",
                    json!({"url": "oci://ghcr.io/stefanprodan/manifests/podinfo", "ref": {"tag": "6.4.0"}, "provider": "aws", "secretRef": {"name": "ghcr"}}),
                    None,
                ),
                Ok(source(
                    "OCIRepository",
                    json!({"url": "oci://127.0.0.1:31999/ghcr.io/stefanprodan/manifests/podinfo", "ref": {"tag": "6.4.0"}, "provider": "generic", "secretRef": {"name": "private-registry"}, "insecure": true}),
                    original("oci://ghcr.io/stefanprodan/manifests/podinfo"),
                )),
                rules(),
            ),
            (
                "OCI HelmRepository likewise",
                source(
                    "HelmRepository",
                    json!({"type": "oci", "url": "oci://ghcr.io/stefanprodan/charts"}),
                    Some(json!({"keep": "me"})),
                ),
                Ok(source(
                    "HelmRepository",
                    json!({"type": "oci", "url": "oci://127.0.0.1:31999/ghcr.io/stefanprodan/charts", "secretRef": {"name": "private-registry"}, "insecure": true, "provider": "generic"}),
                    Some(
                        json!({"keep": "me", "jackal.dev/original-urls": r#"{"spec.url":"oci://ghcr.io/stefanprodan/charts"}"#}),
                    ),
                )),
                rules(),
            ),
            (
                "HTTPS HelmRepository untouched",
                source(
                    "HelmRepository",
                    json!({"url": "https://stefanprodan.github.io/podinfo"}),
                    None,
                ),
                Ok(source(
                    "HelmRepository",
                    json!({"url": "https://stefanprodan.github.io/podinfo"}),
                    None,
                )),
                rules(),
            ),
            (
                "GitRepository to the git server with its credentials",
                source(
                    "GitRepository",
                    json!({"url": "https://github.com/stefanprodan/podinfo", "ref": {"branch": "master"}}),
                    None,
                ),
                Ok(source(
                    "GitRepository",
                    json!({"url": git_mirror, "ref": {"branch": "master"}, "secretRef": {"name": "private-git-server"}}),
                    original("https://github.com/stefanprodan/podinfo"),
                )),
                rules(),
            ),
            (
                "GitRepository untouched without a git server",
                source(
                    "GitRepository",
                    json!({"url": "https://github.com/stefanprodan/podinfo"}),
                    None,
                ),
                Ok(source(
                    "GitRepository",
                    json!({"url": "https://github.com/stefanprodan/podinfo"}),
                    None,
                )),
                no_git,
            ),
            (
                "already rewritten: idempotent",
                source(
                    "OCIRepository",
                    json!({"url": "oci://127.0.0.1:31999/ghcr.io/x/y", "insecure": true}),
                    original("oci://ghcr.io/x/y"),
                ),
                Ok(source(
                    "OCIRepository",
                    json!({"url": "oci://127.0.0.1:31999/ghcr.io/x/y", "insecure": true}),
                    original("oci://ghcr.io/x/y"),
                )),
                rules(),
            ),
            (
                "an invalid URL is refused naming the field",
                source("OCIRepository", json!({"url": "oci://GHCR.io/Upper/Case"}), None),
                Err("spec.url: \"GHCR.io/Upper/Case\" is not a valid image reference"),
                rules(),
            ),
            (
                "a missing URL is refused",
                source("OCIRepository", json!({}), None),
                Err("spec.url: missing or not a string"),
                rules(),
            ),
        ];
        for (name, input, expected, rules) in cases {
            let result = run(Operation::Create, input, &rules);
            match (&result, &expected) {
                (Ok(actual), Ok(expected)) => assert_eq!(actual, expected, "{name}"),
                (Err(actual), Err(expected)) => assert!(actual.starts_with(expected), "{name}: {actual}"),
                _ => panic!("{name}: got {result:?}, expected {expected:?}"),
            }
        }
    }
}
