//! The real `jackal-operator run` binary against the test cluster, outside it (webhook reached by
//! URL), authenticated as its own ServiceAccount with the least-privilege RBAC of `config/rbac`:
//! it serves its admin endpoints before any state exists, registers the webhook with the
//! `JackalInit`'s settings once the state Secret appears, keeps pull Secrets in opted-in namespaces,
//! rewrites their pods, follows changes of the state Secret and of the `JackalInit` without a
//! restart, and stops cleanly on SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use jackal_crds::JackalInit;
use jackal_crds::names::{NAMESPACE, STATE_KEY, STATE_SECRET, WEBHOOK_CONFIGURATION};
use jackal_tests::{Cluster, Scratch, from_json, http, injector, repository_root};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

fn operator_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository_root().join("target"))
        .join("debug/jackal-operator");
    anyhow::ensure!(
        path.exists(),
        "{} is not built: run `cargo build -p jackal-operator` (`make test` does)",
        path.display()
    );
    Ok(path)
}

fn state_secret(registry: &str) -> anyhow::Result<Secret> {
    let state = json!({"registry": {"address": registry, "pullUsername": "jackal-pull", "pullPassword": "pull-password"}});
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(STATE_SECRET.into()),
            namespace: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            STATE_KEY.to_owned(),
            ByteString(serde_json::to_vec(&state)?),
        )])),
        ..Secret::default()
    })
}

/// Everything the test puts into the cluster, removed again when dropped.
struct Setup {
    cluster_dir: PathBuf,
    operator: Option<Child>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(mut operator) = self.operator.take() {
            let _ = operator.kill();
            let _ = operator.wait();
        }
        let kubectl = self.cluster_dir.join("bin/kubectl");
        let kubeconfig = self.cluster_dir.join("kubeconfig");
        for args in [
            vec![
                "delete",
                "mutatingwebhookconfiguration",
                WEBHOOK_CONFIGURATION,
                "--ignore-not-found",
            ],
            vec!["delete", "jackalinit", "jackal", "--ignore-not-found"],
            vec!["delete", "-k", "config/rbac", "--ignore-not-found"],
            vec![
                "delete",
                "namespace",
                NAMESPACE,
                "--ignore-not-found",
                "--wait=false",
            ],
        ] {
            let _ = Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(args)
                .current_dir(repository_root())
                .output();
        }
    }
}

/// A kubeconfig for the operator's ServiceAccount, with a short-lived token.
fn service_account_kubeconfig(cluster: &Cluster, scratch: &Scratch) -> anyhow::Result<PathBuf> {
    let token = cluster.kubectl_ok(&[
        "create",
        "token",
        "jackal-operator",
        "-n",
        NAMESPACE,
        "--duration",
        "1h",
    ])?;
    let admin = kube::config::Kubeconfig::read_from(cluster.kubeconfig())?;
    let server = admin.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .context("no server")?;
    let ca = admin.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.certificate_authority_data.clone())
        .context("no CA")?;
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "jackal-operator", "user": {"token": token.trim()}}],
        "contexts": [{"name": "operator", "context": {"cluster": "testbed", "user": "jackal-operator"}}],
    });
    let path = scratch.path().join("operator.kubeconfig");
    std::fs::write(&path, serde_json::to_vec(&kubeconfig)?)?;
    Ok(path)
}

async fn eventually<T>(
    what: &str,
    seconds: u64,
    mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn the_operator_binary_runs_the_webhook_with_least_privilege() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let mut setup = Setup {
        cluster_dir: cluster.dir().to_owned(),
        operator: None,
    };
    let scratch = Scratch::new("operator-run")?;
    let namespaces = Api::<Namespace>::all(cluster.client.clone());
    // An earlier run deletes the namespace without waiting: let that finish first.
    eventually("the previous run's namespace is gone", 120, async || {
        let terminating = namespaces
            .get_opt(NAMESPACE)
            .await?
            .is_some_and(|namespace| namespace.metadata.deletion_timestamp.is_some());
        Ok((!terminating).then_some(()))
    })
    .await?;
    if namespaces.get_opt(NAMESPACE).await?.is_none() {
        namespaces
            .create(
                &PostParams::default(),
                &from_json(
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
                )?,
            )
            .await?;
    }
    let root = repository_root();
    cluster.kubectl_ok(&["apply", "-k", &root.join("config/rbac").to_string_lossy()])?;
    let kubeconfig = service_account_kubeconfig(&cluster, &scratch)?;

    let inits = Api::<JackalInit>::all(cluster.client.clone());
    let _ = inits.delete("jackal", &DeleteParams::default()).await;
    eventually("no JackalInit is left", 30, async || {
        Ok(inits.get_opt("jackal").await?.is_none().then_some(()))
    })
    .await?;
    // Opt-in and Ignore: whatever happens, nothing outside this test's namespace is affected.
    let init: JackalInit = from_json(
        json!({"apiVersion": "jackal.dev/v1alpha1", "kind": "JackalInit", "metadata": {"name": "jackal"},
        "spec": {"webhook": {"failurePolicy": "Ignore", "namespaceSelection": "OptIn", "timeoutSeconds": 3}}}),
    )?;
    inits.create(&PostParams::default(), &init).await?;
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), NAMESPACE);
    let _ = secrets.delete(STATE_SECRET, &DeleteParams::default()).await;

    let webhook_port = injector::free_port()?;
    let admin_port = injector::free_port()?;
    let webhook_url = format!("https://127.0.0.1:{webhook_port}/mutate");
    let log = scratch.path().join("operator.log");
    setup.operator = Some(
        Command::new(operator_binary()?)
            .args(["run", "--webhook-url", &webhook_url, "--webhook-ip", "127.0.0.1"])
            .args([
                "--webhook-address",
                &format!("127.0.0.1:{webhook_port}"),
                "--admin-address",
                &format!("127.0.0.1:{admin_port}"),
            ])
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?,
    );
    let operator_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let admin = format!("127.0.0.1:{admin_port}");

    // Without a state it already serves its admin endpoints (the bootstrap controller, which
    // writes the state, runs in this process), but registers no webhook.
    eventually("the operator says it waits for the state", 30, async || {
        Ok(operator_log()
            .contains("waiting for the cluster state Secret")
            .then_some(()))
    })
    .await?;
    let healthy = eventually("the operator answers /healthz without a state", 30, async || {
        Ok(http::get(&admin, "/healthz", &[])
            .await
            .ok()
            .filter(|response| response.status == 200))
    })
    .await;
    healthy.with_context(|| format!("operator log:\n{}", operator_log()))?;
    let configurations = Api::<MutatingWebhookConfiguration>::all(cluster.client.clone());
    assert!(
        configurations.get_opt(WEBHOOK_CONFIGURATION).await?.is_none(),
        "the webhook is registered before the cluster has a state"
    );
    secrets
        .create(&PostParams::default(), &state_secret("127.0.0.1:31999")?)
        .await?;
    let ready = eventually("the operator is ready", 60, async || {
        Ok(http::get(&admin, "/readyz", &[])
            .await
            .ok()
            .filter(|response| response.status == 200))
    })
    .await;
    ready.with_context(|| format!("operator log:\n{}", operator_log()))?;

    let configuration = eventually("the webhook is registered", 30, async || {
        Ok(configurations.get_opt(WEBHOOK_CONFIGURATION).await?)
    })
    .await?;
    let pods_webhook = &configuration.webhooks.unwrap_or_default()[0];
    assert_eq!(
        pods_webhook.client_config.url.as_deref(),
        Some(webhook_url.as_str())
    );
    assert!(
        pods_webhook
            .client_config
            .ca_bundle
            .as_ref()
            .is_some_and(|bundle| bundle.0.starts_with(b"-----BEGIN CERTIFICATE"))
    );
    assert_eq!(
        (
            pods_webhook.failure_policy.as_deref(),
            pods_webhook.timeout_seconds
        ),
        (Some("Ignore"), Some(3))
    );

    let app = cluster
        .labelled_namespace("operator-app", &[("jackal.dev/agent".into(), "mutate".into())])
        .await?;
    let app_secrets = Api::<Secret>::namespaced(cluster.client.clone(), &app.name);
    eventually("the pull Secret exists", 30, async || {
        Ok(app_secrets.get_opt("private-registry").await?)
    })
    .await?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &app.name);
    let pod: Pod = from_json(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"},
                                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}),
    )?;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let image_of = |pod: Pod| {
        pod.spec
            .map(|spec| spec.containers[0].image.clone().unwrap_or_default())
            .unwrap_or_default()
    };
    eventually("pods are rewritten", 30, async || {
        let image = image_of(pods.create(&dry_run, &pod).await?);
        Ok((image == "127.0.0.1:31999/docker.io/library/nginx:1.27").then_some(()))
    })
    .await?;
    let metrics = http::get(&admin, "/metrics", &[]).await?.text();
    assert!(
        metrics.contains(r#"jackal_admissions_total{kind="Pod",operation="CREATE",outcome="mutated"}"#),
        "{metrics}"
    );

    // A new state reaches the webhook without a restart.
    secrets
        .patch(
            STATE_SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {STATE_KEY: base64_state("127.0.0.1:32000")?}})),
        )
        .await?;
    eventually("pods follow the new registry", 30, async || {
        let image = image_of(pods.create(&dry_run, &pod).await?);
        Ok((image == "127.0.0.1:32000/docker.io/library/nginx:1.27").then_some(()))
    })
    .await
    .with_context(|| format!("operator log:\n{}", operator_log()))?;

    // A change of the JackalInit reaches the registration without a restart.
    inits
        .patch(
            "jackal",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"webhook": {"timeoutSeconds": 7}}})),
        )
        .await?;
    eventually("the registration follows the JackalInit", 30, async || {
        let configuration = configurations.get(WEBHOOK_CONFIGURATION).await?;
        let timeout = configuration.webhooks.unwrap_or_default()[0].timeout_seconds;
        Ok((timeout == Some(7)).then_some(()))
    })
    .await
    .with_context(|| format!("operator log:\n{}", operator_log()))?;

    // SIGTERM: every task stops and the process exits successfully.
    let mut operator = setup.operator.take().context("the operator is running")?;
    let pid = operator.id().to_string();
    anyhow::ensure!(Command::new("kill").args(["-TERM", &pid]).status()?.success());
    let stopped = eventually("the operator exits after SIGTERM", 30, async || {
        Ok(operator.try_wait()?)
    })
    .await;
    let status = stopped.with_context(|| format!("operator log:\n{}", operator_log()))?;
    let log = operator_log();
    assert!(status.success(), "exit status {status}:\n{log}");
    assert!(log.contains("shutdown signal received"), "{log}");
    assert!(!log.contains("pull-password"), "a credential reached the log");
    Ok(())
}

/// A port that cannot be bound stops the process at once, naming the port.
#[tokio::test]
async fn a_taken_port_stops_the_operator_with_its_name() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = taken.local_addr()?.to_string();
    let webhook_port = injector::free_port()?;
    let output = Command::new(operator_binary()?)
        .args(["run", "--webhook-url", "https://127.0.0.1:1/mutate"])
        .args([
            "--webhook-address",
            &format!("127.0.0.1:{webhook_port}"),
            "--admin-address",
            &address,
        ])
        .env("KUBECONFIG", cluster.dir().join("kubeconfig"))
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("failed to bind the admin port {address}")),
        "{stderr}"
    );
    Ok(())
}

fn base64_state(registry: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let secret = state_secret(registry)?;
    let bytes = secret
        .data
        .unwrap_or_default()
        .remove(STATE_KEY)
        .map(|value| value.0)
        .unwrap_or_default();
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}
