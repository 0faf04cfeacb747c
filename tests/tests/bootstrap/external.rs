//! `kubectl jackal init --registry-url` with a registry Jackal does not run: a distribution
//! registry with its own push and pull accounts, already serving in the cluster's network at
//! `127.0.0.1:<nodePort>` on the node. Nothing is seeded; the init images are pushed into that
//! registry, the operator runs from it and reports the `JackalInit` Ready, the webhook rewrites
//! workloads to it and the node pulls from it with the pull account. Run again, init changes
//! nothing; asked to switch to another registry, it refuses and says why.

use std::process::Command;
use std::time::Duration;

use jackal_core::bootstrap::credentials::htpasswd;
use jackal_core::bootstrap::objects::{self, REGISTRY};
use jackal_core::bootstrap::operator::OPERATOR;
use jackal_core::bootstrap::steps::container_image;
use jackal_crds::JackalInit;
use jackal_crds::names::{INIT_NAME, STATE_SECRET};
use jackal_tests::wait::wait_until;
use jackal_tests::{Cluster, Scratch, http};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ListParams, PostParams};
use kube::{Api, Resource};

use super::init::{
    ClusterWide, base64_login, every_step_succeeded, head_manifest, init_package, plugin, run_app, run_ok,
};

/// The external registry's NodePort (the other bootstrap tests use 31996, 31997 and 31999).
const NODE_PORT: i32 = 31995;
/// The image the external registry runs, imported into the node for this test.
const REGISTRY_IMAGE: &str = "docker.io/library/registry:3.1.2";

/// The registry image in the node's containerd until dropped (no registry serves it to the node).
struct Imported<'a>(&'a Cluster);

impl<'a> Imported<'a> {
    fn new(cluster: &'a Cluster) -> anyhow::Result<Self> {
        let archive = cluster.dir().join("images/archives/library-registry-3.1.2.tar");
        let output = ctr(cluster).args(["images", "import"]).arg(&archive).output()?;
        anyhow::ensure!(
            output.status.success(),
            "ctr images import {} failed: {}",
            archive.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(Self(cluster))
    }
}

impl Drop for Imported<'_> {
    fn drop(&mut self) {
        let _ = ctr(self.0).args(["images", "rm", REGISTRY_IMAGE]).output();
    }
}

fn ctr(cluster: &Cluster) -> Command {
    let mut command = Command::new("ctr");
    command
        .arg("--address")
        .arg(cluster.dir().join("containerd/containerd.sock"))
        .args(["--namespace", "k8s.io"]);
    command
}

/// Runs a distribution registry in `namespace` behind `NODE_PORT`, with a push and a pull account.
async fn external_registry(cluster: &Cluster, namespace: &str) -> anyhow::Result<String> {
    let secret = objects::registry_secret(
        namespace,
        &objects::registry_config("external-test-http-secret"),
        &htpasswd(&[("ci-push", "push-secret-1"), ("ci-pull", "pull-secret-1")])?,
    );
    Api::<Secret>::namespaced(cluster.client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    let deployment = objects::registry_deployment(namespace, REGISTRY_IMAGE, 1, None, "external")?;
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), namespace);
    deployments.create(&PostParams::default(), &deployment).await?;
    let service = objects::node_port_service(namespace, REGISTRY, REGISTRY, Some(NODE_PORT), false)?;
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(cluster.client.clone(), namespace)
        .create(&PostParams::default(), &service)
        .await?;
    wait_until(
        &deployments,
        REGISTRY,
        Duration::from_secs(120),
        "the external registry available",
        jackal_tests::wait::deployment_available(1),
    )
    .await?;
    let address = format!("127.0.0.1:{NODE_PORT}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !http::get(&address, "/v2/", &[])
        .await
        .is_ok_and(|response| response.status == 401)
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the external registry does not answer at {address}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(address)
}

#[tokio::test]
async fn init_with_an_external_registry_seeds_nothing_and_runs_everything_from_it() -> anyhow::Result<()> {
    let _init = super::INIT.lock().await;
    let _node = super::NODE.read().await;
    let cluster = Cluster::connect().await?;
    let scratch = Scratch::new("bootstrap-external")?;
    let _imported = Imported::new(&cluster)?;
    let registry_namespace = cluster
        .labelled_namespace(
            "external-registry",
            &[("jackal.dev/agent".into(), "ignore".into())],
        )
        .await?;
    let address = external_registry(&cluster, &registry_namespace.name).await?;
    let namespace = cluster
        .labelled_namespace("external-init", &[("jackal.dev/agent".into(), "ignore".into())])
        .await?;
    let inits = Api::<JackalInit>::all(cluster.client.clone());
    let cluster_wide = ClusterWide(&cluster, &namespace.name);
    cluster_wide.remove();
    let package = init_package(&cluster, &scratch)?;

    let init_with = |command: &mut Command, url: &str| {
        command
            .args(["init", "--package", &package, "--namespace", &namespace.name])
            .args(["--registry-url", url, "--timeout", "300"])
            .env("JACKAL_REGISTRY_PUSH_USERNAME", "ci-push")
            .env("JACKAL_REGISTRY_PUSH_PASSWORD", "push-secret-1")
            .env("JACKAL_REGISTRY_PULL_USERNAME", "ci-pull")
            .env("JACKAL_REGISTRY_PULL_PASSWORD", "pull-secret-1");
    };
    let init = |command: &mut Command| init_with(command, &address);
    let mut first = plugin(&cluster)?;
    init(&mut first);
    let (printed, stages) = run_ok(&mut first)?;
    assert_eq!(printed.trim(), address);
    assert!(
        stages.contains(&format!(
            "[init] the init images into the external registry {address}"
        )),
        "{stages}"
    );
    for seeding in ["seed payload", "injector", "registry from its own image"] {
        assert!(
            !stages.contains(seeding),
            "an external registry is not seeded:\n{stages}"
        );
    }
    assert!(
        !stages.contains("push-secret-1"),
        "no password is printed:\n{stages}"
    );

    // Nothing of the internal registry or the seed exists; the state holds the given accounts.
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &namespace.name);
    assert!(deployments.get_opt(REGISTRY).await?.is_none());
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &namespace.name);
    assert!(
        config_maps
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .all(|map| {
                !map.metadata
                    .name
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("jackal-payload")
            })
    );
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), &namespace.name);
    let state = jackal_core::bootstrap::steps::read_state(&secrets.get(STATE_SECRET).await?)?;
    assert_eq!(state.registry.address, address);
    assert_eq!(state.registry.push_username, "ci-push");
    assert_eq!(state.registry.pull_username, "ci-pull");

    // The operator runs from the external registry, which serves its image to the pull account.
    let operator = deployments.get(OPERATOR).await?;
    let operator_image = container_image(&operator).unwrap_or_default();
    assert!(
        operator_image.starts_with(&format!("{address}/docker.io/jackaldev/jackal-operator:")),
        "{operator_image}"
    );
    let pull_login = base64_login("ci-pull", "pull-secret-1");
    let served = head_manifest(
        &address,
        &pull_login,
        "docker.io/jackaldev/jackal-operator",
        env!("CARGO_PKG_VERSION"),
    )
    .await?;
    assert_eq!(served.status, 200);
    let owned = inits.get(INIT_NAME).await?;
    let status = owned.status.clone().unwrap_or_default();
    assert!(super::init::is_ready(Some(&owned)), "{status:?}");
    assert_eq!(
        status.registry.as_ref().map(|registry| registry.address.clone()),
        Some(address.clone())
    );
    every_step_succeeded(&status);

    // A workload naming docker.io is rewritten to the external registry and pulled from it.
    let app = cluster.namespace("external-app").await?;
    let (_, pod) = run_app(&cluster, &app.name, REGISTRY_IMAGE).await?;
    let image = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.containers[0].image.clone());
    assert_eq!(image, Some(format!("{address}/{REGISTRY_IMAGE}")));

    // Again: nothing changes. Another registry: refused, saying what is in force.
    let versions = || async {
        anyhow::Ok([
            deployments.get(OPERATOR).await?.meta().resource_version.clone(),
            secrets.get(STATE_SECRET).await?.meta().resource_version.clone(),
            inits.get(INIT_NAME).await?.meta().resource_version.clone(),
        ])
    };
    let before = versions().await?;
    let mut again = plugin(&cluster)?;
    init(&mut again);
    run_ok(&mut again)?;
    assert_eq!(versions().await?, before, "a second init changed something");
    let mut switch = plugin(&cluster)?;
    init_with(&mut switch, "registry.example:5000");
    let refused = switch.output()?;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(&format!(
            "this cluster was initialised with the registry {address}"
        )),
        "{said}"
    );

    drop(cluster_wide);
    Ok(())
}
