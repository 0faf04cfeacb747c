//! A webhook that is down: with `failurePolicy: Ignore` pods get through unchanged; with `Fail`
//! they are refused with a message that says which webhook failed.

use jackal_crds::init::{FailurePolicy, WebhookSpec};
use jackal_tests::webhook::{TestWebhook, test_rules};
use jackal_tests::{Cluster, from_json};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

#[tokio::test]
async fn a_webhook_that_is_down_follows_its_failure_policy() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let mut webhook = TestWebhook::start(
        &cluster.client,
        "webhook-down",
        test_rules(),
        WebhookSpec::default(),
    )
    .await?;
    let namespace = cluster
        .labelled_namespace("webhook-down", &webhook.namespace_labels())
        .await?;
    webhook
        .wait_until_active(&cluster.client, &namespace.name)
        .await?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    let pod = |name: &str| -> anyhow::Result<Pod> {
        from_json(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                         "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}),
        )
    };
    // Point the registration at a closed port (the webhook is "down").
    let closed = format!(
        "https://127.0.0.1:{}/mutate",
        jackal_tests::injector::free_port()?
    );
    // Nothing listens there, so the CA bundle does not matter.
    let ca = String::new();
    webhook.stop_serving();

    let ignore = WebhookSpec {
        failure_policy: Some(FailurePolicy::Ignore),
        timeout_seconds: Some(2),
        ..WebhookSpec::default()
    };
    webhook.register(&cluster.client, &closed, &ca, ignore).await?;
    // Until the API server applies the new registration it may still reach the old server over
    // a connection that outlived it, so a rewritten answer means "not yet": dry runs until the pod
    // comes back unchanged, then one real create.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    loop {
        match pods.create(&dry_run, &pod("through")?).await {
            Ok(created)
                if created
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.containers[0].image.as_deref())
                    == Some("nginx:1.27") =>
            {
                break;
            }
            result if std::time::Instant::now() < deadline => {
                eprintln!(
                    "waiting for the Ignore policy to apply: {:?}",
                    result.map(|_| "rewritten")
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            result => anyhow::bail!(
                "the Ignore policy never applied: {:?}",
                result.map(|pod| pod.spec)
            ),
        }
    }
    let admitted = pods.create(&PostParams::default(), &pod("through")?).await?;
    assert_eq!(
        admitted.spec.unwrap_or_default().containers[0].image.as_deref(),
        Some("nginx:1.27"),
        "admitted unchanged"
    );

    let fail = WebhookSpec {
        failure_policy: Some(FailurePolicy::Fail),
        timeout_seconds: Some(2),
        ..WebhookSpec::default()
    };
    webhook.register(&cluster.client, &closed, &ca, fail).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let message = loop {
        match pods.create(&dry_run, &pod("refused")?).await {
            Err(kube::Error::Api(status)) => break status.message,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await
            }
            other => anyhow::bail!("expected a refusal, got {other:?}"),
        }
    };
    assert!(
        message.contains("failed calling webhook") && message.contains("pods.jackal.dev"),
        "{message}"
    );
    Ok(())
}
