//! Waiting for objects on the real cluster to reach a state, with a deadline and an error that says
//! what was awaited and why it did not happen (the object's status, its events, the nodes' state).

use std::fmt::{Debug, Write as _};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::ListParams;
use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Client};
use serde::Serialize;
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
    K: kube::Resource + Clone + Debug + Serialize + DeserializeOwned + Send + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(result) => result
            .with_context(|| format!("failed to watch {name}"))?
            .with_context(|| format!("{name} was deleted while waiting until {what}")),
        Err(_) => {
            let report = describe(api, name).await;
            bail!("{name} did not become {what} within {timeout:?}\n{report}")
        }
    }
}

/// What a test needs to see when an object did not reach its state: the object's status (without
/// the managed fields that bury it), the events about it, and every node's conditions and taints.
pub async fn describe<K>(api: &Api<K>, name: &str) -> String
where
    K: kube::Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let mut report = String::new();
    let mut namespace = None;
    match api.get_opt(name).await {
        Ok(Some(object)) => {
            namespace = object.meta().namespace.clone();
            let status = serde_json::to_value(&object)
                .ok()
                .and_then(|value| value.get("status").cloned())
                .unwrap_or_default();
            let status = serde_json::to_string_pretty(&status).unwrap_or_default();
            let _ = writeln!(report, "status of {name}: {status}");
        }
        Ok(None) => {
            let _ = writeln!(report, "{name} no longer exists");
        }
        Err(error) => {
            let _ = writeln!(report, "failed to read {name}: {error}");
        }
    }
    let client: Client = api.clone().into_client();
    let events: Api<Event> = match &namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let by_name = ListParams::default().fields(&format!("involvedObject.name={name}"));
    match events.list(&by_name).await {
        Ok(list) => {
            for event in list.items {
                let _ = writeln!(
                    report,
                    "event: {} {} x{}: {}",
                    event.type_.unwrap_or_default(),
                    event.reason.unwrap_or_default(),
                    event.count.unwrap_or(1),
                    event.message.unwrap_or_default()
                );
            }
        }
        Err(error) => {
            let _ = writeln!(report, "failed to list events: {error}");
        }
    }
    report.push_str(&describe_nodes(&client).await);
    report
}

/// Every node's conditions and taints, a line each.
async fn describe_nodes(client: &Client) -> String {
    let mut report = String::new();
    let nodes: Api<Node> = Api::all(client.clone());
    let list = match nodes.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(error) => return format!("failed to list nodes: {error}\n"),
    };
    if list.items.is_empty() {
        report.push_str("no nodes registered\n");
    }
    for node in list.items {
        let node_name = node.metadata.name.unwrap_or_default();
        let spec = node.spec.unwrap_or_default();
        let taints: Vec<String> = spec
            .taints
            .unwrap_or_default()
            .into_iter()
            .map(|taint| format!("{}:{}", taint.key, taint.effect))
            .collect();
        let conditions: Vec<String> = node
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default()
            .into_iter()
            .map(|condition| {
                format!(
                    "{}={} ({})",
                    condition.type_,
                    condition.status,
                    condition.message.unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(
            report,
            "node {node_name}: unschedulable={:?} taints={taints:?} conditions={conditions:?}",
            spec.unschedulable.unwrap_or(false)
        );
    }
    report
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

/// The Deployment has `replicas` available replicas.
pub fn deployment_available(replicas: i32) -> impl Condition<k8s_openapi::api::apps::v1::Deployment> {
    move |deployment: Option<&k8s_openapi::api::apps::v1::Deployment>| {
        deployment
            .and_then(|deployment| deployment.status.as_ref())
            .and_then(|status| status.available_replicas)
            == Some(replicas)
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

/// The messages of the events with `reason` about the object `name` in `namespace`, joined by
/// newlines, once `done` holds for them (events are written apart from the status, a little
/// later); fails after `timeout` with what was seen. `name` may carry more field selectors
/// (`jackal,involvedObject.uid=…`: only this incarnation's events).
pub async fn event_messages(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let by_object = ListParams::default().fields(&format!("involvedObject.name={name},reason={reason}"));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let messages = events
            .list(&by_object)
            .await?
            .items
            .into_iter()
            .filter_map(|event| event.message)
            .collect::<Vec<_>>()
            .join("\n");
        if done(&messages) {
            return Ok(messages);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the {reason} events of {name} never said what was expected within {timeout:?}: {messages:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
