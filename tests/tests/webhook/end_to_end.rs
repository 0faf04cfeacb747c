//! End to end on the real node, the way bootstrap goes: the injector runs in the cluster
//! (borrowing the preloaded pause image, fed from ConfigMap chunks) behind a NodePort; the node
//! pulls the registry image from it, and the registry runs behind NodePort 31999; the demo image
//! is copied from the injector into the registry with its digest; then the webhook rewrites a
//! Deployment's `docker.io/jackaldev/demo-web:1.0.0` to
//! `127.0.0.1:31999/docker.io/jackaldev/demo-web:1.0.0` (and another's `registry:3.1.2`, a Docker
//! Hub short name, to `127.0.0.1:31999/docker.io/library/registry:3.1.2`), and the air-gapped node
//! pulls them from the registry and runs them.

use std::collections::BTreeMap;
use std::time::Duration;

use jackal_core::layout::Layout;
use jackal_core::payload::{self, DEFAULT_CHUNK_SIZE, SourceImage};
use jackal_crds::init::WebhookSpec;
use jackal_tests::wait::{event_messages, pod_ready, wait_until};
use jackal_tests::webhook::{TestWebhook, test_rules};
use jackal_tests::{Cluster, from_json, http, injector};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use serde_json::json;

const IMAGE: &str = "docker.io/jackaldev/demo-web:1.0.0";
const REGISTRY_IMAGE: &str = "docker.io/library/registry:3.1.2";
/// Where the injector (the seed registry) answers on the node.
const SEED_NODE_PORT: u16 = 31998;
/// Where the registry answers on the node: the address the test rules rewrite images to.
const REGISTRY_NODE_PORT: u16 = 31999;

/// A chunk ConfigMap, immutable as the bootstrap makes them: the injector verifies the chunks once,
/// so they must never change under it (and the kubelet stops watching immutable ConfigMaps).
fn config_map(name: &str, key: &str, bytes: Vec<u8>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        binary_data: Some(BTreeMap::from([(key.to_owned(), ByteString(bytes))])),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}

/// A NodePort Service for the pods labelled `app`, retried while an earlier run's namespace still
/// holds the port.
async fn expose(services: &Api<Service>, name: &str, app: &str, node_port: u16) -> anyhow::Result<()> {
    let service: Service = from_json(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": {"app": app}, "ports": [{"port": 5000, "targetPort": 5000, "nodePort": node_port}]},
    }))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        match services.create(&PostParams::default(), &service).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status))
                if status.message.contains("already allocated") && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Waits until a registry answers `GET /v2/` on `address`.
async fn wait_for_registry(address: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !matches!(http::get(address, "/v2/", &[]).await, Ok(response) if response.status == 200) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the registry never answered on {address}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_deployment_runs_from_the_in_cluster_registry() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let seed = cluster
        .labelled_namespace("e2e-seed", &[("jackal.dev/agent".into(), "ignore".into())])
        .await?;

    // The payload: the demo image from the test cluster's own image layout, in ConfigMap chunks.
    let layout = Layout::new(cluster.dir().join("images/layout"));
    let images: Vec<SourceImage> = [IMAGE, REGISTRY_IMAGE]
        .into_iter()
        .map(|reference| SourceImage {
            layout: layout.clone(),
            reference: reference.into(),
        })
        .collect();
    let mut chunks = Vec::new();
    let summary = payload::build(&images, DEFAULT_CHUNK_SIZE, |index, bytes| {
        chunks.push((payload::chunk_name(index), bytes.to_vec()));
        Ok(())
    })?;
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &seed.name);
    for (name, bytes) in &chunks {
        config_maps
            .create(&PostParams::default(), &config_map(name, name, bytes.clone()))
            .await?;
    }
    let binary = std::fs::read(injector::binary()?)?;
    config_maps
        .create(
            &PostParams::default(),
            &config_map("jackal-injector", "jackal-injector", binary),
        )
        .await?;

    let sources: Vec<_> = chunks
        .iter()
        .map(|(name, _)| json!({"configMap": {"name": name}}))
        .collect();
    let seed_pod: Pod = from_json(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "injector", "labels": {"app": "jackal-injector", "jackal.dev/agent": "ignore"}},
        "spec": {
            "containers": [{
                "name": "injector",
                "image": "registry.k8s.io/pause:3.10",
                "imagePullPolicy": "IfNotPresent",
                "command": ["/injector/jackal-injector", "--dir", "/payload", "--chunks", chunks.len().to_string(), summary.digest],
                "ports": [{"containerPort": 5000}],
                "readinessProbe": {"httpGet": {"path": "/v2/", "port": 5000}, "periodSeconds": 1},
                "volumeMounts": [{"name": "injector", "mountPath": "/injector"}, {"name": "payload", "mountPath": "/payload"}],
            }],
            "volumes": [
                {"name": "injector", "configMap": {"name": "jackal-injector", "defaultMode": 0o755}},
                {"name": "payload", "projected": {"sources": sources}},
            ],
        },
    }))?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &seed.name);
    pods.create(&PostParams::default(), &seed_pod).await?;
    wait_until(&pods, "injector", Duration::from_secs(60), "Ready", pod_ready()).await?;
    let services = Api::<Service>::namespaced(cluster.client.clone(), &seed.name);
    expose(&services, "seed-registry", "jackal-injector", SEED_NODE_PORT).await?;
    let seed_address = format!("127.0.0.1:{SEED_NODE_PORT}");
    wait_for_registry(&seed_address).await?;

    // The registry, its image pulled from the injector by the node, takes the demo image.
    let registry_pod: Pod = from_json(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "registry", "labels": {"app": "registry", "jackal.dev/agent": "ignore"}},
        "spec": {
            "containers": [{
                "name": "registry",
                "image": format!("{seed_address}/{REGISTRY_IMAGE}"),
                "ports": [{"containerPort": 5000}],
                "readinessProbe": {"httpGet": {"path": "/v2/", "port": 5000}, "periodSeconds": 1},
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/registry"}],
            }],
            "securityContext": {"fsGroup": 65532},
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }))?;
    pods.create(&PostParams::default(), &registry_pod).await?;
    wait_until(&pods, "registry", Duration::from_secs(60), "Ready", pod_ready()).await?;
    expose(&services, "registry", "registry", REGISTRY_NODE_PORT).await?;
    let registry_address = format!("127.0.0.1:{REGISTRY_NODE_PORT}");
    wait_for_registry(&registry_address).await?;
    for image in [IMAGE, REGISTRY_IMAGE] {
        let copied = std::process::Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--preserve-digests",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg(format!("docker://{seed_address}/{image}"))
            .arg(format!("docker://{registry_address}/{image}"))
            .output()?;
        anyhow::ensure!(
            copied.status.success(),
            "skopeo copy of {image} from the injector to the registry: {}",
            String::from_utf8_lossy(&copied.stderr)
        );
    }
    let digest = layout.find(IMAGE)?.digest;
    let manifest = http::request(
        "HEAD",
        &registry_address,
        "/v2/docker.io/jackaldev/demo-web/manifests/1.0.0",
        &[(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )],
        b"",
    )
    .await?;
    assert_eq!(manifest.status, 200);
    assert_eq!(
        manifest.header("docker-content-digest"),
        Some(digest.as_str()),
        "the copy keeps the digest"
    );

    // The workloads: ordinary Deployments naming public images, one by its full name and one by
    // its Docker Hub short name (`registry:3.1.2` is `docker.io/library/registry:3.1.2`).
    let webhook =
        TestWebhook::start(&cluster.client, "e2e-app", test_rules(), WebhookSpec::default()).await?;
    let app = cluster
        .labelled_namespace("e2e-app", &webhook.namespace_labels())
        .await?;
    webhook.wait_until_active(&cluster.client, &app.name).await?;
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &app.name);
    let workloads = [
        ("web", IMAGE, IMAGE, 8080, "/healthz"),
        ("mirror", "registry:3.1.2", REGISTRY_IMAGE, 5000, "/v2/"),
    ];
    for (name, image, _, port, path) in workloads {
        let deployment: Deployment = from_json(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "securityContext": {"fsGroup": 65532},
                    "containers": [{"name": name, "image": image, "imagePullPolicy": "Always",
                                    "readinessProbe": {"httpGet": {"path": path, "port": port}, "periodSeconds": 1}}],
                }},
            },
        }))?;
        deployments.create(&PostParams::default(), &deployment).await?;
    }
    let available = |deployment: Option<&Deployment>| {
        deployment
            .and_then(|d| d.status.as_ref())
            .is_some_and(|status| status.available_replicas == Some(1))
    };
    let app_pods = Api::<Pod>::namespaced(cluster.client.clone(), &app.name);
    for (name, _, full, _, _) in workloads {
        wait_until(
            &deployments,
            name,
            Duration::from_secs(90),
            "available",
            available,
        )
        .await?;
        let pod = app_pods
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no pod for {name}"))?;
        let expected = format!("{registry_address}/{full}");
        let digest = layout.find(full)?.digest;
        let spec_image = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.containers[0].image.clone());
        assert_eq!(
            spec_image.as_deref(),
            Some(expected.as_str()),
            "{name} is rewritten"
        );
        // The status names the image by any of its names on the node (the registry image also came
        // from the injector), so where it was pulled from is read from the Pulled event below.
        let status = pod
            .status
            .clone()
            .unwrap_or_default()
            .container_statuses
            .unwrap_or_default();
        assert!(
            status[0].image_id.ends_with(digest.as_str()),
            "{name} ran {} instead of {digest}",
            status[0].image_id
        );
        let pulled = format!("Successfully pulled image \"{expected}\"");
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        event_messages(
            &cluster.client,
            &app.name,
            &pod_name,
            "Pulled",
            Duration::from_secs(30),
            |m| m.contains(&pulled),
        )
        .await?;
    }
    let manifests = [
        "docker.io/jackaldev/demo-web/manifests/1.0.0",
        "docker.io/library/registry/manifests/3.1.2",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let served = cluster.kubectl_ok(&["logs", "-n", &seed.name, "registry"])?;
        if manifests.iter().all(|manifest| served.contains(manifest)) {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the registry log lacks one of {manifests:?}:\n{served}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Bootstrap's last step removes the seed: as PID 1 the injector exits on SIGTERM, so its pod
    // goes at once instead of after the default 30 s grace period (20 s allows for a loaded node).
    let started = std::time::Instant::now();
    let injector_pod = pods.get("injector").await?;
    pods.delete("injector", &Default::default()).await?;
    let uid = injector_pod.metadata.uid.clone().unwrap_or_default();
    tokio::time::timeout(
        Duration::from_secs(45),
        kube::runtime::wait::await_condition(
            pods.clone(),
            "injector",
            kube::runtime::wait::conditions::is_deleted(&uid),
        ),
    )
    .await??;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the injector pod took {:?} to go",
        started.elapsed()
    );
    Ok(())
}
