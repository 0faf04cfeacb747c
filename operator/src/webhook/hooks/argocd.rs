//! Argo CD: `Application` and `ApplicationSet` sources and repository Secrets point at the
//! cluster's services. OCI sources (`oci://…`, or a Helm chart from a scheme-less OCI registry)
//! go to the in-cluster registry; git sources go to the git server when one is configured;
//! HTTP(S) Helm repositories are left alone. Repository Secrets also get the matching read-only
//! credentials. Original URLs are recorded in `jackal.dev/original-urls`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jackal_core::transform::{git_url, oci_url};
use jackal_crds::names::ORIGINAL_URLS_ANNOTATION;
use json_patch::PatchOperation;
use kube::core::DynamicObject;
use serde_json::Value;

use super::{HookError, Rules, record_originals};
use crate::webhook::patch::add;

/// Label Argo CD puts on its repository Secrets.
const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// Where a source URL goes.
enum Target {
    Registry(String),
    Git(String),
}

pub fn application(object: &DynamicObject, rules: &Rules) -> Result<Vec<PatchOperation>, HookError> {
    let mut rewrites = Vec::new();
    sources(&object.data["spec"], &["spec"], rules, &mut rewrites)?;
    Ok(finish(object, rewrites))
}

pub fn application_set(object: &DynamicObject, rules: &Rules) -> Result<Vec<PatchOperation>, HookError> {
    let spec = &object.data["spec"];
    let mut rewrites = Vec::new();
    sources(
        &spec["template"]["spec"],
        &["spec", "template", "spec"],
        rules,
        &mut rewrites,
    )?;
    for (index, generator) in spec["generators"].as_array().into_iter().flatten().enumerate() {
        if let (Some(url), Some(git)) = (generator["git"]["repoURL"].as_str(), &rules.git)
            && let Some(mirror) = git_url(url, &git.server).filter(|mirror| mirror != url)
        {
            let path = ["spec", "generators", &index.to_string(), "git", "repoURL"]
                .map(str::to_owned)
                .to_vec();
            rewrites.push((path, url.to_owned(), mirror));
        }
    }
    Ok(finish(object, rewrites))
}

pub fn repository_secret(secret: &DynamicObject, rules: &Rules) -> Result<Vec<PatchOperation>, HookError> {
    let labels = secret.metadata.labels.as_ref();
    if !labels
        .and_then(|labels| labels.get(SECRET_TYPE_LABEL))
        .is_some_and(|t| t == "repository" || t == "repo-creds")
    {
        return Ok(Vec::new());
    }
    let data = &secret.data["data"];
    let decode = |key: &str| {
        data[key].as_str().map(|encoded| {
            BASE64
                .decode(encoded)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or(HookError::Malformed {
                    field: format!("data.{key}"),
                    reason: "not base64-encoded text",
                })
        })
    };
    let Some(url) = decode("url").transpose()? else {
        return Ok(Vec::new());
    };
    let helm_oci = decode("type").transpose()?.as_deref() == Some("helm")
        && decode("enableOCI").transpose()?.as_deref() == Some("true");
    let target = target(&url, helm_oci, false, rules, "data.url")?;
    let (new_url, username, password, oci) = match target {
        Some(Target::Registry(new_url)) => (
            new_url,
            rules.registry_username.clone(),
            rules.registry_password.clone(),
            true,
        ),
        Some(Target::Git(new_url)) => match &rules.git {
            Some(git) => (new_url, git.username.clone(), git.password.clone(), false),
            None => return Ok(Vec::new()),
        },
        None => return Ok(Vec::new()),
    };
    if new_url == url {
        return Ok(Vec::new());
    }
    let encode = |text: &str| Value::String(BASE64.encode(text));
    let mut operations = vec![
        add(["data", "url"], encode(&new_url)),
        add(["data", "username"], encode(&username)),
        add(["data", "password"], encode(password.expose())),
    ];
    if oci {
        operations.push(add(["data", "insecureOCIForceHttp"], encode("true")));
    }
    operations.push(record_originals(
        secret,
        ORIGINAL_URLS_ANNOTATION,
        BTreeMap::from([("data.url".to_owned(), url)]),
    ));
    Ok(operations)
}

type Rewrite = (Vec<String>, String, String);

/// Collects the rewrites of `spec.source` and `spec.sources[*]` under `prefix`.
fn sources(
    spec: &Value,
    prefix: &[&str],
    rules: &Rules,
    rewrites: &mut Vec<Rewrite>,
) -> Result<(), HookError> {
    let mut candidates = vec![(vec!["source".to_owned()], &spec["source"])];
    for (index, source) in spec["sources"].as_array().into_iter().flatten().enumerate() {
        candidates.push((vec!["sources".to_owned(), index.to_string()], source));
    }
    for (path, source) in candidates {
        let Some(url) = source["repoURL"].as_str() else {
            continue;
        };
        let mut full: Vec<String> = prefix.iter().map(|segment| (*segment).to_owned()).collect();
        full.extend(path);
        full.push("repoURL".to_owned());
        let field = field_name(&full);
        let chart = source["chart"].as_str().is_some();
        if let Some(Target::Registry(new) | Target::Git(new)) = target(url, chart, chart, rules, &field)?
            && new != url
        {
            rewrites.push((full, url.to_owned(), new));
        }
    }
    Ok(())
}

/// Where `url` goes: `oci://` and scheme-less OCI chart registries to the registry, charts from
/// HTTP(S) repositories nowhere, anything else to the git server (if any).
fn target(
    url: &str,
    oci_without_scheme: bool,
    chart: bool,
    rules: &Rules,
    field: &str,
) -> Result<Option<Target>, HookError> {
    let url_error = |source| HookError::Url {
        field: field.to_owned(),
        source,
    };
    if url.starts_with("oci://") {
        return Ok(oci_url(url, &rules.registry)
            .map_err(url_error)?
            .map(Target::Registry));
    }
    if oci_without_scheme && !url.contains("://") {
        let mapped = oci_url(&format!("oci://{url}"), &rules.registry).map_err(url_error)?;
        return Ok(mapped.map(|mapped| Target::Registry(mapped.trim_start_matches("oci://").to_owned())));
    }
    if chart {
        return Ok(None);
    }
    Ok(rules
        .git
        .as_ref()
        .and_then(|git| git_url(url, &git.server))
        .map(Target::Git))
}

/// `["spec", "sources", "0", "repoURL"]` → `spec.sources[0].repoURL`.
fn field_name(path: &[String]) -> String {
    let mut name = String::new();
    for segment in path {
        if segment.bytes().all(|b| b.is_ascii_digit()) {
            name.push_str(&format!("[{segment}]"));
        } else {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(segment);
        }
    }
    name
}

fn finish(object: &DynamicObject, rewrites: Vec<Rewrite>) -> Vec<PatchOperation> {
    if rewrites.is_empty() {
        return Vec::new();
    }
    let mut operations = Vec::new();
    let mut originals = BTreeMap::new();
    for (path, original, new) in rewrites {
        operations.push(add(path.iter().map(String::as_str), Value::String(new)));
        originals.insert(field_name(&path), original);
    }
    operations.push(record_originals(object, ORIGINAL_URLS_ANNOTATION, originals));
    operations
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use kube::core::admission::Operation;
    use serde_json::{Value, json};

    use crate::webhook::hooks::tests::{rules, run};

    fn app(kind: &str, spec: Value) -> Value {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": {"name": "podinfo", "namespace": "argocd"}, "spec": spec})
    }

    fn mirror(url: &str) -> String {
        jackal_core::transform::git_url(url, &rules().git.unwrap().server).unwrap()
    }

    #[test]
    fn applications_are_rewritten() {
        let git = "https://github.com/stefanprodan/podinfo.git";
        let patched = run(
            Operation::Create,
            app(
                "Application",
                json!({
                    "source": {"repoURL": git, "path": "kustomize"},
                    "sources": [
                        {"repoURL": "oci://ghcr.io/stefanprodan/manifests/podinfo", "targetRevision": "6.4.0", "path": "."},
                        {"repoURL": "ghcr.io/stefanprodan/charts", "chart": "podinfo", "targetRevision": "6.4.0"},
                        {"repoURL": "https://stefanprodan.github.io/podinfo", "chart": "podinfo"},
                    ],
                }),
            ),
            &rules(),
        )
        .unwrap();
        let spec = &patched["spec"];
        assert_eq!(spec["source"]["repoURL"], mirror(git).as_str());
        assert_eq!(
            spec["sources"][0]["repoURL"],
            "oci://127.0.0.1:31999/ghcr.io/stefanprodan/manifests/podinfo"
        );
        assert_eq!(
            spec["sources"][1]["repoURL"],
            "127.0.0.1:31999/ghcr.io/stefanprodan/charts"
        );
        assert_eq!(
            spec["sources"][2]["repoURL"], "https://stefanprodan.github.io/podinfo",
            "HTTPS Helm repositories stay"
        );
        let recorded: Value = serde_json::from_str(
            patched["metadata"]["annotations"]["jackal.dev/original-urls"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(recorded["spec.source.repoURL"], git);
        assert_eq!(recorded["spec.sources[1].repoURL"], "ghcr.io/stefanprodan/charts");

        // Idempotent: a second pass changes nothing.
        assert_eq!(
            run(Operation::Update, patched.clone(), &rules()).unwrap(),
            patched
        );
    }

    #[test]
    fn application_sets_are_rewritten() {
        let git = "https://github.com/argoproj/argocd-example-apps.git";
        let patched = run(
            Operation::Create,
            app(
                "ApplicationSet",
                json!({
                    "generators": [{"git": {"repoURL": git, "revision": "HEAD", "directories": [{"path": "apps/*"}]}}, {"list": {"elements": []}}],
                    "template": {"metadata": {"name": "{{path.basename}}"}, "spec": {"source": {"repoURL": git, "path": "{{path}}"}}},
                }),
            ),
            &rules(),
        )
        .unwrap();
        assert_eq!(
            patched["spec"]["generators"][0]["git"]["repoURL"],
            mirror(git).as_str()
        );
        assert_eq!(
            patched["spec"]["template"]["spec"]["source"]["repoURL"],
            mirror(git).as_str()
        );
    }

    fn secret(kind: Option<&str>, data: &[(&str, &str)]) -> Value {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(key, value)| ((*key).to_owned(), Value::String(BASE64.encode(value))))
            .collect();
        let mut object = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "repo", "namespace": "argocd"}, "data": data});
        if let Some(kind) = kind {
            object["metadata"]["labels"] = json!({"argocd.argoproj.io/secret-type": kind});
        }
        object
    }

    fn decoded(secret: &Value, key: &str) -> String {
        String::from_utf8(
            BASE64
                .decode(secret["data"][key].as_str().unwrap_or_default())
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn repository_secrets_get_the_cluster_url_and_credentials() {
        let git = run(
            Operation::Create,
            secret(
                Some("repository"),
                &[
                    ("url", "https://github.com/stefanprodan/podinfo"),
                    ("username", "me"),
                    ("password", "ghp_token"),
                ],
            ),
            &rules(),
        )
        .unwrap();
        assert_eq!(
            decoded(&git, "url"),
            mirror("https://github.com/stefanprodan/podinfo")
        );
        assert_eq!(
            (
                decoded(&git, "username").as_str(),
                decoded(&git, "password").as_str()
            ),
            ("jackal-git-read", "git-read-password")
        );

        let oci = run(
            Operation::Create,
            secret(
                Some("repo-creds"),
                &[
                    ("url", "ghcr.io/stefanprodan/charts"),
                    ("type", "helm"),
                    ("enableOCI", "true"),
                ],
            ),
            &rules(),
        )
        .unwrap();
        assert_eq!(
            decoded(&oci, "url"),
            "127.0.0.1:31999/ghcr.io/stefanprodan/charts"
        );
        assert_eq!(
            (
                decoded(&oci, "username").as_str(),
                decoded(&oci, "password").as_str()
            ),
            ("jackal-pull", "pull-secret-password")
        );
        assert_eq!(decoded(&oci, "insecureOCIForceHttp"), "true");

        // Other Secrets, and Secrets already rewritten, are left alone.
        let plain = secret(None, &[("url", "https://github.com/x/y")]);
        assert_eq!(run(Operation::Create, plain.clone(), &rules()).unwrap(), plain);
        assert_eq!(run(Operation::Update, git.clone(), &rules()).unwrap(), git);
        let garbage = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "r", "labels": {"argocd.argoproj.io/secret-type": "repository"}}, "data": {"url": "%%%"}});
        assert_eq!(
            run(Operation::Create, garbage, &rules()).unwrap_err(),
            "data.url: not base64-encoded text"
        );
    }
}
