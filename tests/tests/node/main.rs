//! The test cluster's node, for real: pods from preloaded images run, `kubectl logs` and `exec` work,
//! Deployments scale, NodePorts answer on 127.0.0.1, pods reach each other and Services, and the
//! air gap holds (no default route in pods, no pull from any registry but loopback NodePorts), and
//! the local images rebuild with the same digests.

mod airgap;
mod images;
mod network;
mod pods;
mod workloads;

use std::time::Duration;

use jackal_tests::from_json;
use jackal_tests::wait::{pod_ready, wait_until};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

/// The demo workload, preloaded into the node's containerd.
const DEMO_IMAGE: &str = "docker.io/jackaldev/demo-web:1.0.0";
/// How long a pod from a preloaded image may take to become Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The content of `path` inside the demo-web pod `pod`, read with the real `kubectl exec`.
fn read_in_pod(
    cluster: &jackal_tests::Cluster,
    namespace: &str,
    pod: &str,
    path: &str,
) -> anyhow::Result<String> {
    cluster.kubectl_ok(&["exec", "-n", namespace, pod, "--", "/demo-web", "cat", path])
}

/// Creates a demo-web pod (serving on 8080 with `message`) and waits until it is Ready.
async fn ready_demo_pod(api: &Api<Pod>, name: &str, message: &str) -> anyhow::Result<Pod> {
    api.create(&PostParams::default(), &demo_pod(name, message)?)
        .await?;
    wait_until(api, name, READY_TIMEOUT, "Ready", pod_ready()).await
}

fn demo_pod(name: &str, message: &str) -> anyhow::Result<Pod> {
    from_json(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "web",
                "image": DEMO_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "args": ["serve", "-message", message],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
            }],
        },
    }))
}

fn pod_ip(pod: &Pod) -> anyhow::Result<String> {
    pod.status
        .as_ref()
        .and_then(|status| status.pod_ip.clone())
        .ok_or_else(|| anyhow::anyhow!("pod has no IP"))
}
