//! Certificate rotation on the real API server, with lifetimes of seconds instead of months: while
//! pods are admitted continuously, the serving certificate is renewed several times and the CA is
//! rotated (published beside the old one first), and not one admission fails.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jackal_crds::init::WebhookSpec;
use jackal_operator::webhook::certs::Validity;
use jackal_operator::webhook::certs::manager::{CertificateManager, Settings};
use jackal_operator::webhook::tls::CertificateStore;
use jackal_tests::webhook::{REGISTRY, TestWebhook, loopback_identity, test_rules};
use jackal_tests::{Cluster, from_json};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

#[tokio::test]
async fn certificates_rotate_without_a_failed_admission() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let test = "webhook-rotation";
    let namespace = cluster
        .labelled_namespace(
            test,
            &[(
                jackal_tests::webhook::SCOPE_LABEL.to_owned(),
                TestWebhook::id_for(test),
            )],
        )
        .await?;
    let certificates = Arc::new(CertificateStore::default());
    // Short lives so that a minute sees several renewals and a CA rotation; the propagation window
    // leaves a loaded 2-core machine's API server time to pick up a new CA bundle.
    let validity = Validity {
        ca: Duration::from_secs(40),
        leaf: Duration::from_secs(15),
        propagation: Duration::from_secs(6),
    };
    let manager = Arc::new(CertificateManager::new(
        cluster.client.clone(),
        Settings {
            namespace: namespace.name.clone(),
            secret: "jackal-webhook-tls".into(),
            webhook_configuration: TestWebhook::configuration_for(test),
            identity: loopback_identity()?,
            validity,
        },
        Arc::clone(&certificates),
    ));
    manager.step().await?;
    let ca_bundle = manager.ca_bundle().await?;
    let webhook = TestWebhook::start_with(
        &cluster.client,
        test,
        test_rules(),
        WebhookSpec::default(),
        certificates,
        &ca_bundle,
    )
    .await?;
    webhook
        .wait_until_active(&cluster.client, &namespace.name)
        .await?;
    let rotation = tokio::spawn(Arc::clone(&manager).run());

    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace.name);
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), &namespace.name);
    let pod: Pod = from_json(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "rotation-"},
                                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}),
    )?;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let (mut admitted, mut failures) = (0, Vec::new());
    let (mut leaves, mut authorities) = (BTreeSet::new(), BTreeSet::new());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        match pods.create(&dry_run, &pod).await {
            Ok(created)
                if created.spec.as_ref().is_some_and(|spec| {
                    spec.containers[0]
                        .image
                        .as_deref()
                        .unwrap_or_default()
                        .starts_with(REGISTRY)
                }) =>
            {
                admitted += 1
            }
            Ok(_) => failures.push(format!("{:?}: admitted without rewriting", started.elapsed())),
            Err(error) => failures.push(format!("{:?}: {error}", started.elapsed())),
        }
        let secret = secrets.get("jackal-webhook-tls").await?;
        let bundle: serde_json::Value =
            serde_json::from_slice(&secret.data.unwrap_or_default()["bundle.json"].0)?;
        leaves.insert(
            bundle["leaf"]["certificate"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        authorities.insert(bundle["ca"]["commonName"].as_str().unwrap_or_default().to_owned());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rotation.abort();
    assert!(
        failures.is_empty(),
        "{} of {} admissions failed: {failures:#?}",
        failures.len(),
        admitted + failures.len()
    );
    assert!(
        leaves.len() >= 4,
        "the serving certificate was renewed only {} times",
        leaves.len() - 1
    );
    assert!(authorities.len() >= 2, "the CA was never rotated");
    println!(
        "{admitted} admissions, {} serving certificates, {} CAs, no failure",
        leaves.len(),
        authorities.len()
    );
    Ok(())
}
