//! The pull-Secret controller on the real API server: namespaces the webhook rewrites get the
//! registry (and git) Secrets, others do not, a namespace that stops being rewritten loses them,
//! and new credentials reach every copy. It is driven through the operator's context, as in the
//! operator: nothing is written before a state exists, and it stops on the shutdown signal.

use std::time::{Duration, Instant};

use jackal_crds::init::{NamespaceSelection, WebhookSpec};
use jackal_crds::state::{GitState, JackalState, Password, RegistryState};
use jackal_operator::context::{ClusterState, Context};
use jackal_operator::controller::pull_secrets;
use jackal_operator::run::RunConfig;
use jackal_operator::webhook::certs::Validity;
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
    let config = RunConfig {
        namespace: "jackal".into(),
        cache_dir: std::env::temp_dir(),
        webhook_address: "127.0.0.1:0".parse()?,
        admin_address: "127.0.0.1:0".parse()?,
        service: "jackal-webhook".into(),
        webhook_url: None,
        webhook_ips: Vec::new(),
        validity: Validity::default(),
    };
    let (context, sender) = Context::new(cluster.client.clone(), config);
    let opt_in = WebhookSpec {
        namespace_selection: Some(NamespaceSelection::OptIn),
        ..WebhookSpec::default()
    };
    sender.send_replace(ClusterState {
        state: None,
        webhook: opt_in.clone(),
    });
    let controller = tokio::spawn(pull_secrets::run(std::sync::Arc::clone(&context)));

    let opted_in = cluster
        .labelled_namespace("pull-secrets-in", &[("jackal.dev/agent".into(), "mutate".into())])
        .await?;
    let other = cluster.namespace("pull-secrets-out").await?;
    let secrets_in = Api::<Secret>::namespaced(cluster.client.clone(), &opted_in.name);
    // Without a state there is nothing to copy. (Seen for a while: the controller has had the
    // namespace since it was created.)
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        secrets_in.get_opt("private-registry").await?.is_none(),
        "a Secret was written before the cluster had a state"
    );
    sender.send_replace(ClusterState {
        state: Some(state("first")),
        webhook: opt_in.clone(),
    });
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
    sender.send_replace(ClusterState {
        state: Some(state("second")),
        webhook: opt_in.clone(),
    });
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

    // The JackalInit's selection changing to All brings the other namespace in.
    sender.send_replace(ClusterState {
        state: Some(state("second")),
        webhook: WebhookSpec::default(),
    });
    eventually(
        "a namespace selected by the new policy gets the Secret",
        async || Ok(secrets_out.get_opt("private-registry").await?),
    )
    .await?;

    // Back to opt-in: the copies it put everywhere are removed again, in every namespace.
    sender.send_replace(ClusterState {
        state: Some(state("second")),
        webhook: opt_in,
    });
    let all_secrets = Api::<Secret>::all(cluster.client.clone());
    let managed = kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=jackal");
    eventually("no managed pull Secret is left anywhere", async || {
        let left = all_secrets.list(&managed).await?;
        let left: Vec<_> = left
            .items
            .iter()
            .filter(|secret| secret.metadata.name.as_deref() == Some("private-registry"))
            .collect();
        Ok(left.is_empty().then_some(()))
    })
    .await?;

    // The shutdown signal stops it, successfully.
    context.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
