//! The operator's controllers. Each is a kube-runtime `Controller` whose reconcile is a short
//! pipeline around pure functions; requeue intervals are named constants. Both follow the cluster
//! state ([`cluster_changes`]) and run until shutdown ([`drive`]).
//!
//! - [`init`]: the `JackalInit`: the bootstrap once the operator runs in the cluster.
//! - [`pull_secrets`]: the registry (and git) pull Secrets in every namespace the webhook rewrites.

pub mod init;
pub mod pull_secrets;

use futures::{Stream, StreamExt};

use crate::context::Context;

/// Yields once per change of the cluster state (credentials, registry, webhook settings): a reason
/// for a controller to look at everything again.
pub(crate) fn cluster_changes(context: &Context) -> impl Stream<Item = ()> + use<> {
    futures::stream::unfold(context.cluster.clone(), |mut cluster| async move {
        cluster.changed().await.ok().map(|()| ((), cluster))
    })
}

/// Drives a controller's `results` until the operator shuts down (failed reconciles are logged at
/// debug: each controller's error policy reports them); a controller that ends before is a failure.
pub(crate) async fn drive<T, E>(
    context: &Context,
    name: &str,
    results: impl Stream<Item = Result<T, E>>,
) -> anyhow::Result<()>
where
    E: std::fmt::Display,
{
    results
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, controller = name, "reconcile failed");
            }
        })
        .await;
    anyhow::ensure!(
        context.shutdown.is_cancelled(),
        "the {name} controller stopped on its own"
    );
    Ok(())
}
