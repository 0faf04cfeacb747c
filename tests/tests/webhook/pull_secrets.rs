//! The pull-Secret controller on the real API server: namespaces the webhook rewrites get the
//! registry (and git) Secrets, others do not, a namespace that stops being rewritten loses them,
//! and new credentials reach every copy.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jackal_crds::init::NamespaceSelection;
use jackal_crds::state::{GitState, JackalState, Password, RegistryState};
use jackal_operator::controller::pull_secrets::{self, Settings};
use jackal_tests::Cluster;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

fn state(password: &str) -> JackalState {
    JackalState {
        registry: RegistryState {
            address: "127.0.0.1:31999".into(),
            pull_username: "jackal-pull".into(),
            pull_password: Password(password.into()),
            ..RegistryState::default()
        },
        git: Some(GitState {
            url: "http://git:3000".into(),
            push_username: "push".into(),
            pull_username: "read".into(),
            pull_password: Password("git".into()),
        }),
    }
}

async fn eventually<T>(
    what: &str,
    mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn docker_config(secret: &Secret) -> serde_json::Value {
    let data = secret.data.clone().unwrap_or_default();
    serde_json::from_slice(&data[".dockerconfigjson"].0).unwrap_or_default()
}

#[tokio::test]
async fn pull_secrets_follow_namespaces_and_credentials() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let settings = Arc::new(RwLock::new(Settings {
        state: state("first"),
        selection: NamespaceSelection::OptIn,
    }));
    let (changed, changes) = futures::channel::mpsc::unbounded();
    let controller = tokio::spawn(pull_secrets::run(
        cluster.client.clone(),
        Arc::clone(&settings),
        changes,
    ));

    let opted_in = cluster
        .labelled_namespace("pull-secrets-in", &[("jackal.dev/agent".into(), "mutate".into())])
        .await?;
    let other = cluster.namespace("pull-secrets-out").await?;
    let secrets_in = Api::<Secret>::namespaced(cluster.client.clone(), &opted_in.name);
    let registry = eventually("the registry Secret exists", async || {
        Ok(secrets_in.get_opt("private-registry").await?)
    })
    .await?;
    assert_eq!(registry.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(
        docker_config(&registry)["auths"]["127.0.0.1:31999"]["password"],
        "first"
    );
    // The controller writes the two Secrets one after the other.
    let git = eventually("the git Secret exists", async || {
        Ok(secrets_in.get_opt("private-git-server").await?)
    })
    .await?;
    assert_eq!(git.data.unwrap_or_default()["username"].0, b"read");
    let secrets_out = Api::<Secret>::namespaced(cluster.client.clone(), &other.name);
    assert!(
        secrets_out.get_opt("private-registry").await?.is_none(),
        "a namespace that is not opted in got a Secret"
    );

    // New credentials reach the copies.
    if let Ok(mut current) = settings.write() {
        current.state = state("second");
    }
    changed.unbounded_send(())?;
    eventually("the new password is in the Secret", async || {
        let secret = secrets_in.get("private-registry").await?;
        Ok((docker_config(&secret)["auths"]["127.0.0.1:31999"]["password"] == "second").then_some(()))
    })
    .await?;
    // The controller has been through every namespace since: the other one still has nothing.
    assert!(
        secrets_out.get_opt("private-registry").await?.is_none(),
        "a namespace that is not opted in got a Secret"
    );

    // Opting out removes Jackal's copies.
    Api::<Namespace>::all(cluster.client.clone())
        .patch(
            &opted_in.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"jackal.dev/agent": "skip"}}})),
        )
        .await?;
    eventually("the Secrets are removed", async || {
        Ok(secrets_in
            .get_opt("private-registry")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    controller.abort();
    Ok(())
}
