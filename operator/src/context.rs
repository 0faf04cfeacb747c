//! What every part of the running operator shares: the API client, the settings it was started
//! with, the cluster state as a watch channel (the one way state reaches the webhook, its
//! registration and the controllers), the metrics, the Event recorder and the shutdown signal.

use std::sync::Arc;

use jackal_core::registry::ErrorCategory;
use jackal_crds::init::WebhookSpec;
use jackal_crds::state::JackalState;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::run::RunConfig;

/// The name Events are reported under.
pub const CONTROLLER_NAME: &str = "jackal-operator";

/// What the cluster tells the operator to do: the state Secret written by the bootstrap and the
/// `JackalInit`'s webhook settings. Either may be missing (a cluster not bootstrapped yet).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterState {
    /// The registry (and git server) and their credentials, once the bootstrap has written them.
    pub state: Option<JackalState>,
    /// How the webhook is registered (defaults without a `JackalInit`).
    pub webhook: WebhookSpec,
}

/// Shared by every task of the operator.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The settings of `run`.
    pub config: RunConfig,
    /// The cluster state; `changed()` wakes on every change.
    pub cluster: watch::Receiver<ClusterState>,
    /// Every metric the operator exports.
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Cancelled when the operator stops.
    pub shutdown: CancellationToken,
}

impl Context {
    /// A context for `client`; the returned sender feeds [`Self::cluster`].
    pub fn new(client: Client, config: RunConfig) -> (Arc<Self>, watch::Sender<ClusterState>) {
        let (sender, cluster) = watch::channel(ClusterState::default());
        let instance = std::env::var("POD_NAME").ok();
        let reporter = Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance,
        };
        let context = Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            cluster,
            metrics: Arc::new(Metrics::default()),
            shutdown: CancellationToken::new(),
        };
        (Arc::new(context), sender)
    }

    /// Publishes a Warning Event on `object`; failing to publish is logged, never fatal.
    pub async fn warn(&self, object: &ObjectReference, category: ErrorCategory, action: &str, note: String) {
        self.publish(object, EventType::Warning, category.reason(), action, note)
            .await;
    }

    /// Publishes an Event on `object`; failing to publish is logged, never fatal.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, object).await {
            tracing::warn!(%error, action, "failed to publish an Event");
        }
    }
}

/// How a caller should react to a failed API request.
pub fn api_category(error: &kube::Error) -> ErrorCategory {
    match error {
        kube::Error::Api(status) => jackal_core::registry::error::status_category(status.code),
        kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => ErrorCategory::Invalid,
        _ => ErrorCategory::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_categorized_by_status() {
        let status = |code| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..kube::core::Status::default()
            }))
        };
        assert_eq!(api_category(&status(403)), ErrorCategory::Unauthorized);
        assert_eq!(api_category(&status(404)), ErrorCategory::NotFound);
        assert_eq!(api_category(&status(422)), ErrorCategory::Invalid);
        assert_eq!(api_category(&status(503)), ErrorCategory::Transient);
        assert!(api_category(&status(500)).is_retryable());
    }
}
