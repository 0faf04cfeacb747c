//! The node runs the operator image as non-root. The node cannot pull from the connected registry
//! (the air gap), so the image is imported into its containerd the way the testbed preloads
//! images (`ctr images import` of the OCI archive), and the pod never pulls.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use jackal_tests::wait::{describe, wait_until};
use jackal_tests::{Cluster, from_json, testbed_dir};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::built;

/// How long the pod may take to run `--version` and exit.
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `ctr` against the node's containerd, in the namespace the kubelet uses.
fn ctr_node(args: &[&str]) -> anyhow::Result<String> {
    let socket = testbed_dir().join("containerd/containerd.sock");
    ensure!(
        socket.exists(),
        "the test cluster's containerd is not running ({})",
        socket.display()
    );
    let output = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["--namespace", "k8s.io"])
        .args(args)
        .output()
        .context("failed to run ctr (Debian package containerd, scripts/install-deps)")?;
    ensure!(
        output.status.success(),
        "ctr {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[tokio::test]
async fn node_runs_the_operator_image_as_non_root() -> anyhow::Result<()> {
    let built = built()?;
    let cluster = Cluster::connect().await?;
    let archive = built.archive.to_str().context("archive path is not UTF-8")?;
    ctr_node(&["images", "import", archive])?;
    let listing = ctr_node(&["images", "list"])?;
    let line = listing
        .lines()
        .find(|line| line.split_whitespace().next() == Some(built.reference.as_str()))
        .with_context(|| format!("{} not in the node after import:\n{listing}", built.reference))?;
    ensure!(
        line.contains(&built.digest),
        "the node holds another {}: {line}",
        built.reference
    );

    let namespace = cluster.namespace("operator-image").await?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    let pod: Pod = from_json(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-version"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            // The kubelet refuses to start the container unless the image's user is non-root.
            "securityContext": {"runAsNonRoot": true},
            "containers": [{
                "name": "operator",
                "image": built.reference,
                "imagePullPolicy": "Never",
                "args": ["--version"],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let finished = wait_until(
        &pods,
        "operator-version",
        FINISH_TIMEOUT,
        "finished",
        |pod: Option<&Pod>| {
            matches!(
                pod.and_then(|pod| pod.status.as_ref())
                    .and_then(|status| status.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        },
    )
    .await?;
    let phase = finished.status.as_ref().and_then(|status| status.phase.clone());
    ensure!(
        phase.as_deref() == Some("Succeeded"),
        "`jackal-operator --version` did not succeed in the image:\n{}",
        describe(&pods, "operator-version").await
    );
    let log = cluster.kubectl_ok(&["logs", "-n", &namespace.name, "operator-version"])?;
    assert_eq!(
        log.trim(),
        format!("jackal-operator {}", env!("CARGO_PKG_VERSION")),
        "the version the image prints"
    );
    Ok(())
}
