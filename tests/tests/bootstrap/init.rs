//! `kubectl jackal init` as a user runs it: the init package built from `packages/init` with
//! `package create`, then `init` against the test cluster, killed once mid-way and run again: it
//! ends with a registry at `127.0.0.1:<port>` that demands a login and serves the registry image
//! under its digest, runs from its own image, leaves no seed object behind, and the operator
//! running as a pod from that registry, owning a Ready `JackalInit`, with its webhook rewriting a
//! workload's `docker.io` image to the registry, where the node pulls it. A second run changes nothing. When the registry's
//! image is removed from the node and its pod deleted, the operator seeds it again by itself.
//! Without a package it says where it looked.

use std::process::Command;

use anyhow::Context as _;
use std::time::Duration;

use jackal_core::bootstrap::objects::{INJECTOR_LABEL, INJECTOR_VALUE, REGISTRY};
use jackal_core::bootstrap::operator::OPERATOR;
use jackal_core::layout::Layout;
use jackal_crds::JackalInit;
use jackal_crds::init::StepPhase;
use jackal_crds::names::WEBHOOK_CONFIGURATION;
use jackal_crds::names::{INIT_NAME, STATE_SECRET};
use jackal_tests::wait::wait_until;
use jackal_tests::{
    Cluster, Scratch, connected_registry, from_json, http, injector, repository_root, workspace_binary,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Resource};
use serde_json::json;

/// Neither the webhook's end-to-end test's 31999 nor the steps test's 31997.
const NODE_PORT: i32 = 31996;

pub(super) fn plugin(cluster: &Cluster) -> anyhow::Result<Command> {
    let mut command = Command::new(workspace_binary("kubectl-jackal")?);
    command.env("KUBECONFIG", cluster.dir().join("kubeconfig"));
    Ok(command)
}

/// The cluster-wide objects the in-cluster operator of this test makes or is given (its webhook
/// configuration, whose `failurePolicy: Fail` would refuse pods everywhere once its Service is
/// gone; its ClusterRole and binding; the `JackalInit`), removed before and after the test, also
/// when it fails. The operator goes first (its pods gone): running, it would register its
/// webhook again.
pub(super) struct ClusterWide<'a>(pub(super) &'a Cluster, pub(super) &'a str);

impl ClusterWide<'_> {
    pub(super) fn remove(&self) {
        let _ = self.0.kubectl_output(&[
            "delete",
            "deployment",
            OPERATOR,
            "-n",
            self.1,
            "--ignore-not-found",
            "--cascade=foreground",
            "--timeout=60s",
        ]);
        for args in [
            ["delete", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION],
            ["delete", "clusterrolebinding", OPERATOR],
            ["delete", "clusterrole", OPERATOR],
            ["delete", "jackalinit", INIT_NAME],
        ] {
            let _ = self
                .0
                .kubectl_output(&[args[0], args[1], args[2], "--ignore-not-found"]);
        }
    }
}

impl Drop for ClusterWide<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Builds the init package from `packages/init` (images from the connected registry) into
/// `scratch`; returns its path.
pub(super) fn init_package(cluster: &Cluster, scratch: &Scratch) -> anyhow::Result<String> {
    let (package, _) = run_ok(
        plugin(cluster)?
            .args(["package", "create"])
            .arg(repository_root().join("packages/init"))
            .arg("--set")
            .arg(format!("INJECTOR={}", injector::binary()?.display()))
            .args([
                "--registry-override",
                &format!("docker.io={}", connected_registry()),
            ])
            .arg("-o")
            .arg(scratch.path()),
    )?;
    Ok(package.trim().to_owned())
}

pub(super) fn run_ok(command: &mut Command) -> anyhow::Result<(String, String)> {
    let output = command.output()?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    anyhow::ensure!(output.status.success(), "{command:?} failed:\n{stderr}");
    Ok((stdout, stderr))
}

#[tokio::test]
async fn init_bootstraps_hands_over_to_the_operator_and_the_registry_heals() -> anyhow::Result<()> {
    let _init = super::INIT.lock().await;
    let node = super::NODE.read().await;
    let cluster = Cluster::connect().await?;
    let scratch = Scratch::new("bootstrap-init")?;
    let namespace = cluster
        .labelled_namespace("init", &[("jackal.dev/agent".into(), "ignore".into())])
        .await?;
    // The JackalInit is cluster-wide: start from none, so this test's port is the one used.
    let inits = Api::<JackalInit>::all(cluster.client.clone());
    let cluster_wide = ClusterWide(&cluster, &namespace.name);
    cluster_wide.remove();

    let package = init_package(&cluster, &scratch)?;

    let init = |command: &mut Command| {
        command
            .args(["init", "--package", &package, "--namespace", &namespace.name])
            .args(["--registry-node-port", &NODE_PORT.to_string(), "--timeout", "300"]);
    };
    // Killed once the registry runs from the seed: the next run resumes from there.
    let mut interrupted = plugin(&cluster)?;
    init(&mut interrupted);
    let mut child = interrupted
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut seen = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line?;
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("[init] seed images into the registry") {
            break;
        }
    }
    child.kill()?;
    child.wait()?;
    assert!(
        seen.contains("[init] registry from the seed"),
        "the first run got as far as the registry from the seed:\n{seen}"
    );

    let mut first = plugin(&cluster)?;
    init(&mut first);
    let (address, stages) = run_ok(&mut first)?;
    let address = address.trim().to_owned();
    assert_eq!(address, format!("127.0.0.1:{NODE_PORT}"));
    for stage in [
        "[init] seed payload into ConfigMaps",
        "[init] seed registry (injector)",
        "[init] registry from its own image",
        "[init] cleanup of the seed objects",
        "[init] operator from the registry",
        "[init] the operator reports the JackalInit Ready",
    ] {
        assert!(stages.contains(stage), "no {stage:?} in:\n{stages}");
    }

    // A login is required; with the push account the registry serves its own image.
    assert_eq!(http::get(&address, "/v2/", &[]).await?.status, 401);
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), &namespace.name);
    let state = jackal_core::bootstrap::steps::read_state(&secrets.get(STATE_SECRET).await?)?;
    let login = base64_login(
        &state.registry.push_username,
        state.registry.push_password.expose(),
    );
    let manifest = head_manifest(&address, &login, "docker.io/library/registry", "3.1.2").await?;
    let expected = Layout::new(cluster.dir().join("images/layout"))
        .find("docker.io/library/registry:3.1.2")?
        .digest;
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.header("docker-content-digest"), Some(expected.as_str()));
    // The operator's image came from the package's layout, not through ConfigMaps.
    let operator = head_manifest(&address, &login, "docker.io/jackaldev/jackal-operator", "0.1.0").await?;
    assert_eq!(operator.status, 200, "the operator image is in the registry");
    assert!(
        stages.contains("[init] the other init images into the registry"),
        "{stages}"
    );
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &namespace.name);
    let seed_objects = ListParams::default().labels(&format!("{INJECTOR_LABEL}={INJECTOR_VALUE}"));
    assert!(config_maps.list(&seed_objects).await?.items.is_empty());

    // The operator runs as a pod from the registry and owns the JackalInit: every step done.
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &namespace.name);
    let operator = deployments.get(OPERATOR).await?;
    let operator_image = operator
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|spec| spec.containers[0].image.clone());
    assert!(
        operator_image
            .as_deref()
            .is_some_and(|image| image.starts_with(&format!(
                "{address}/docker.io/jackaldev/jackal-operator:{}@sha256:",
                env!("CARGO_PKG_VERSION")
            ))),
        "the operator runs from the registry, pinned by digest: {operator_image:?}"
    );
    assert_eq!(
        operator.status.and_then(|status| status.available_replicas),
        Some(1)
    );
    let owned = inits.get(INIT_NAME).await?;
    let status = owned.status.clone().unwrap_or_default();
    assert_eq!(status.observed_generation, owned.metadata.generation);
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == kind)
            .map(|condition| condition.status.clone())
    };
    assert_eq!(condition("Ready").as_deref(), Some("True"), "{status:?}");
    assert_eq!(condition("Reconciling").as_deref(), Some("False"), "{status:?}");
    assert_eq!(condition("Stalled").as_deref(), Some("False"), "{status:?}");
    assert_eq!(
        status.registry.as_ref().map(|registry| registry.address.clone()),
        Some(address.clone())
    );
    assert_eq!(
        status.architecture.map(|architecture| architecture.as_str()),
        Some(jackal_core::package::create::host_architecture())
    );
    every_step_succeeded(&status);

    // A workload naming docker.io is rewritten by the in-cluster webhook, reached by the API
    // server through its Service, and the node pulls the image from the registry.
    let app = cluster.namespace("init-app").await?;
    let (workloads, pod) = run_app(&cluster, &app.name, "docker.io/library/registry:3.1.2").await?;
    let pod = &pod;
    let spec = pod.spec.as_ref().map(|spec| spec.containers[0].image.clone());
    assert_eq!(
        spec.flatten().as_deref(),
        Some(format!("{address}/docker.io/library/registry:3.1.2").as_str())
    );
    let pulled = pod
        .status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref())
        .map(|statuses| statuses[0].image_id.clone())
        .unwrap_or_default();
    assert!(
        pulled.contains(expected.as_str()),
        "the node runs the registry's copy: {pulled}"
    );

    // Again: nothing is rolled or rewritten, the state keeps its passwords.
    let versions = || async {
        let services = Api::<Service>::namespaced(cluster.client.clone(), &namespace.name);
        anyhow::Ok([
            deployments.get(REGISTRY).await?.meta().resource_version.clone(),
            deployments.get(OPERATOR).await?.meta().resource_version.clone(),
            secrets.get(REGISTRY).await?.meta().resource_version.clone(),
            secrets.get(STATE_SECRET).await?.meta().resource_version.clone(),
            services.get(REGISTRY).await?.meta().resource_version.clone(),
            inits.get(INIT_NAME).await?.meta().resource_version.clone(),
        ])
    };
    let before = versions().await?;
    let mut second = plugin(&cluster)?;
    init(&mut second);
    let (_, again_stages) = run_ok(&mut second)?;
    assert!(again_stages.contains("nothing to seed"), "{again_stages}");
    assert_eq!(versions().await?, before, "a second init changed something");
    let again = jackal_core::bootstrap::steps::read_state(&secrets.get(STATE_SECRET).await?)?;
    assert_eq!(again, state);

    // Self-healing: the registry's image gone from the node and its only pod deleted, the new pod
    // cannot pull it (the registry was that pod); the operator seeds the registry again from its
    // copy, and the registry serves its image again. The operator is killed half-way through
    // (its container stopped once the registry runs from the seed): restarted, it finishes.
    workloads.delete("app", &DeleteParams::default()).await?;
    let registry_image = format!("{address}/docker.io/library/registry:3.1.2");
    crictl(&cluster, &["rmi", &registry_image])?;
    let registry_pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    registry_pods
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default().labels(&format!("app={REGISTRY}")),
        )
        .await?;
    // First the operator sees it (not Ready), then it seeds: the registry runs from the seed.
    wait_until(
        &inits,
        INIT_NAME,
        Duration::from_secs(60),
        "not Ready",
        |init: Option<&JackalInit>| !is_ready(init),
    )
    .await?;
    let from_seed = |deployment: Option<&Deployment>| {
        deployment
            .and_then(jackal_core::bootstrap::steps::container_image)
            .is_some_and(|image| image.starts_with("127.0.0.1:") && !image.starts_with(&address))
    };
    wait_until(
        &deployments,
        REGISTRY,
        Duration::from_secs(120),
        "the registry running from the seed",
        from_seed,
    )
    .await?;
    let operator_container = crictl(
        &cluster,
        &[
            "ps",
            "--name",
            "^operator$",
            "--label",
            &format!("io.kubernetes.pod.namespace={}", namespace.name),
            "-q",
        ],
    )?;
    let operator_container = operator_container
        .lines()
        .next()
        .context("no running operator container")?
        .to_owned();
    crictl(&cluster, &["stop", "--timeout", "0", &operator_container])?;
    wait_until(
        &inits,
        INIT_NAME,
        Duration::from_secs(240),
        "Ready again",
        |init: Option<&JackalInit>| is_ready(init),
    )
    .await?;
    let restarts = operator_pod_restarts(&registry_pods).await?;
    assert!(
        restarts >= 1,
        "the operator's container was restarted ({restarts})"
    );
    let healed = head_manifest(&address, &login, "docker.io/library/registry", "3.1.2").await?;
    assert_eq!(healed.status, 200, "the registry serves its own image again");
    let running = deployments.get(REGISTRY).await?;
    let image = running
        .spec
        .and_then(|spec| spec.template.spec)
        .and_then(|spec| spec.containers[0].image.clone());
    assert_eq!(
        image.as_deref(),
        Some(registry_image.as_str()),
        "back on its own image"
    );
    // Events about the cluster-scoped JackalInit are kept in `default`.
    // Only this JackalInit's Events: those of earlier runs are kept for an hour.
    let this_init = format!(
        "{INIT_NAME},involvedObject.uid={}",
        inits.get(INIT_NAME).await?.metadata.uid.unwrap_or_default()
    );
    jackal_tests::wait::event_messages(
        &cluster.client,
        "default",
        &this_init,
        "Reseeding",
        Duration::from_secs(30),
        |messages| messages.contains("seeding it again"),
    )
    .await?;
    assert!(
        config_maps.list(&seed_objects).await?.items.is_empty(),
        "the seed is cleaned up again"
    );

    // An operator that starts while the registry cannot pull its image has no copy to seed it
    // from: it says so (Stalled) and what to do, and `init` again heals the registry.
    let scale = |replicas: &str| {
        cluster.kubectl_ok(&[
            "scale",
            "deployment",
            OPERATOR,
            "-n",
            &namespace.name,
            &format!("--replicas={replicas}"),
        ])
    };
    scale("0")?;
    let operator_pods = ListParams::default().labels(&format!("app={OPERATOR}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !registry_pods.list(&operator_pods).await?.items.is_empty() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the operator pod did not stop"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    crictl(&cluster, &["rmi", &registry_image])?;
    registry_pods
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default().labels(&format!("app={REGISTRY}")),
        )
        .await?;
    scale("1")?;
    let stalled = wait_until(
        &inits,
        INIT_NAME,
        Duration::from_secs(120),
        "Stalled",
        |init: Option<&JackalInit>| {
            condition_of(init, "Stalled").is_some_and(|stalled| stalled.status == "True")
        },
    )
    .await?;
    let reason = condition_of(Some(&stalled), "Stalled")
        .cloned()
        .context("no Stalled condition")?;
    assert_eq!(reason.reason, "RegistryImageUnavailable");
    assert!(
        reason.message.contains("kubectl jackal init"),
        "{}",
        reason.message
    );
    let mut third = plugin(&cluster)?;
    init(&mut third);
    run_ok(&mut third)?;
    let served = head_manifest(&address, &login, "docker.io/library/registry", "3.1.2").await?;
    assert_eq!(served.status, 200, "init again heals the registry");
    assert!(is_ready(inits.get_opt(INIT_NAME).await?.as_ref()));

    // No node can take the registry (the only one cordoned) once its pod is gone: the
    // JackalInit says so, with the scheduler's words; uncordoned, it is Ready again.
    drop(node);
    let _node = super::NODE.write().await;
    let node_name = cluster.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"])?;
    let cordoned = Cordoned::new(&cluster, node_name.trim())?;
    registry_pods
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default().labels(&format!("app={REGISTRY}")),
        )
        .await?;
    let unschedulable = wait_until(
        &inits,
        INIT_NAME,
        Duration::from_secs(60),
        "Ready=False RegistryUnschedulable",
        |init: Option<&JackalInit>| {
            condition_of(init, "Ready").is_some_and(|ready| ready.reason == "RegistryUnschedulable")
        },
    )
    .await?;
    let said = condition_of(Some(&unschedulable), "Ready").context("no Ready condition")?;
    assert_eq!(said.status, "False");
    assert!(said.message.contains("unschedulable"), "{}", said.message);
    drop(cordoned);
    wait_until(
        &inits,
        INIT_NAME,
        Duration::from_secs(120),
        "Ready once the node takes pods again",
        |init: Option<&JackalInit>| is_ready(init),
    )
    .await?;
    // The new pod started on an empty emptyDir: the operator pushed the registry's image back.
    jackal_tests::wait::event_messages(
        &cluster.client,
        "default",
        &this_init,
        "Refilling",
        Duration::from_secs(30),
        |messages| messages.contains("pushing docker.io/library/registry:3.1.2 back"),
    )
    .await?;
    let refilled = head_manifest(&address, &login, "docker.io/library/registry", "3.1.2").await?;
    assert_eq!(refilled.status, 200, "the registry serves its own image again");

    drop(cluster_wide);
    let _ = inits.delete(INIT_NAME, &DeleteParams::default()).await;
    Ok(())
}

/// Runs a one-replica Deployment `app` of `image` in `namespace` until it is available; returns
/// the Deployments of the namespace and the app's pod.
pub(super) async fn run_app(
    cluster: &Cluster,
    namespace: &str,
    image: &str,
) -> anyhow::Result<(Api<Deployment>, Pod)> {
    let workloads = Api::<Deployment>::namespaced(cluster.client.clone(), namespace);
    let workload: Deployment = from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "app"}},
                 "template": {"metadata": {"labels": {"app": "app"}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
    }))?;
    workloads.create(&PostParams::default(), &workload).await?;
    wait_until(
        &workloads,
        "app",
        Duration::from_secs(120),
        "available",
        jackal_tests::wait::deployment_available(1),
    )
    .await?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), namespace)
        .list(&ListParams::default().labels("app=app"))
        .await?;
    let pod = pods.items.into_iter().next().context("the app has no pod")?;
    Ok((workloads, pod))
}

/// Asserts that the status lists every bootstrap step, in order, each `Succeeded`.
pub(super) fn every_step_succeeded(status: &jackal_crds::init::JackalInitStatus) {
    let steps: Vec<_> = status
        .steps
        .iter()
        .map(|step| (step.name.as_str(), step.phase))
        .collect();
    assert_eq!(
        steps,
        ["State", "Registry", "SeedCopy", "Operator", "Webhook", "Cleanup"]
            .map(|name| (name, StepPhase::Succeeded))
    );
}

/// Cordons a node until dropped.
struct Cordoned<'a>(&'a Cluster, String);

impl<'a> Cordoned<'a> {
    fn new(cluster: &'a Cluster, node: &str) -> anyhow::Result<Self> {
        cluster.kubectl_ok(&["cordon", node])?;
        Ok(Self(cluster, node.to_owned()))
    }
}

impl Drop for Cordoned<'_> {
    fn drop(&mut self) {
        let _ = self.0.kubectl_ok(&["uncordon", &self.1]);
    }
}

/// Restarts of the operator's container, summed over its pods.
async fn operator_pod_restarts(pods: &Api<Pod>) -> anyhow::Result<i32> {
    let listed = pods
        .list(&ListParams::default().labels(&format!("app={OPERATOR}")))
        .await?;
    Ok(listed
        .items
        .iter()
        .flat_map(|pod| {
            pod.status
                .iter()
                .flat_map(|status| status.container_statuses.iter().flatten())
        })
        .map(|container| container.restart_count)
        .sum())
}

/// `HEAD /v2/REPOSITORY/manifests/TAG` with `login`, accepting image manifests and indexes.
pub(super) async fn head_manifest(
    address: &str,
    login: &str,
    repository: &str,
    tag: &str,
) -> anyhow::Result<http::Response> {
    http::request(
        "HEAD",
        address,
        &format!("/v2/{repository}/manifests/{tag}"),
        &[
            ("Authorization", login),
            (
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            ),
        ],
        b"",
    )
    .await
}

pub(super) fn condition_of<'a>(
    init: Option<&'a JackalInit>,
    kind: &str,
) -> Option<&'a jackal_crds::condition::Condition> {
    init.and_then(|init| init.status.as_ref())?
        .conditions
        .iter()
        .find(|condition| condition.type_ == kind)
}

pub(super) fn is_ready(init: Option<&JackalInit>) -> bool {
    condition_of(init, "Ready").is_some_and(|ready| ready.status == "True")
}

/// Runs crictl against the test node's containerd.
fn crictl(cluster: &Cluster, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(cluster.dir().join("bin/crictl"))
        .arg("--runtime-endpoint")
        .arg(format!(
            "unix://{}",
            cluster.dir().join("containerd/containerd.sock").display()
        ))
        .args(args)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "crictl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn without_a_package_init_says_where_it_looked() -> anyhow::Result<()> {
    let output = Command::new(workspace_binary("kubectl-jackal")?)
        .arg("init")
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no init package: looked for ") && stderr.contains("jackal-init-amd64-"),
        "{stderr}"
    );
    Ok(())
}

pub(super) fn base64_login(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn the_init_package_names_the_operator_image_of_this_version() -> anyhow::Result<()> {
    let definition = std::fs::read_to_string(repository_root().join("packages/init/jackal.yaml"))?;
    let image = format!(
        "docker.io/jackaldev/jackal-operator:{}",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        definition.contains(&image),
        "packages/init/jackal.yaml must name {image}"
    );
    Ok(())
}
