//! Follows what the cluster says the operator should do — the state Secret the bootstrap writes and
//! the `JackalInit`'s webhook settings — into the context's watch channel. Nothing waits for
//! either: until they exist the channel says so, and every consumer acts when they appear.

use futures::StreamExt;
use jackal_crds::JackalInit;
use jackal_crds::names::{INIT_NAME, STATE_KEY, STATE_SECRET};
use jackal_crds::state::JackalState;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::context::ClusterState;

/// Why the state Secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The Secret lacks the key.
    #[error("Secret {STATE_SECRET} has no {STATE_KEY} key")]
    MissingKey,
    /// The key does not hold a state.
    #[error("Secret {STATE_SECRET} key {STATE_KEY} is not a valid state: {0}")]
    Invalid(#[source] serde_json::Error),
}

/// One observed change.
enum Update {
    State(Box<JackalState>),
    Webhook(jackal_crds::init::WebhookSpec),
}

/// The state held in the state Secret.
pub fn parse_state(secret: &Secret) -> Result<JackalState, StateError> {
    let data = secret
        .data
        .as_ref()
        .and_then(|data| data.get(STATE_KEY))
        .ok_or(StateError::MissingKey)?;
    serde_json::from_slice(&data.0).map_err(StateError::Invalid)
}

/// Watches the state Secret in `namespace` and the `JackalInit` and publishes every change to
/// `sender`. A deleted Secret or `JackalInit` leaves the last known values in force (the webhook
/// keeps rewriting to the registry it knows). Runs until the watches end (never, on its own).
pub async fn follow(
    client: Client,
    namespace: &str,
    sender: watch::Sender<ClusterState>,
) -> anyhow::Result<()> {
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let secrets = watcher(
        Api::<Secret>::namespaced(client.clone(), namespace),
        by_name(STATE_SECRET),
    )
    .default_backoff()
    .applied_objects()
    .map(|event| {
        let secret = event.map_err(|error| format!("watching the state Secret failed: {error}"))?;
        parse_state(&secret)
            .map(|state| Update::State(Box::new(state)))
            .map_err(|error| format!("ignoring an unusable cluster state: {error}"))
    });
    let inits = watcher(Api::<JackalInit>::all(client), by_name(INIT_NAME))
        .default_backoff()
        .applied_objects()
        .map(|event| {
            event
                .map(|init| Update::Webhook(init.spec.webhook))
                .map_err(|error| format!("watching the JackalInit failed: {error}"))
        });
    let mut updates = std::pin::pin!(futures::stream::select(secrets, inits));
    while let Some(update) = updates.next().await {
        let update = match update {
            Ok(update) => update,
            Err(message) => {
                tracing::warn!("{message}");
                continue;
            }
        };
        let changed = sender.send_if_modified(|current| apply(current, update));
        if changed {
            let current = sender.borrow();
            tracing::info!(
                registry = current.state.as_ref().map(|state| state.registry.address.as_str()),
                webhook = ?current.webhook,
                "cluster state changed"
            );
        }
    }
    anyhow::bail!("the watches of the state Secret and the JackalInit ended")
}

/// Applies `update` to `current`; true when something changed.
fn apply(current: &mut ClusterState, update: Update) -> bool {
    match update {
        Update::State(state) if current.state.as_ref() != Some(&*state) => current.state = Some(*state),
        Update::Webhook(webhook) if current.webhook != webhook => current.webhook = webhook,
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jackal_crds::init::{FailurePolicy, WebhookSpec};
    use k8s_openapi::ByteString;

    use super::*;

    fn secret(data: &[u8]) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                STATE_KEY.to_owned(),
                ByteString(data.to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn the_state_is_read_from_its_key() {
        let state = parse_state(&secret(br#"{"registry": {"address": "127.0.0.1:31999", "pullUsername": "pull", "pullPassword": "secret"}}"#)).unwrap();
        assert_eq!(state.registry.address, "127.0.0.1:31999");
        assert_eq!(
            parse_state(&Secret::default()).unwrap_err().to_string(),
            "Secret jackal-state has no state key"
        );
        assert!(
            parse_state(&secret(b"{"))
                .unwrap_err()
                .to_string()
                .starts_with("Secret jackal-state key state is not a valid state: ")
        );
    }

    #[test]
    fn only_real_changes_are_published() {
        let mut current = ClusterState::default();
        let state: JackalState = serde_json::from_str(
            r#"{"registry": {"address": "a:1", "pullUsername": "pull", "pullPassword": "secret"}}"#,
        )
        .unwrap();
        assert!(apply(&mut current, Update::State(Box::new(state.clone()))));
        assert!(!apply(&mut current, Update::State(Box::new(state))));
        let webhook = WebhookSpec {
            failure_policy: Some(FailurePolicy::Ignore),
            ..WebhookSpec::default()
        };
        assert!(apply(&mut current, Update::Webhook(webhook.clone())));
        assert!(!apply(&mut current, Update::Webhook(webhook.clone())));
        assert_eq!(current.webhook, webhook);
        assert_eq!(current.state.unwrap().registry.address, "a:1");
    }
}
