//! Bootstrap's steps (`jackal_core::bootstrap`) on the test cluster's real node, from nothing but
//! ConfigMaps and an image already on the node: the payload ConfigMaps, the injector in the
//! borrowed pause image, the registry pulling its image from the seed, the seed images copied in by
//! Jackal's own code, the registry pulling its own image from itself, and cleanup by label. Run
//! again, the steps change nothing. `init` runs the same through the plugin.

mod external;
mod faults;
mod init;

use std::time::Duration;

use jackal_core::bootstrap::objects::{INJECTOR_LABEL, INJECTOR_VALUE, REGISTRY};
use jackal_core::bootstrap::steps::{Bootstrap, Reach};
use jackal_core::layout::Layout;
use jackal_core::payload::SourceImage;
use jackal_crds::init::{InternalRegistry, JackalInitSpec, RegistrySpec, RegistryStorage};
use jackal_tests::{Cluster, Scratch, http, injector};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use kube::Api;
use kube::api::ListParams;

const REGISTRY_IMAGE: &str = "docker.io/library/registry:3.1.2";

/// The test node, shared: tests that run pods on it hold it for reading; a test that makes it
/// unschedulable (cordon) holds it for writing, so no other test's pod meets a cordoned node.
pub(crate) static NODE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
/// The `JackalInit` (one per cluster) and what comes with it: held by the tests that run `init`.
pub(crate) static INIT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Not the usual 31999: the webhook's end-to-end test uses that one.
const NODE_PORT: i32 = 31997;

#[tokio::test]
async fn a_registry_is_bootstrapped_from_config_maps_and_runs_from_itself() -> anyhow::Result<()> {
    let _node = NODE.read().await;
    let cluster = Cluster::connect().await?;
    let namespace = cluster
        .labelled_namespace("bootstrap", &[("jackal.dev/agent".into(), "ignore".into())])
        .await?;
    // The registry keeps its blobs on a claim, bound to a volume on the node made for this test.
    let scratch = Scratch::new("bootstrap-volume")?;
    let volume = Volume::new(&cluster, &namespace.name, scratch.path())?;
    let layout = Layout::new(cluster.dir().join("images/layout"));
    let bootstrap = Bootstrap {
        client: cluster.client.clone(),
        namespace: namespace.name.clone(),
        spec: JackalInitSpec {
            registry: RegistrySpec {
                internal: Some(InternalRegistry {
                    node_port: Some(NODE_PORT),
                    storage: Some(RegistryStorage {
                        size: "1Gi".to_owned(),
                        storage_class_name: Some(volume.class.clone()),
                    }),
                    ..InternalRegistry::default()
                }),
                external: None,
            },
            ..JackalInitSpec::default()
        },
        seed_images: vec![SourceImage {
            layout: layout.clone(),
            reference: REGISTRY_IMAGE.into(),
        }],
        registry_image: REGISTRY_IMAGE.into(),
        injector_binary: injector::binary()?,
        reach: Reach::NodePort,
    };

    let state = bootstrap.ensure_state().await?;
    assert_eq!(state.registry.address, format!("127.0.0.1:{NODE_PORT}"));
    assert_eq!(
        bootstrap.ensure_state().await?,
        state,
        "the state is generated once"
    );

    let payload = bootstrap.write_payload().await?;
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &namespace.name);
    let seed_objects = ListParams::default().labels(&format!("{INJECTOR_LABEL}={INJECTOR_VALUE}"));
    let written = config_maps.list(&seed_objects).await?.items;
    assert_eq!(written.len(), payload.chunks.len());
    for config_map in &written {
        assert_eq!(config_map.immutable, Some(true));
        let size: usize = config_map
            .binary_data
            .iter()
            .flatten()
            .map(|(_, bytes)| bytes.0.len())
            .sum();
        assert!(size < 1_000_000, "a ConfigMap holds {size} bytes");
    }
    assert_eq!(
        bootstrap.write_payload().await?,
        payload,
        "writing again keeps the same chunks"
    );

    let seed = bootstrap.start_injector(&payload).await?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    let injector_pod = pods.get("jackal-injector").await?;
    let image = injector_pod
        .spec
        .and_then(|spec| spec.containers[0].image.clone());
    assert_eq!(
        image.as_deref(),
        Some("registry.k8s.io/pause:3.10"),
        "the injector borrows the node's pause image"
    );
    let served = http::get(&seed.endpoint, "/v2/", &[]).await?;
    assert_eq!(served.status, 200);

    bootstrap
        .start_registry(&state, &seed.image(REGISTRY_IMAGE))
        .await?;
    let registry = state.registry.address.clone();
    assert_eq!(
        http::get(&registry, "/v2/", &[]).await?.status,
        401,
        "the registry demands a login"
    );
    let copied = bootstrap.push_images(&state, &seed.endpoint).await?;
    let expected = layout.find(REGISTRY_IMAGE)?.digest;
    assert_eq!(copied[0].digest.as_ref(), Some(&expected));

    bootstrap.self_host_registry(&state, Some(&seed.endpoint)).await?;
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &namespace.name);
    let deployment = deployments.get(REGISTRY).await?;
    let running = deployment
        .spec
        .and_then(|spec| spec.template.spec)
        .and_then(|spec| spec.containers[0].image.clone());
    assert_eq!(
        running.as_deref(),
        Some(format!("{registry}/{REGISTRY_IMAGE}").as_str()),
        "the registry runs from its own image"
    );
    // ... and still holds it after the switch to a new pod.
    let access = jackal_core::registry::Access {
        credentials: jackal_core::registry::DockerConfig::with_basic(
            &registry,
            &state.registry.pull_username,
            state.registry.pull_password.expose(),
        ),
        insecure: Vec::new(),
    };
    let client = access.client(std::slice::from_ref(&registry));
    let reference: oci_client::Reference = format!("{registry}/{REGISTRY_IMAGE}").parse()?;
    // Right after a rollout kube-proxy may still send a request to the old pod's address, which
    // another test's new pod may have taken: a few seconds' grace.
    let pull_manifest = || async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let pulled = client
                .pull_manifest_raw(
                    &reference,
                    &access.auth(&registry),
                    &jackal_core::oci::media_type::IMAGE_MANIFESTS,
                )
                .await;
            match pulled {
                Ok((_, digest)) => break anyhow::Ok(digest),
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                Err(error) => break Err(error.into()),
            }
        }
    };
    let stored = pull_manifest().await?;
    assert_eq!(
        stored,
        expected.as_str(),
        "the registry image is in the self-hosted registry"
    );

    bootstrap.clean_up().await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while pods.get_opt("jackal-injector").await?.is_some() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the injector pod is still there"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        config_maps.list(&seed_objects).await?.items.is_empty(),
        "payload ConfigMaps left"
    );
    let services = Api::<Service>::namespaced(cluster.client.clone(), &namespace.name);
    assert!(services.get_opt("jackal-injector").await?.is_none());

    // Run again on the finished cluster: nothing changes.
    let generation = deployments.get(REGISTRY).await?.metadata.generation;
    assert_eq!(bootstrap.ensure_state().await?, state);
    bootstrap.self_host_registry(&state, None).await?;
    assert_eq!(
        deployments.get(REGISTRY).await?.metadata.generation,
        generation,
        "a second run does not roll the registry"
    );

    // Its pod replaced, the registry still holds its image: the blobs are on the claim.
    pods.delete_collection(
        &kube::api::DeleteParams::default().grace_period(0),
        &ListParams::default().labels(&format!("app={REGISTRY}")),
    )
    .await?;
    jackal_tests::wait::wait_until(
        &deployments,
        REGISTRY,
        Duration::from_secs(120),
        "the registry available on a new pod",
        |deployment: Option<&Deployment>| {
            deployment
                .and_then(|deployment| deployment.status.as_ref())
                .is_some_and(|status| status.available_replicas == Some(1) && status.replicas == Some(1))
        },
    )
    .await?;
    let kept = pull_manifest().await?;
    assert_eq!(
        kept,
        expected.as_str(),
        "a new registry pod serves what the old one stored"
    );
    let claim = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), &namespace.name)
        .get(REGISTRY)
        .await?;
    assert_eq!(
        claim.spec.and_then(|spec| spec.volume_name),
        Some(volume.name.clone()),
        "the claim is bound to the test's volume"
    );
    let stored = std::fs::read_dir(scratch.path().join("docker/registry/v2/blobs/sha256"))?.count();
    assert!(stored > 0, "the blobs are on the volume");
    Ok(())
}

/// A hostPath PersistentVolume of its own StorageClass, reserved for the registry's claim in one
/// namespace, deleted when dropped (this cluster has no volume provisioner).
struct Volume<'a> {
    cluster: &'a Cluster,
    name: String,
    class: String,
}

impl<'a> Volume<'a> {
    fn new(cluster: &'a Cluster, namespace: &str, path: &std::path::Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        // The registry runs as an unprivileged user; hostPath volumes ignore fsGroup.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))?;
        let name = format!("{namespace}-registry");
        let class = format!("{namespace}-local");
        let volume = serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": class,
                "claimRef": {"namespace": namespace, "name": REGISTRY},
                "hostPath": {"path": path, "type": "Directory"},
            },
        });
        let file = path.with_extension("volume.json");
        std::fs::write(&file, serde_json::to_vec(&volume)?)?;
        let applied = cluster.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
        let _ = std::fs::remove_file(&file);
        applied?;
        Ok(Self { cluster, name, class })
    }
}

impl Drop for Volume<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.kubectl_output(&[
            "delete",
            "persistentvolume",
            &self.name,
            "--ignore-not-found",
            "--wait=false",
        ]);
    }
}
