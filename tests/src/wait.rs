//! Waiting for objects on the real cluster to reach a state, with a deadline and an error that says
//! what was awaited.

use std::fmt::Debug;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::wait::{Condition, await_condition};
use serde::de::DeserializeOwned;

/// Waits until `condition` holds for the object `name`, failing after `timeout`.
pub async fn wait_until<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    condition: impl Condition<K>,
) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(result) => result
            .with_context(|| format!("failed to watch {name}"))?
            .with_context(|| format!("{name} was deleted while waiting until {what}")),
        Err(_) => {
            let current = api.get_opt(name).await.ok().flatten();
            bail!("{name} did not become {what} within {timeout:?}; last seen: {current:#?}")
        }
    }
}

/// The pod's `Ready` condition is `True`.
pub fn pod_ready() -> impl Condition<Pod> {
    |pod: Option<&Pod>| {
        pod.and_then(|pod| pod.status.as_ref())
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
    }
}

/// Some container of the pod waits with one of `reasons` (e.g. `ErrImagePull`).
pub fn pod_waiting_with(reasons: &'static [&'static str]) -> impl Condition<Pod> {
    move |pod: Option<&Pod>| {
        pod.and_then(|pod| pod.status.as_ref())
            .and_then(|status| status.container_statuses.as_ref())
            .is_some_and(|statuses| {
                statuses.iter().any(|status| {
                    let reason = status
                        .state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref());
                    reason.is_some_and(|reason| reasons.contains(&reason))
                })
            })
    }
}
