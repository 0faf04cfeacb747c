//! The air gap: the node pulls from nothing but loopback NodePorts. An image on the connected-side
//! registry (which the host reaches fine) or on a public registry cannot be pulled by the node.

use std::time::Duration;

use jackal_tests::wait::{event_messages, pod_waiting_with, wait_until};
use jackal_tests::{Cluster, connected_registry, from_json, http};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const PULL_FAILURES: &[&str] = &["ErrImagePull", "ImagePullBackOff"];

async fn assert_unpullable(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    image: &str,
) -> anyhow::Result<()> {
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), namespace);
    let pod: Pod = from_json(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": image, "imagePullPolicy": "Always"}]},
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    wait_until(
        &pods,
        name,
        Duration::from_secs(60),
        "failing to pull",
        pod_waiting_with(PULL_FAILURES),
    )
    .await?;

    let failed = format!("Failed to pull image \"{image}\"");
    let message = event_messages(
        &cluster.client,
        namespace,
        name,
        "Failed",
        Duration::from_secs(30),
        |m| m.contains(&failed) && m.contains("connection refused"),
    )
    .await?;
    assert!(
        message.contains(&format!("Failed to pull image \"{image}\"")),
        "events: {message}"
    );
    assert!(
        message.contains("connection refused"),
        "the pull must fail on the machine: {message}"
    );
    Ok(())
}

#[tokio::test]
async fn the_node_cannot_pull_from_the_connected_registry() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("airgap-connected").await?;
    let registry = connected_registry();
    // The connected side holds the image and the host can read it...
    let manifest = http::get(
        &registry,
        "/v2/jackaldev/demo-web/manifests/1.0.0",
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
    )
    .await?;
    assert_eq!(
        manifest.status,
        200,
        "the connected registry must hold the image: {}",
        manifest.text()
    );
    // ...but the node cannot pull it.
    assert_unpullable(
        &cluster,
        &namespace.name,
        "connected",
        &format!("{registry}/jackaldev/demo-web:1.0.0"),
    )
    .await
}

#[tokio::test]
async fn the_node_cannot_pull_from_public_registries() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("airgap-public").await?;
    assert_unpullable(
        &cluster,
        &namespace.name,
        "docker-hub",
        "docker.io/library/nginx:1.27",
    )
    .await?;
    assert_unpullable(
        &cluster,
        &namespace.name,
        "ghcr",
        "ghcr.io/stefanprodan/podinfo:6.4.0",
    )
    .await
}
