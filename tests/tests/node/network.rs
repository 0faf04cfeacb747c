//! Networking of the node: NodePorts answer on 127.0.0.1 from the host, pods reach each other by
//! pod IP and through Services (the API server included), pods have no default route, and the
//! host never routes service addresses off the machine.

use std::time::{Duration, Instant};

use jackal_tests::{Cluster, from_json, http};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::{pod_ip, read_in_pod, ready_demo_pod};

async fn expose(api: &Api<Service>, name: &str, kind: &str) -> anyhow::Result<Service> {
    let service: Service = from_json(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": kind, "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))?;
    Ok(api.create(&PostParams::default(), &service).await?)
}

#[tokio::test]
async fn a_node_port_answers_on_loopback_from_the_host() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("node-port").await?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    let services = Api::<Service>::namespaced(cluster.client.clone(), &namespace.name);
    ready_demo_pod(&pods, "web", "through a node port").await?;
    let service = expose(&services, "web", "NodePort").await?;
    let node_port = service
        .spec
        .and_then(|spec| spec.ports)
        .and_then(|ports| ports.first().and_then(|port| port.node_port))
        .ok_or_else(|| anyhow::anyhow!("no node port allocated"))?;

    // kube-proxy programs the rules within a second or two of the endpoints appearing.
    let address = format!("127.0.0.1:{node_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        match http::get(&address, "/", &[]).await {
            Ok(response) if response.status == 200 => break response,
            other if Instant::now() > deadline => anyhow::bail!("{address} never answered 200: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    assert!(
        response.text().starts_with("through a node port (served by web"),
        "body: {}",
        response.text()
    );
    Ok(())
}

#[tokio::test]
async fn pods_reach_each_other_and_services() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("pod-to-pod").await?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    let services = Api::<Service>::namespaced(cluster.client.clone(), &namespace.name);
    let server = ready_demo_pod(&pods, "server", "pod to pod").await?;
    ready_demo_pod(&pods, "client", "client").await?;
    let service = expose(&services, "server", "ClusterIP").await?;
    let cluster_ip = service.spec.and_then(|spec| spec.cluster_ip).unwrap_or_default();

    let get = |url: String| {
        cluster.kubectl_output(&[
            "exec",
            "-n",
            &namespace.name,
            "client",
            "--",
            "/demo-web",
            "get",
            &url,
        ])
    };

    let direct = get(format!("http://{}:8080/", pod_ip(&server)?))?;
    let body = String::from_utf8_lossy(&direct.stdout);
    assert!(
        body.starts_with("pod to pod (served by server"),
        "pod IP answered: {body}"
    );

    // Service rules may take a moment after the Service appears.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let via_service = get(format!("http://{cluster_ip}/"))?;
        if via_service.status.success() {
            assert!(String::from_utf8_lossy(&via_service.stdout).starts_with("pod to pod (served by server"));
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "service {cluster_ip} never answered");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The API server is reachable through the `kubernetes` Service (it answers plain HTTP on its TLS
    // port with a 400, which is enough to prove the path).
    let api_server = get("http://10.96.0.1:443/".to_owned())?;
    let answer = String::from_utf8_lossy(&api_server.stdout);
    assert!(
        answer.contains("Client sent an HTTP request to an HTTPS server"),
        "API server via Service: {answer}"
    );
    Ok(())
}

#[tokio::test]
async fn pods_have_no_default_route() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("no-default-route").await?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    ready_demo_pod(&pods, "web", "routes").await?;
    let table = read_in_pod(&cluster, &namespace.name, "web", "/proc/net/route")?;
    // Columns: Iface Destination Gateway Flags ... Mask (hex, little-endian).
    let destinations: Vec<(&str, &str)> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((*fields.get(1)?, *fields.get(7)?))
        })
        .collect();
    assert!(!destinations.is_empty(), "no routes read: {table}");
    assert!(
        !destinations
            .iter()
            .any(|(destination, mask)| *destination == "00000000" && *mask == "00000000"),
        "a pod has a default route:\n{table}"
    );
    // The pod subnet (10.244.0.0/24) and the service CIDR (10.96.0.0/16) are routed.
    assert!(
        destinations.contains(&("0000F40A", "00FFFFFF")),
        "no pod subnet route:\n{table}"
    );
    assert!(
        destinations.contains(&("0000600A", "0000FFFF")),
        "no service CIDR route:\n{table}"
    );
    Ok(())
}

/// The host's route to any address of the service CIDR stays on the test bridge: traffic to a
/// ClusterIP that kube-proxy does not translate ends there instead of leaving by the default route.
#[test]
fn service_addresses_never_leave_the_machine() -> anyhow::Result<()> {
    for address in ["10.96.0.1", "10.96.128.77", "10.96.255.254"] {
        let output = std::process::Command::new("ip")
            .args(["route", "get", address])
            .output()?;
        let route = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(output.status.success(), "ip route get {address}: {route}");
        assert!(
            route.contains("dev jackal0") && !route.contains(" via "),
            "{address} would leave the machine: {route}"
        );
    }
    Ok(())
}
