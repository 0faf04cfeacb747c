//! Keeps the registry pull Secret (`private-registry`) — and the git credentials Secret when a git
//! server is configured — in every namespace whose pods the webhook rewrites, and removes Jackal's
//! copies from namespaces that are no longer rewritten. The webhook itself only references the
//! Secret: it must have no side effects.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{Stream, StreamExt};
use jackal_crds::init::NamespaceSelection;
use jackal_crds::names::{
    FIELD_MANAGER, GIT_PULL_SECRET, MANAGED_BY_LABEL, MANAGED_BY_VALUE, REGISTRY_PULL_SECRET,
};
use jackal_crds::state::JackalState;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::webhook::registration::namespace_is_rewritten;

/// Re-check every namespace this often, even without events.
const RESYNC: Duration = Duration::from_secs(600);
/// Retry a failed namespace after this long.
const RETRY: Duration = Duration::from_secs(5);

/// What the Secrets hold and where they go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The cluster state (registry and git endpoints and credentials).
    pub state: JackalState,
    /// Which namespaces the webhook rewrites.
    pub selection: NamespaceSelection,
}

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

struct Context {
    client: Client,
    settings: Arc<RwLock<Settings>>,
}

/// The registry pull Secret for `namespace`.
pub fn registry_secret(namespace: &str, state: &JackalState) -> Secret {
    let registry = &state.registry;
    let auth = BASE64.encode(format!(
        "{}:{}",
        registry.pull_username,
        registry.pull_password.expose()
    ));
    let config = serde_json::json!({
        "auths": { registry.address.as_str(): {
            "username": registry.pull_username,
            "password": registry.pull_password.expose(),
            "auth": auth,
        }}
    });
    secret(
        namespace,
        REGISTRY_PULL_SECRET,
        "kubernetes.io/dockerconfigjson",
        [(".dockerconfigjson", config.to_string())],
    )
}

/// The git credentials Secret for `namespace`, if a git server is configured.
pub fn git_secret(namespace: &str, state: &JackalState) -> Option<Secret> {
    let git = state.git.as_ref()?;
    Some(secret(
        namespace,
        GIT_PULL_SECRET,
        "Opaque",
        [
            ("username", git.pull_username.clone()),
            ("password", git.pull_password.expose().to_owned()),
        ],
    ))
}

fn secret<const N: usize>(namespace: &str, name: &str, kind: &str, data: [(&str, String); N]) -> Secret {
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
                .map(|(key, value)| (key.to_owned(), ByteString(value.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Runs the controller until the process ends; `changes` yields whenever the settings change.
pub async fn run(
    client: Client,
    settings: Arc<RwLock<Settings>>,
    changes: impl Stream<Item = ()> + Send + 'static,
) {
    let context = Arc::new(Context {
        client: client.clone(),
        settings,
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .reconcile_all_on(changes)
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "pull secret reconcile failed");
            }
        })
        .await;
}

async fn reconcile(namespace: Arc<Namespace>, context: Arc<Context>) -> Result<Action, Error> {
    if namespace.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = namespace.name_any();
    let settings = context
        .settings
        .read()
        .map(|settings| settings.clone())
        .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
    let api = Api::<Secret>::namespaced(context.client.clone(), &name);
    let wanted: Vec<Secret> = std::iter::once(registry_secret(&name, &settings.state))
        .chain(git_secret(&name, &settings.state))
        .collect();
    if namespace_is_rewritten(&name, namespace.labels(), settings.selection) {
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
                namespace: name.clone(),
                name: secret_name,
                source,
            })?;
        }
    } else {
        for secret_name in [REGISTRY_PULL_SECRET, GIT_PULL_SECRET] {
            let Some(existing) = api.get_opt(secret_name).await.ok().flatten() else {
                continue;
            };
            if existing.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE) {
                api.delete(secret_name, &DeleteParams::default())
                    .await
                    .map_err(|source| Error::Secret {
                        action: "delete",
                        namespace: name.clone(),
                        name: secret_name.to_owned(),
                        source,
                    })?;
            }
        }
    }
    Ok(Action::requeue(RESYNC))
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
        let config: serde_json::Value = serde_json::from_slice(&data.0).unwrap();
        let entry = &config["auths"]["127.0.0.1:31999"];
        assert_eq!(entry["username"], "jackal-pull");
        assert_eq!(
            BASE64.decode(entry["auth"].as_str().unwrap()).unwrap(),
            b"jackal-pull:pull-password"
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
