//! Waiting for what a step started: a pod ready, a Deployment rolled out, an object gone, an
//! address serving. One polling loop ([`poll_until`]) with a deadline; each wait says what it
//! last saw when it gives up.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::ListParams;

use super::{Bootstrap, Namespaced, StepError, api};

/// How long a pod or Deployment may take to become ready before the step fails.
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What one look found.
pub(super) enum Poll {
    /// Done.
    Ready,
    /// Not yet; what was seen.
    Waiting(String),
    /// Will never be: stop now with what was seen.
    Failed(String),
}

/// Calls `check` every `interval` until it says ready, fails, or [`READY_TIMEOUT`] passes; the
/// error names `what` and the last thing seen.
pub(super) async fn poll_until<F, Fut>(what: &str, interval: Duration, mut check: F) -> Result<(), StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll, StepError>>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let detail = match check().await? {
            Poll::Ready => return Ok(()),
            Poll::Failed(detail) => detail,
            Poll::Waiting(detail) if Instant::now() > deadline => detail,
            Poll::Waiting(_) => {
                tokio::time::sleep(interval).await;
                continue;
            }
        };
        return Err(StepError::NotReady {
            what: what.to_owned(),
            seconds: READY_TIMEOUT.as_secs(),
            detail,
        });
    }
}

impl Bootstrap {
    /// Waits until pod `name` is ready; a pod that failed is not waited for.
    pub(super) async fn wait_pod_ready(&self, name: &str) -> Result<(), StepError> {
        let pods = self.api::<Pod>();
        poll_until(
            &format!("pod {}/{name}", self.namespace),
            Duration::from_millis(500),
            || async {
                let pod = pods
                    .get_opt(name)
                    .await
                    .map_err(api(format!("read pod {name}")))?;
                let status = pod.as_ref().and_then(|pod| pod.status.as_ref());
                let ready = status
                    .and_then(|status| status.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|condition| condition.type_ == "Ready" && condition.status == "True");
                let failed = status.and_then(|status| status.phase.as_deref()) == Some("Failed");
                Ok(match (ready, failed) {
                    (true, _) => Poll::Ready,
                    (false, true) => Poll::Failed(describe_pod(status)),
                    (false, false) => Poll::Waiting(describe_pod(status)),
                })
            },
        )
        .await
    }

    /// Waits until Deployment `name` has rolled out its current generation.
    pub(super) async fn wait_deployment_available(&self, name: &str) -> Result<(), StepError> {
        let deployments = self.api::<Deployment>();
        poll_until(
            &format!("Deployment {}/{name}", self.namespace),
            Duration::from_millis(500),
            || async {
                let deployment = deployments
                    .get(name)
                    .await
                    .map_err(api(format!("read Deployment {name}")))?;
                Ok(rollout(&deployment))
            },
        )
        .await
    }

    /// Waits until only the `replicas` current pods labelled `app=<app>` exist: none terminating.
    /// A pod that is stopping still answers on its Service a little while, and what is pushed
    /// into it is lost with its emptyDir.
    pub(super) async fn wait_only_current_pods(&self, app: &str, replicas: usize) -> Result<(), StepError> {
        let pods = self.api::<Pod>();
        let selector = ListParams::default().labels(&format!("app={app}"));
        poll_until(
            &format!("the old pods of {}/{app} (stopping)", self.namespace),
            Duration::from_millis(250),
            || async {
                let listed = pods
                    .list_metadata(&selector)
                    .await
                    .map_err(api(format!("list the pods of {app}")))?;
                let stopping = listed
                    .items
                    .iter()
                    .filter(|pod| pod.metadata.deletion_timestamp.is_some())
                    .count();
                Ok(if stopping == 0 && listed.items.len() == replicas {
                    Poll::Ready
                } else {
                    Poll::Waiting(format!("{} pods, {stopping} stopping", listed.items.len()))
                })
            },
        )
        .await
    }

    /// Waits until the object `name` is gone.
    pub(super) async fn wait_gone<K: Namespaced>(&self, name: &str) -> Result<(), StepError> {
        let objects = self.api::<K>();
        poll_until(
            &format!("{name} (deletion)"),
            Duration::from_millis(250),
            || async {
                let found = objects.get_opt(name).await.map_err(api(format!("read {name}")))?;
                Ok(match found {
                    None => Poll::Ready,
                    Some(_) => Poll::Waiting("still present".to_owned()),
                })
            },
        )
        .await
    }
}

/// The image of a Deployment's first container.
pub fn container_image(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

/// `None` when a Deployment has rolled out its current generation, otherwise how far it got.
pub fn rollout_pending(deployment: &Deployment) -> Option<String> {
    match rollout(deployment) {
        Poll::Ready => None,
        Poll::Waiting(detail) | Poll::Failed(detail) => Some(detail),
    }
}

/// Whether a Deployment has rolled out its current generation, and if not how far it got.
pub(super) fn rollout(deployment: &Deployment) -> Poll {
    let status = deployment.status.clone().unwrap_or_default();
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    let rolled_out = status.observed_generation == deployment.metadata.generation
        && status.updated_replicas == Some(wanted)
        && status.available_replicas == Some(wanted)
        && status.replicas == Some(wanted);
    if rolled_out {
        Poll::Ready
    } else {
        Poll::Waiting(format!(
            "{} of {wanted} replicas available, {} updated",
            status.available_replicas.unwrap_or(0),
            status.updated_replicas.unwrap_or(0)
        ))
    }
}

/// Waits until `GET http://ADDRESS/PATH` answers 200 (a NodePort answers only once kube-proxy
/// has programmed it, a little after the pod is ready).
pub(super) async fn wait_serving(address: &str, path: &str, what: &str) -> Result<(), StepError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|error| StepError::Invalid(format!("failed to build an HTTP client: {error}")))?;
    let url = format!("http://{address}{path}");
    poll_until(what, Duration::from_millis(250), || async {
        Ok(match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => Poll::Ready,
            Ok(response) => Poll::Waiting(format!("answered {}", response.status())),
            Err(error) => Poll::Waiting(crate::registry::error::without_queries(&error.to_string())),
        })
    })
    .await
}

/// A pod's state in one line: phase and each container's waiting or terminated reason.
pub fn describe_pod(status: Option<&PodStatus>) -> String {
    let Some(status) = status else {
        return "no status yet".to_owned();
    };
    let mut parts = vec![format!("phase {}", status.phase.as_deref().unwrap_or("unknown"))];
    if let Some(unscheduled) = unschedulable(status) {
        parts.push(format!("not scheduled: {unscheduled}"));
    }
    for container in status.container_statuses.iter().flatten() {
        let state = container.state.as_ref();
        if let Some(waiting) = state.and_then(|state| state.waiting.as_ref()) {
            parts.push(format!(
                "{} waiting: {} {}",
                container.name,
                waiting.reason.as_deref().unwrap_or(""),
                waiting.message.as_deref().unwrap_or("")
            ));
        }
        if let Some(terminated) = state.and_then(|state| state.terminated.as_ref()) {
            parts.push(format!(
                "{} terminated: exit {} {} {}",
                container.name,
                terminated.exit_code,
                terminated.reason.as_deref().unwrap_or(""),
                terminated.message.as_deref().unwrap_or("").trim()
            ));
        }
    }
    parts.join("; ")
}

/// Why the scheduler cannot place a pod (`0/1 nodes are available: 1 node(s) were
/// unschedulable`), when it says it cannot.
pub fn unschedulable(status: &PodStatus) -> Option<String> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|condition| condition.type_ == "PodScheduled" && condition.status == "False")
        .map(|condition| {
            condition
                .message
                .clone()
                .or_else(|| condition.reason.clone())
                .unwrap_or_else(|| "no reason given".to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: i64, observed: i64, available: i32, updated: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": 1,
                       "availableReplicas": available, "updatedReplicas": updated},
        }))
        .unwrap()
    }

    #[test]
    fn a_rollout_is_done_only_for_the_current_generation_with_every_replica_updated() {
        assert!(matches!(rollout(&deployment(2, 2, 1, 1)), Poll::Ready));
        assert!(matches!(rollout(&deployment(2, 1, 1, 1)), Poll::Waiting(_)));
        let Poll::Waiting(detail) = rollout(&deployment(2, 2, 1, 0)) else {
            panic!("an old pod still serving is not a finished rollout");
        };
        assert_eq!(detail, "1 of 1 replicas available, 0 updated");
    }

    #[test]
    fn a_pod_no_node_takes_says_why() {
        let status: PodStatus = serde_json::from_value(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/1 nodes are available: 1 node(s) were unschedulable."}],
        }))
        .unwrap();
        assert_eq!(
            describe_pod(Some(&status)),
            "phase Pending; not scheduled: 0/1 nodes are available: 1 node(s) were unschedulable."
        );
    }

    #[tokio::test]
    async fn polling_gives_up_at_once_on_failure_naming_what_it_saw() {
        let error = poll_until("pod x", Duration::from_millis(1), || async {
            Ok(Poll::Failed("phase Failed".to_owned()))
        })
        .await
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "pod x did not become ready within {} s: phase Failed",
                READY_TIMEOUT.as_secs()
            )
        );
    }
}
