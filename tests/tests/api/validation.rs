//! Valid objects are accepted as written; each invalid case is refused by the API server itself
//! (OpenAPI constraints and CEL rules in the CRD) with a message naming the offending field.

use jackal_crds::names::INIT_NAME;
use jackal_crds::{JackalInit, JackalPackage};
use jackal_tests::Cluster;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::{assert_invalid, exclusive_init};

fn package(name: &str, spec: Value) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "jackal.dev/v1alpha1",
        "kind": "JackalPackage",
        "metadata": {"name": name},
        "spec": spec,
    }))?)
}

fn init(name: &str, spec: Value) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "jackal.dev/v1alpha1",
        "kind": "JackalInit",
        "metadata": {"name": name},
        "spec": spec,
    }))?)
}

const SOURCE: &str = "oci://127.0.0.1:31999/packages/podinfo:6.4.0";

#[tokio::test]
async fn a_valid_package_is_accepted_as_written() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("valid-package").await?;
    let spec = json!({
        "source": {"url": SOURCE, "insecure": true, "secretRef": {"name": "pull"}},
        "components": ["web", "database"],
        "variables": [
            {"name": "DOMAIN", "value": "example.internal"},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "credentials", "key": "password"}}},
            {"name": "SETTINGS", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "json"}}},
        ],
        "chartValues": [{"component": "web", "chart": "podinfo", "values": {"replicaCount": 2, "ui": {"color": "#34577c"}}}],
        "verify": {"publicKey": {"name": "keys", "key": "cosign.pub"}},
        "adoptExistingResources": true,
        "timeout": "1h30m",
    });
    let api = Api::<JackalPackage>::namespaced(cluster.client.clone(), &namespace.name);
    let dynamic = Api::<DynamicObject>::namespaced_with(
        cluster.client.clone(),
        &namespace.name,
        &ApiResource::erase::<JackalPackage>(&()),
    );
    dynamic
        .create(&PostParams::default(), &package("podinfo", spec.clone())?)
        .await?;

    let stored = api.get("podinfo").await?;
    assert_eq!(
        serde_json::to_value(&stored.spec)?,
        spec,
        "the stored spec differs from the one sent"
    );
    assert_eq!(stored.spec.components.len(), 2);
    assert!(
        stored.status.is_none(),
        "a new package must not have a status yet"
    );
    Ok(())
}

#[tokio::test]
async fn invalid_packages_are_refused_naming_the_field() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("invalid-package").await?;
    let api = Api::<DynamicObject>::namespaced_with(
        cluster.client.clone(),
        &namespace.name,
        &ApiResource::erase::<JackalPackage>(&()),
    );
    let cases = [
        ("no source", json!({}), "spec.source", "Required value"),
        (
            "https source",
            json!({"source": {"url": "https://example.com/p.tar.zst"}}),
            "spec.source.url",
            "must be an OCI reference",
        ),
        (
            "source without repository",
            json!({"source": {"url": "oci://registry.example.com"}}),
            "spec.source.url",
            "must be an OCI reference",
        ),
        (
            "component name",
            json!({"source": {"url": SOURCE}, "components": ["Web_1"]}),
            "spec.components[0]",
            "should match",
        ),
        (
            "duplicate component",
            json!({"source": {"url": SOURCE}, "components": ["web", "web"]}),
            "spec.components[1]",
            "Duplicate value",
        ),
        (
            "variable name",
            json!({"source": {"url": SOURCE}, "variables": [{"name": "domain", "value": "x"}]}),
            "spec.variables[0].name",
            "should match",
        ),
        (
            "variable without value",
            json!({"source": {"url": SOURCE}, "variables": [{"name": "DOMAIN"}]}),
            "spec.variables[0]",
            "set exactly one of value and valueFrom",
        ),
        (
            "variable with value and valueFrom",
            json!({"source": {"url": SOURCE}, "variables": [{"name": "DOMAIN", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}),
            "spec.variables[0]",
            "set exactly one of value and valueFrom",
        ),
        (
            "variable from two sources",
            json!({"source": {"url": SOURCE}, "variables": [{"name": "DOMAIN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}, "configMapKeyRef": {"name": "c", "key": "k"}}}]}),
            "spec.variables[0].valueFrom",
            "set exactly one of secretKeyRef and configMapKeyRef",
        ),
        (
            "duplicate variable",
            json!({"source": {"url": SOURCE}, "variables": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
            "spec.variables[1]",
            "Duplicate value",
        ),
        (
            "chart values not an object",
            json!({"source": {"url": SOURCE}, "chartValues": [{"component": "web", "chart": "podinfo", "values": "replicaCount=2"}]}),
            "spec.chartValues[0].values",
            "must be of type object",
        ),
        (
            "duplicate chart values",
            json!({"source": {"url": SOURCE}, "chartValues": [
                {"component": "web", "chart": "podinfo", "values": {}},
                {"component": "web", "chart": "podinfo", "values": {}}]}),
            "spec.chartValues[1]",
            "Duplicate value",
        ),
        (
            "timeout",
            json!({"source": {"url": SOURCE}, "timeout": "5 minutes"}),
            "spec.timeout",
            "should match",
        ),
        (
            "verify without key",
            json!({"source": {"url": SOURCE}, "verify": {}}),
            "spec.verify.publicKey",
            "Required value",
        ),
    ];
    for (case, spec, field, message) in cases {
        println!("case: {case}");
        let result = api
            .create(&PostParams::default(), &package("invalid", spec)?)
            .await;
        assert_invalid(result, field, message);
    }
    Ok(())
}

#[tokio::test]
async fn a_valid_init_is_accepted_and_its_registry_mode_is_immutable() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let _singleton = exclusive_init(&cluster.client).await?;
    let api = Api::<JackalInit>::all(cluster.client.clone());
    let dynamic =
        Api::<DynamicObject>::all_with(cluster.client.clone(), &ApiResource::erase::<JackalInit>(&()));

    // An empty spec is valid: every field has a default.
    dynamic
        .create(&PostParams::default(), &init(INIT_NAME, json!({}))?)
        .await?;
    let stored = api.get(INIT_NAME).await?;
    assert_eq!(
        stored.spec,
        Default::default(),
        "an empty spec must read back as the defaults"
    );

    // A full spec is valid too.
    let full = json!({
        "architecture": "amd64",
        "registry": {"internal": {"nodePort": 31999, "replicas": 2, "storage": {"size": "20Gi", "storageClassName": "local"}}},
        "injector": {"nodePort": 32000, "image": "docker.io/library/busybox:1.36", "chunkSize": 786432},
        "webhook": {"failurePolicy": "Ignore", "namespaceSelection": "OptIn", "timeoutSeconds": 3},
    });
    let patch = json!({"apiVersion": "jackal.dev/v1alpha1", "kind": "JackalInit", "spec": full});
    let params = PatchParams::apply("jackal-tests").force();
    let updated = api.patch(INIT_NAME, &params, &Patch::Apply(&patch)).await?;
    assert_eq!(serde_json::to_value(&updated.spec)?, full);

    // Switching to an external registry after init is refused (a CEL transition rule).
    let external = json!({"apiVersion": "jackal.dev/v1alpha1", "kind": "JackalInit", "spec": {
        "registry": {"external": {"address": "registry.example.com", "pushSecretRef": {"name": "push"}}}}});
    assert_invalid(
        api.patch(INIT_NAME, &params, &Patch::Apply(&external)).await,
        "spec.registry",
        "cannot switch between the internal and an external registry",
    );
    // The registry's storage is chosen once: changing it would lose the registry's content.
    let mut resized = full.clone();
    resized["registry"]["internal"]["storage"]["size"] = json!("40Gi");
    let resized = json!({"apiVersion": "jackal.dev/v1alpha1", "kind": "JackalInit", "spec": resized});
    assert_invalid(
        api.patch(INIT_NAME, &params, &Patch::Apply(&resized)).await,
        "spec.registry.internal",
        "registry.internal.storage cannot change after init",
    );
    api.delete(INIT_NAME, &Default::default()).await?;
    Ok(())
}

#[tokio::test]
async fn invalid_inits_are_refused_naming_the_field() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let api = Api::<DynamicObject>::all_with(cluster.client.clone(), &ApiResource::erase::<JackalInit>(&()));
    let external = json!({"address": "registry.example.com", "pushSecretRef": {"name": "push"}});
    let cases = [
        (
            "second init",
            "other",
            json!({}),
            "metadata.name",
            "a cluster has exactly one JackalInit",
        ),
        (
            "node port",
            INIT_NAME,
            json!({"registry": {"internal": {"nodePort": 5000}}}),
            "spec.registry.internal.nodePort",
            "greater than or equal to 30000",
        ),
        (
            "replicas",
            INIT_NAME,
            json!({"registry": {"internal": {"replicas": 0}}}),
            "spec.registry.internal.replicas",
            "greater than or equal to 1",
        ),
        (
            "storage size",
            INIT_NAME,
            json!({"registry": {"internal": {"storage": {"size": "lots"}}}}),
            "spec.registry.internal.storage.size",
            "should match",
        ),
        (
            "both registries",
            INIT_NAME,
            json!({"registry": {"internal": {}, "external": external}}),
            "spec.registry",
            "set at most one of registry.internal and registry.external",
        ),
        (
            "registry scheme",
            INIT_NAME,
            json!({"registry": {"external": {"address": "https://registry.example.com", "pushSecretRef": {"name": "p"}}}}),
            "spec.registry.external.address",
            "without a scheme",
        ),
        (
            "external without credentials",
            INIT_NAME,
            json!({"registry": {"external": {"address": "registry.example.com"}}}),
            "spec.registry.external.pushSecretRef",
            "Required value",
        ),
        (
            "architecture",
            INIT_NAME,
            json!({"architecture": "s390x"}),
            "spec.architecture",
            "Unsupported value",
        ),
        (
            "injector chunk size",
            INIT_NAME,
            json!({"injector": {"chunkSize": 2_000_000}}),
            "spec.injector.chunkSize",
            "less than or equal to 1000000",
        ),
        (
            "injector node port",
            INIT_NAME,
            json!({"injector": {"nodePort": 80}}),
            "spec.injector.nodePort",
            "greater than or equal to 30000",
        ),
        (
            "failure policy",
            INIT_NAME,
            json!({"webhook": {"failurePolicy": "Sometimes"}}),
            "spec.webhook.failurePolicy",
            "Unsupported value",
        ),
        (
            "namespace selection",
            INIT_NAME,
            json!({"webhook": {"namespaceSelection": "Some"}}),
            "spec.webhook.namespaceSelection",
            "Unsupported value",
        ),
        (
            "webhook timeout",
            INIT_NAME,
            json!({"webhook": {"timeoutSeconds": 60}}),
            "spec.webhook.timeoutSeconds",
            "less than or equal to 30",
        ),
    ];
    // Dry run: validation runs in full, but nothing is stored, so the singleton is not disturbed.
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for (case, name, spec, field, message) in cases {
        println!("case: {case}");
        assert_invalid(api.create(&dry_run, &init(name, spec)?).await, field, message);
    }
    Ok(())
}
