//! `kubectl jackal init` as a user runs it: the init package built from `packages/init` with
//! `package create`, then `init` against the test cluster: it ends with a registry at
//! `127.0.0.1:<port>` that demands a login and serves the registry image under its digest, runs
//! from its own image, leaves no seed object behind, and a second run changes nothing. Without a
//! package it says where it looked.

use std::process::Command;

use jackal_core::bootstrap::objects::{INJECTOR_LABEL, INJECTOR_VALUE, REGISTRY};
use jackal_core::layout::Layout;
use jackal_crds::JackalInit;
use jackal_crds::names::{INIT_NAME, STATE_SECRET};
use jackal_tests::{Cluster, Scratch, connected_registry, http, injector, repository_root, workspace_binary};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams};

/// Neither the webhook's end-to-end test's 31999 nor the steps test's 31997.
const NODE_PORT: i32 = 31996;

fn plugin(cluster: &Cluster) -> anyhow::Result<Command> {
    let mut command = Command::new(workspace_binary("kubectl-jackal")?);
    command.env("KUBECONFIG", cluster.dir().join("kubeconfig"));
    Ok(command)
}

fn run_ok(command: &mut Command) -> anyhow::Result<(String, String)> {
    let output = command.output()?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    anyhow::ensure!(output.status.success(), "{command:?} failed:\n{stderr}");
    Ok((stdout, stderr))
}

#[tokio::test]
async fn init_bootstraps_a_registry_and_a_second_run_changes_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let scratch = Scratch::new("bootstrap-init")?;
    let namespace = cluster
        .labelled_namespace("init", &[("jackal.dev/agent".into(), "ignore".into())])
        .await?;
    // The JackalInit is cluster-wide: start from none, so this test's port is the one used.
    let inits = Api::<JackalInit>::all(cluster.client.clone());
    let _ = inits.delete(INIT_NAME, &DeleteParams::default()).await;

    let (package, _) = run_ok(
        plugin(&cluster)?
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
    let package = package.trim().to_owned();

    let init = |command: &mut Command| {
        command
            .args(["init", "--package", &package, "--namespace", &namespace.name])
            .args(["--registry-node-port", &NODE_PORT.to_string(), "--timeout", "300"]);
    };
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
    let manifest = http::request(
        "HEAD",
        &address,
        "/v2/docker.io/library/registry/manifests/3.1.2",
        &[
            ("Authorization", login.as_str()),
            ("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"),
        ],
        b"",
    )
    .await?;
    let expected = Layout::new(cluster.dir().join("images/layout"))
        .find("docker.io/library/registry:3.1.2")?
        .digest;
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.header("docker-content-digest"), Some(expected.as_str()));
    // The operator's image came from the package's layout, not through ConfigMaps.
    let operator = http::request(
        "HEAD",
        &address,
        "/v2/docker.io/jackaldev/jackal-operator/manifests/0.1.0",
        &[
            ("Authorization", login.as_str()),
            (
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            ),
        ],
        b"",
    )
    .await?;
    assert_eq!(operator.status, 200, "the operator image is in the registry");
    assert!(
        stages.contains("[init] the other init images into the registry"),
        "{stages}"
    );
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &namespace.name);
    let seed_objects = ListParams::default().labels(&format!("{INJECTOR_LABEL}={INJECTOR_VALUE}"));
    assert!(config_maps.list(&seed_objects).await?.items.is_empty());

    // Again: the registry is not rolled, the state keeps its passwords.
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &namespace.name);
    let generation = deployments.get(REGISTRY).await?.metadata.generation;
    let mut second = plugin(&cluster)?;
    init(&mut second);
    let (_, again_stages) = run_ok(&mut second)?;
    assert!(again_stages.contains("nothing to seed"), "{again_stages}");
    assert_eq!(deployments.get(REGISTRY).await?.metadata.generation, generation);
    let again = jackal_core::bootstrap::steps::read_state(&secrets.get(STATE_SECRET).await?)?;
    assert_eq!(again, state);

    let _ = inits.delete(INIT_NAME, &DeleteParams::default()).await;
    Ok(())
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

fn base64_login(user: &str, password: &str) -> String {
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
