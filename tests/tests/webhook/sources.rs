//! Flux and Argo CD objects, with their real CRDs (from the projects' Go modules): OCI sources go to
//! the registry, git sources to the git server, repository Secrets get the cluster's credentials.

use std::time::Duration;

use jackal_crds::init::WebhookSpec;
use jackal_tests::Cluster;
use jackal_tests::webhook::{TestWebhook, test_rules};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

async fn install_gitops_crds(cluster: &Cluster) -> anyhow::Result<()> {
    for tool in ["flux", "argocd"] {
        let dir = cluster.dir().join("crds").join(tool);
        cluster.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &dir.to_string_lossy(),
        ])?;
    }
    let crds = Api::<CustomResourceDefinition>::all(cluster.client.clone());
    for name in [
        "ocirepositories.source.toolkit.fluxcd.io",
        "helmrepositories.source.toolkit.fluxcd.io",
        "gitrepositories.source.toolkit.fluxcd.io",
        "applications.argoproj.io",
        "applicationsets.argoproj.io",
    ] {
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), name, conditions::is_crd_established()),
        )
        .await??;
    }
    Ok(())
}

async fn create(cluster: &Cluster, namespace: &str, object: Value) -> anyhow::Result<Value> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap_or_default());
    let resource = ApiResource::from_gvk(&gvk);
    let api = Api::<DynamicObject>::namespaced_with(cluster.client.clone(), namespace, &resource);
    let created = api
        .create(&PostParams::default(), &serde_json::from_value(object)?)
        .await?;
    Ok(serde_json::to_value(created)?)
}

fn mirror(url: &str) -> String {
    jackal_core::transform::git_url(url, &test_rules().git.unwrap_or_else(|| unreachable!()).server)
        .unwrap_or_default()
}

#[tokio::test]
async fn flux_and_argocd_objects_are_rewritten() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    install_gitops_crds(&cluster).await?;
    let webhook = TestWebhook::start(
        &cluster.client,
        "webhook-gitops",
        test_rules(),
        WebhookSpec::default(),
    )
    .await?;
    let namespace = cluster
        .labelled_namespace("webhook-gitops", &webhook.namespace_labels())
        .await?;
    webhook
        .wait_until_active(&cluster.client, &namespace.name)
        .await?;
    let ns = namespace.name.as_str();
    let meta = |name: &str| json!({"name": name});

    let oci = create(&cluster, ns, json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository", "metadata": meta("manifests"),
        "spec": {"url": "oci://ghcr.io/stefanprodan/manifests/podinfo", "interval": "5m", "ref": {"tag": "6.4.0"}}})).await?;
    assert_eq!(
        oci["spec"]["url"],
        "oci://127.0.0.1:31999/ghcr.io/stefanprodan/manifests/podinfo"
    );
    assert_eq!(
        (
            oci["spec"]["insecure"].clone(),
            oci["spec"]["secretRef"]["name"].clone()
        ),
        (json!(true), json!("private-registry"))
    );
    assert_eq!(
        oci["metadata"]["annotations"]["jackal.dev/original-urls"],
        r#"{"spec.url":"oci://ghcr.io/stefanprodan/manifests/podinfo"}"#
    );

    let helm = create(&cluster, ns, json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "metadata": meta("charts"),
        "spec": {"type": "oci", "url": "oci://ghcr.io/stefanprodan/charts", "interval": "5m"}})).await?;
    assert_eq!(
        helm["spec"]["url"],
        "oci://127.0.0.1:31999/ghcr.io/stefanprodan/charts"
    );
    let https = create(&cluster, ns, json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "metadata": meta("https"),
        "spec": {"url": "https://stefanprodan.github.io/podinfo", "interval": "5m"}})).await?;
    assert_eq!(https["spec"]["url"], "https://stefanprodan.github.io/podinfo");

    let git_url = "https://github.com/stefanprodan/podinfo";
    let git = create(&cluster, ns, json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": meta("podinfo"),
        "spec": {"url": git_url, "interval": "5m", "ref": {"branch": "master"}}})).await?;
    assert_eq!(git["spec"]["url"], mirror(git_url).as_str());
    assert_eq!(git["spec"]["secretRef"]["name"], "private-git-server");

    let application = create(&cluster, ns, json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": meta("podinfo"),
        "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc", "namespace": "podinfo"},
                 "sources": [{"repoURL": git_url, "path": "kustomize", "targetRevision": "master"},
                             {"repoURL": "ghcr.io/stefanprodan/charts", "chart": "podinfo", "targetRevision": "6.4.0"}]}})).await?;
    assert_eq!(
        application["spec"]["sources"][0]["repoURL"],
        mirror(git_url).as_str()
    );
    assert_eq!(
        application["spec"]["sources"][1]["repoURL"],
        "127.0.0.1:31999/ghcr.io/stefanprodan/charts"
    );

    let set = create(&cluster, ns, json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "metadata": meta("apps"),
        "spec": {"generators": [{"git": {"repoURL": git_url, "revision": "HEAD", "directories": [{"path": "apps/*"}]}}],
                 "template": {"metadata": {"name": "{{path.basename}}"},
                              "spec": {"project": "default", "source": {"repoURL": git_url, "path": "{{path}}"},
                                       "destination": {"server": "https://kubernetes.default.svc", "namespace": "{{path.basename}}"}}}}})).await?;
    assert_eq!(
        set["spec"]["generators"][0]["git"]["repoURL"],
        mirror(git_url).as_str()
    );
    assert_eq!(
        set["spec"]["template"]["spec"]["source"]["repoURL"],
        mirror(git_url).as_str()
    );

    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), ns);
    let repository: Secret = jackal_tests::from_json(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "podinfo-repo", "labels": {"argocd.argoproj.io/secret-type": "repository"}},
        "stringData": {"url": git_url, "username": "me", "password": "ghp_token"}}))?;
    let stored = secrets.create(&PostParams::default(), &repository).await?;
    let data = stored.data.unwrap_or_default();
    let text = |key: &str| {
        String::from_utf8(data.get(key).map(|value| value.0.clone()).unwrap_or_default()).unwrap_or_default()
    };
    assert_eq!(text("url"), mirror(git_url));
    assert_eq!(
        (text("username").as_str(), text("password").as_str()),
        ("jackal-git-read", "git-read-password")
    );
    // An ordinary Secret is not even sent to the webhook (object selector).
    let plain: Secret = jackal_tests::from_json(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain"}, "stringData": {"url": git_url}}),
    )?;
    let stored = secrets.create(&PostParams::default(), &plain).await?;
    assert_eq!(stored.data.unwrap_or_default()["url"].0, git_url.as_bytes());
    Ok(())
}
