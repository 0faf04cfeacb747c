//! Pods, on the real API server: bare pods and a Deployment's pods are rewritten (images, pull
//! Secret appended, originals recorded), and so is an image set on a running pod; opted-out namespaces and objects, and the system
//! namespaces whatever their labels, are left alone.

use std::time::Duration;

use jackal_crds::init::WebhookSpec;
use jackal_tests::webhook::{TestWebhook, test_rules};
use jackal_tests::{Cluster, from_json};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn pod(name: &str, labels: serde_json::Value) -> anyhow::Result<Pod> {
    from_json(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "initContainers": [{"name": "setup", "image": "busybox:1.36"}],
            "containers": [{"name": "web", "image": "docker.io/jackaldev/demo-web:1.0.0"}],
            "imagePullSecrets": [{"name": "team-registry"}],
        },
    }))
}

#[tokio::test]
async fn pods_and_deployment_pods_are_rewritten() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let webhook = TestWebhook::start(
        &cluster.client,
        "webhook-pods",
        test_rules(),
        WebhookSpec::default(),
    )
    .await?;
    let namespace = cluster
        .labelled_namespace("webhook-pods", &webhook.namespace_labels())
        .await?;
    webhook
        .wait_until_active(&cluster.client, &namespace.name)
        .await?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);

    let created = pods
        .create(&PostParams::default(), &pod("bare", json!({}))?)
        .await?;
    let spec = created.spec.clone().unwrap_or_default();
    assert_eq!(
        spec.containers[0].image.as_deref(),
        Some("127.0.0.1:31999/docker.io/jackaldev/demo-web:1.0.0")
    );
    assert_eq!(
        spec.init_containers.unwrap_or_default()[0].image.as_deref(),
        Some("127.0.0.1:31999/docker.io/library/busybox:1.36")
    );
    let secrets: Vec<String> = spec
        .image_pull_secrets
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        secrets,
        ["team-registry", "private-registry"],
        "existing pull secrets are kept"
    );
    let originals = created.metadata.annotations.unwrap_or_default()["jackal.dev/original-images"].clone();
    assert_eq!(
        originals,
        r#"{"setup":"busybox:1.36","web":"docker.io/jackaldev/demo-web:1.0.0"}"#
    );

    // `kubectl set image pod/bare web=…`: an UPDATE that changes an image is rewritten too (the
    // registration's `image-changed` condition lets it through), its original recorded anew.
    let set_image =
        json!({"spec": {"containers": [{"name": "web", "image": "docker.io/jackaldev/demo-web:1.0.1"}]}});
    let updated = pods
        .patch("bare", &PatchParams::default(), &Patch::Strategic(set_image))
        .await?;
    let spec = updated.spec.clone().unwrap_or_default();
    assert_eq!(
        spec.containers[0].image.as_deref(),
        Some("127.0.0.1:31999/docker.io/jackaldev/demo-web:1.0.1")
    );
    assert_eq!(
        spec.init_containers.unwrap_or_default()[0].image.as_deref(),
        Some("127.0.0.1:31999/docker.io/library/busybox:1.36"),
        "images the update did not change stay as stored"
    );
    let originals = updated.metadata.annotations.unwrap_or_default()["jackal.dev/original-images"].clone();
    assert_eq!(
        originals,
        r#"{"setup":"busybox:1.36","web":"docker.io/jackaldev/demo-web:1.0.1"}"#
    );

    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &namespace.name);
    let deployment: Deployment = from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "ghcr.io/stefanprodan/podinfo:6.4.0"}]}},
        },
    }))?;
    deployments.create(&PostParams::default(), &deployment).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let replicas = loop {
        let listed = pods.list(&ListParams::default().labels("app=web")).await?;
        if listed.items.len() == 2 {
            break listed.items;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the Deployment's pods never appeared"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for replica in replicas {
        let image = replica.spec.unwrap_or_default().containers[0].image.clone();
        assert_eq!(
            image.as_deref(),
            Some("127.0.0.1:31999/ghcr.io/stefanprodan/podinfo:6.4.0")
        );
    }
    // The Deployment itself is not touched: only pods are rewritten.
    let stored = deployments.get("web").await?;
    let template_image = stored
        .spec
        .unwrap_or_default()
        .template
        .spec
        .unwrap_or_default()
        .containers[0]
        .image
        .clone();
    assert_eq!(
        template_image.as_deref(),
        Some("ghcr.io/stefanprodan/podinfo:6.4.0")
    );
    Ok(())
}

#[tokio::test]
async fn opted_out_namespaces_and_objects_are_left_alone() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let webhook = TestWebhook::start(
        &cluster.client,
        "webhook-opt-out",
        test_rules(),
        WebhookSpec::default(),
    )
    .await?;
    let watched = cluster
        .labelled_namespace("webhook-watched", &webhook.namespace_labels())
        .await?;
    webhook.wait_until_active(&cluster.client, &watched.name).await?;

    let mut skip = webhook.namespace_labels();
    skip.push(("jackal.dev/agent".into(), "skip".into()));
    let skipped = cluster.labelled_namespace("webhook-skipped", &skip).await?;
    let mut ignore = webhook.namespace_labels();
    ignore.push(("jackal.dev/agent".into(), "ignore".into()));
    let ignored = cluster.labelled_namespace("webhook-ignored", &ignore).await?;
    for namespace in [&skipped.name, &ignored.name] {
        let created = Api::<Pod>::namespaced(cluster.client.clone(), namespace)
            .create(&PostParams::default(), &pod("untouched", json!({}))?)
            .await?;
        assert_eq!(
            created.spec.unwrap_or_default().containers[0].image.as_deref(),
            Some("docker.io/jackaldev/demo-web:1.0.0"),
            "{namespace}"
        );
        assert!(
            !created
                .metadata
                .annotations
                .unwrap_or_default()
                .contains_key("jackal.dev/original-images")
        );
    }
    // An opted-out object in a watched namespace.
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &watched.name);
    let created = pods
        .create(
            &PostParams::default(),
            &pod("opted-out", json!({"jackal.dev/agent": "ignore"}))?,
        )
        .await?;
    assert_eq!(
        created.spec.unwrap_or_default().containers[0].image.as_deref(),
        Some("docker.io/jackaldev/demo-web:1.0.0")
    );
    Ok(())
}

/// The system namespaces are excluded by name, whatever their labels: even carrying this
/// webhook's scope label, `kube-system` and `kube-node-lease` are left alone (checked with
/// server-side dry runs, so nothing is created there). A control namespace labelled just after
/// them is rewritten first, which proves the API server already sees their labels.
#[tokio::test]
async fn system_namespaces_are_excluded_by_name() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams};

    let cluster = Cluster::connect().await?;
    let webhook = TestWebhook::start(
        &cluster.client,
        "webhook-system",
        test_rules(),
        WebhookSpec::default(),
    )
    .await?;
    let control = cluster.namespace("webhook-system-control").await?;
    let namespaces = Api::<Namespace>::all(cluster.client.clone());
    let scope = webhook.namespace_labels()[0].1.clone();
    let label = |value: serde_json::Value| {
        let labels: serde_json::Map<String, serde_json::Value> = webhook
            .namespace_labels()
            .into_iter()
            .map(|(key, _)| (key, value.clone()))
            .collect();
        Patch::Merge(json!({"metadata": {"labels": labels}}))
    };
    let systems = ["kube-system", "kube-node-lease"];
    let result = async {
        // The system namespaces get the label first, the control namespace after them.
        for namespace in systems.iter().copied().chain([control.name.as_str()]) {
            namespaces
                .patch(namespace, &PatchParams::default(), &label(json!(scope)))
                .await?;
        }
        // Once the control is rewritten, the API server has seen the earlier labels too.
        webhook.wait_until_active(&cluster.client, &control.name).await?;
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        for system in systems {
            let created = Api::<Pod>::namespaced(cluster.client.clone(), system)
                .create(&dry_run, &pod("excluded", json!({}))?)
                .await?;
            assert_eq!(
                created.spec.unwrap_or_default().containers[0].image.as_deref(),
                Some("docker.io/jackaldev/demo-web:1.0.0"),
                "{system} is excluded"
            );
        }
        anyhow::Ok(())
    }
    .await;
    for system in systems {
        namespaces
            .patch(system, &PatchParams::default(), &label(json!(null)))
            .await?;
    }
    result
}
