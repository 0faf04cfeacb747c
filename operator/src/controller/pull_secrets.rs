//! Keeps the registry pull Secret (`private-registry`) — and the git credentials Secret when a git
//! server is configured — in every namespace whose pods the webhook rewrites, and removes Jackal's
//! copies from namespaces that are no longer rewritten. The webhook itself only references the
//! Secret: it must have no side effects. It follows the cluster state channel: nothing is written
//! before the bootstrap has written the state, and every namespace is looked at again when the
//! state or the `JackalInit`'s namespace selection changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jackal_core::registry::{Categorize, ErrorCategory};
use jackal_crds::names::{
    FIELD_MANAGER, GIT_PULL_SECRET, MANAGED_BY_LABEL, MANAGED_BY_VALUE, REGISTRY_PULL_SECRET,
};
use jackal_crds::state::JackalState;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use crate::context::{Context, api_category};
use crate::selection::namespace_is_rewritten;

/// Re-check every namespace this often, even without events.
const RESYNC: Duration = Duration::from_secs(600);
/// Retry a failed namespace after this long.
const RETRY: Duration = Duration::from_secs(5);

/// What Events about this controller's work are published as.
const ACTION: &str = "SyncPullSecrets";

/// Why a namespace could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing or deleting a Secret failed.
    #[error("failed to {action} Secret {namespace}/{name}: {source}")]
    Secret {
        /// What was attempted.
        action: &'static str,
        /// The namespace.
        namespace: String,
        /// The Secret.
        name: String,
        /// Why.
        source: kube::Error,
    },
}

impl Categorize for Error {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Secret { source, .. } => api_category(source),
        }
    }
}

/// The registry pull Secret for `namespace` (the same one bootstrap puts into Jackal's own).
pub fn registry_secret(namespace: &str, state: &JackalState) -> Secret {
    jackal_core::bootstrap::objects::registry_pull_secret(namespace, state)
}

/// The git credentials Secret for `namespace`, if a git server is configured.
pub fn git_secret(namespace: &str, state: &JackalState) -> Option<Secret> {
    let git = state.git.as_ref()?;
    Some(secret(
        namespace,
        GIT_PULL_SECRET,
        "Opaque",
        [
            ("username", git.pull_username.clone().into_bytes()),
            ("password", git.pull_password.expose().as_bytes().to_vec()),
        ],
    ))
}

fn secret<const N: usize>(namespace: &str, name: &str, kind: &str, data: [(&str, Vec<u8>); N]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY_VALUE.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some(kind.to_owned()),
        data: Some(
            data.into_iter()
                .map(|(key, value)| (key.to_owned(), ByteString(value)))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Runs the controller until the operator shuts down.
pub async fn run(context: Arc<Context>) -> anyhow::Result<()> {
    // Every change of the cluster state (credentials, registry, namespace selection) is a reason
    // to look at every namespace again.
    let results = Controller::new(
        Api::<Namespace>::all(context.client.clone()),
        watcher::Config::default(),
    )
    .reconcile_all_on(super::cluster_changes(&context))
    .graceful_shutdown_on(context.shutdown.clone().cancelled_owned())
    .run(reconcile, error_policy, Arc::clone(&context));
    super::drive(&context, "pull-Secret", results).await
}

async fn reconcile(namespace: Arc<Namespace>, context: Arc<Context>) -> Result<Action, Error> {
    if namespace.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let cluster = context.cluster.borrow().clone();
    // Before the bootstrap has written the state there is nothing to copy; the state's arrival
    // triggers every namespace again.
    let Some(state) = cluster.state else {
        return Ok(Action::await_change());
    };
    let rewritten = namespace_is_rewritten(
        &namespace.name_any(),
        namespace.labels(),
        cluster.webhook.namespace_selection.unwrap_or_default(),
    );
    let result = sync(&context, &namespace.name_any(), &state, rewritten).await;
    if let Err(error) = &result {
        let reference = namespace.object_ref(&());
        context
            .warn(&reference, error.category(), ACTION, error.to_string())
            .await;
    }
    result.map(|()| Action::requeue(RESYNC))
}

/// Writes the Secrets into a rewritten namespace, or removes Jackal's copies from another one.
async fn sync(context: &Context, name: &str, state: &JackalState, rewritten: bool) -> Result<(), Error> {
    let api = Api::<Secret>::namespaced(context.client.clone(), name);
    if rewritten {
        let wanted = std::iter::once(registry_secret(name, state)).chain(git_secret(name, state));
        for secret in wanted {
            let secret_name = secret.name_any();
            api.patch(
                &secret_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await
            .map_err(|source| Error::Secret {
                action: "apply",
                namespace: name.to_owned(),
                name: secret_name,
                source,
            })?;
        }
        return Ok(());
    }
    for secret_name in [REGISTRY_PULL_SECRET, GIT_PULL_SECRET] {
        let Some(existing) = api.get_opt(secret_name).await.ok().flatten() else {
            continue;
        };
        if existing.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE) {
            api.delete(secret_name, &DeleteParams::default())
                .await
                .map_err(|source| Error::Secret {
                    action: "delete",
                    namespace: name.to_owned(),
                    name: secret_name.to_owned(),
                    source,
                })?;
        }
    }
    Ok(())
}

fn error_policy(namespace: Arc<Namespace>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(namespace = %namespace.name_any(), %error, "failed to reconcile pull secrets; retrying");
    Action::requeue(RETRY)
}

#[cfg(test)]
mod tests {
    use jackal_crds::state::{GitState, Password, RegistryState};

    use super::*;

    fn state() -> JackalState {
        JackalState {
            registry: RegistryState {
                address: "127.0.0.1:31999".into(),
                pull_username: "jackal-pull".into(),
                pull_password: Password("pull-password".into()),
                ..RegistryState::default()
            },
            git: Some(GitState {
                url: "http://git:3000".into(),
                push_username: "push".into(),
                pull_username: "read".into(),
                pull_password: Password("read-password".into()),
            }),
        }
    }

    #[test]
    fn the_registry_secret_is_a_docker_config_for_the_registry() {
        let secret = registry_secret("shop", &state());
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("shop"));
        let data = &secret.data.unwrap()[".dockerconfigjson"];
        // What the kubelet will read, read back by the same parser core uses for Secrets.
        let config = jackal_core::registry::DockerConfig::from_bytes(&data.0, "the pull Secret").unwrap();
        let jackal_core::registry::RegistryAuth::Basic(username, password) =
            config.for_host("127.0.0.1:31999")
        else {
            panic!("no credentials for the registry");
        };
        assert_eq!(
            (username.as_str(), password.as_str()),
            ("jackal-pull", "pull-password")
        );
        let json: serde_json::Value = serde_json::from_slice(&data.0).unwrap();
        assert_eq!(
            json["auths"]["127.0.0.1:31999"]["auth"],
            "amFja2FsLXB1bGw6cHVsbC1wYXNzd29yZA=="
        );
    }

    #[test]
    fn the_git_secret_exists_only_with_a_git_server() {
        let secret = git_secret("shop", &state()).unwrap();
        assert_eq!(secret.data.unwrap()["username"].0, b"read");
        let without = JackalState { git: None, ..state() };
        assert!(git_secret("shop", &without).is_none());
    }
}
