//! Controllers drive real pods: a Deployment scales up and down.

use std::time::Duration;

use jackal_tests::wait::wait_until;
use jackal_tests::{Cluster, from_json};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::DEMO_IMAGE;

fn available(replicas: i32) -> impl Fn(Option<&Deployment>) -> bool {
    move |deployment: Option<&Deployment>| {
        deployment.and_then(|d| d.status.as_ref()).is_some_and(|status| {
            status.available_replicas.unwrap_or(0) == replicas && status.replicas.unwrap_or(0) == replicas
        })
    }
}

#[tokio::test]
async fn a_deployment_scales_up_and_down() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("deployment").await?;
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &namespace.name);
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    let deployment: Deployment = from_json(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "web",
                        "image": DEMO_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
                    }],
                },
            },
        },
    }))?;
    deployments.create(&PostParams::default(), &deployment).await?;
    let timeout = Duration::from_secs(90);
    wait_until(
        &deployments,
        "web",
        timeout,
        "available with 1 replica",
        available(1),
    )
    .await?;

    let scale = |replicas: i32| Patch::Merge(json!({"spec": {"replicas": replicas}}));
    deployments
        .patch("web", &PatchParams::default(), &scale(3))
        .await?;
    wait_until(
        &deployments,
        "web",
        timeout,
        "available with 3 replicas",
        available(3),
    )
    .await?;
    let running = pods.list(&ListParams::default().labels("app=web")).await?;
    let mut addresses: Vec<_> = running
        .items
        .iter()
        .filter_map(|pod| pod.status.as_ref()?.pod_ip.clone())
        .collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 3, "three pods with distinct IPs: {addresses:?}");

    deployments
        .patch("web", &PatchParams::default(), &scale(1))
        .await?;
    wait_until(
        &deployments,
        "web",
        timeout,
        "scaled back to 1 replica",
        available(1),
    )
    .await?;
    Ok(())
}
