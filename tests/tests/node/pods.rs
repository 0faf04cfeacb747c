//! A pod whose image is preloaded runs to Ready, the real kubectl reads its logs and execs in it,
//! and pods get a service-account token the API server accepts and the cluster's CA.

use std::time::Instant;

use jackal_tests::Cluster;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::{read_in_pod, ready_demo_pod};

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

/// What real pods need from the control plane: a projected service-account token the API server
/// accepts as the pod's identity, the cluster's CA (from the root CA ConfigMap), and the namespace.
#[tokio::test]
async fn pods_get_a_working_service_account_token_and_the_cluster_ca() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("service-account").await?;
    let api = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    ready_demo_pod(&api, "web", "token").await?;
    let read = |file: &str| {
        let path = format!("/var/run/secrets/kubernetes.io/serviceaccount/{file}");
        read_in_pod(&cluster, &namespace.name, "web", &path)
    };
    let (token, ca, pod_namespace) = (read("token")?, read("ca.crt")?, read("namespace")?);
    let cluster_ca = cluster.dir().join("pki/ca.crt");
    assert_eq!(
        ca.trim(),
        std::fs::read_to_string(&cluster_ca)?.trim(),
        "ca.crt is the cluster's CA"
    );
    assert_eq!(pod_namespace.trim(), namespace.name);

    // The token alone (no client certificate) authenticates as the pod's service account.
    let server = cluster.kubectl_ok(&["config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"])?;
    let whoami = std::process::Command::new(cluster.dir().join("bin/kubectl"))
        .args(["--kubeconfig", "/dev/null", "--server", server.trim()])
        .arg("--certificate-authority")
        .arg(&cluster_ca)
        .args([
            "--token",
            token.trim(),
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()?;
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        format!("system:serviceaccount:{}:default", namespace.name),
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    Ok(())
}
