//! A pod whose image is preloaded runs to Ready, and the real kubectl reads its logs and execs in it.

use std::time::Instant;

use jackal_tests::Cluster;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::ready_demo_pod;

#[tokio::test]
async fn a_pod_from_a_preloaded_image_runs_to_ready() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("pod-ready").await?;
    let api = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);

    let started = Instant::now();
    let pod = ready_demo_pod(&api, "web", "ready").await?;
    println!(
        "pod start latency (create to Ready, preloaded image): {:?}",
        started.elapsed()
    );

    let status = pod.status.unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let container = &status.container_statuses.unwrap_or_default()[0];
    assert!(
        container.ready && container.restart_count == 0,
        "container: {container:?}"
    );
    assert_eq!(
        pod.spec.and_then(|spec| spec.node_name).as_deref(),
        Some("jackal-node")
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_logs_and_exec_work() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("logs-exec").await?;
    let api = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    ready_demo_pod(&api, "web", "logs").await?;

    let logs = cluster.kubectl_ok(&["logs", "-n", &namespace.name, "web"])?;
    assert!(logs.contains("demo-web 1.0.0 listening on :8080"), "logs: {logs}");

    let version =
        cluster.kubectl_ok(&["exec", "-n", &namespace.name, "web", "--", "/demo-web", "version"])?;
    assert_eq!(version.trim(), "demo-web 1.0.0");

    // exec reports the command's exit status.
    let output = cluster.kubectl_output(&[
        "exec",
        "-n",
        &namespace.name,
        "web",
        "--",
        "/demo-web",
        "cat",
        "/missing",
    ])?;
    assert_eq!(
        output.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
