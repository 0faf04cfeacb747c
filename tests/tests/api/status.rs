//! Status is written through the status subresource only, for packages and for the init: the
//! operator's status patches do not bump the generation or touch the spec, bootstrap steps merge
//! by name, and writes to the main resource cannot set status.

use jackal_crds::init::StepPhase;
use jackal_crds::names::INIT_NAME;
use jackal_crds::package::{ComponentPhase, JackalPackageSpec, PackageSource};
use jackal_crds::{JackalInit, JackalPackage};
use jackal_tests::Cluster;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

pub(crate) fn new_package(name: &str) -> JackalPackage {
    JackalPackage::new(
        name,
        JackalPackageSpec {
            source: PackageSource {
                url: "oci://127.0.0.1:31999/packages/podinfo:6.4.0".into(),
                ..PackageSource::default()
            },
            ..JackalPackageSpec::default()
        },
    )
}

pub(crate) fn ready_status(generation: i64) -> serde_json::Value {
    json!({
        "apiVersion": "jackal.dev/v1alpha1",
        "kind": "JackalPackage",
        "status": {
            "observedGeneration": generation,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "deployed 1 component",
                 "lastTransitionTime": "2026-11-25T12:00:00Z", "observedGeneration": generation},
                {"type": "Reconciling", "status": "False", "reason": "Succeeded", "message": "",
                 "lastTransitionTime": "2026-11-25T12:00:00Z", "observedGeneration": generation},
            ],
            "package": {"name": "podinfo", "version": "6.4.0", "architecture": "amd64", "digest": "sha256:0123"},
            "components": [{"name": "web", "phase": "Deployed", "observedGeneration": generation}],
        }
    })
}

#[tokio::test]
async fn status_is_written_through_the_status_subresource() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let namespace = cluster.namespace("status").await?;
    let api = Api::<JackalPackage>::namespaced(cluster.client.clone(), &namespace.name);

    let created = api
        .create(&PostParams::default(), &new_package("podinfo"))
        .await?;
    let generation = created.metadata.generation.unwrap_or_default();
    assert_eq!(generation, 1);

    let params = PatchParams::apply("jackal-operator").force();
    let patched = api
        .patch_status("podinfo", &params, &Patch::Apply(ready_status(generation)))
        .await?;
    let status = patched.status.clone().unwrap_or_default();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.package.as_ref().map(|p| p.name.as_str()), Some("podinfo"));
    assert_eq!(status.components[0].phase, ComponentPhase::Deployed);
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str());
    assert_eq!(ready, Some("True"));
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "a status write must not bump the generation"
    );
    assert_eq!(
        patched.spec, created.spec,
        "a status write must not touch the spec"
    );

    // A write to the main resource ignores status (and a spec change bumps the generation).
    let mut edited = api.get("podinfo").await?;
    edited.spec.suspend = true;
    edited.status = None;
    let replaced = api.replace("podinfo", &PostParams::default(), &edited).await?;
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(
        replaced.status, patched.status,
        "the main resource must not be able to clear status"
    );
    Ok(())
}

#[tokio::test]
async fn init_status_is_written_through_the_status_subresource() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let _singleton = crate::exclusive_init(&cluster.client).await?;
    let api = Api::<JackalInit>::all(cluster.client.clone());
    let created = api
        .create(
            &PostParams::default(),
            &JackalInit::new(INIT_NAME, Default::default()),
        )
        .await?;
    let generation = created.metadata.generation.unwrap_or_default();

    // Bootstrap progress is merged by step name: a patch with one step keeps the others.
    let params = PatchParams::apply("jackal-operator").force();
    let status = |steps: serde_json::Value| {
        json!({
            "apiVersion": "jackal.dev/v1alpha1",
            "kind": "JackalInit",
            "status": {
                "observedGeneration": generation,
                "registry": {"address": "127.0.0.1:31999"},
                "steps": steps,
            }
        })
    };
    api.patch_status(
        INIT_NAME,
        &params,
        &Patch::Apply(status(json!([
            {"name": "injector", "phase": "Succeeded"},
            {"name": "registry", "phase": "Running"},
        ]))),
    )
    .await?;
    let other = PatchParams::apply("jackal-registry-step").force();
    let patched = api
        .patch_status(
            INIT_NAME,
            &other,
            &Patch::Apply(json!({"apiVersion": "jackal.dev/v1alpha1", "kind": "JackalInit",
                "status": {"steps": [{"name": "registry", "phase": "Succeeded"}]}})),
        )
        .await?;
    let status = patched.status.clone().unwrap_or_default();
    let phases: Vec<(String, StepPhase)> = status.steps.iter().map(|s| (s.name.clone(), s.phase)).collect();
    assert_eq!(
        phases,
        vec![
            ("injector".into(), StepPhase::Succeeded),
            ("registry".into(), StepPhase::Succeeded)
        ]
    );
    assert_eq!(
        status.registry.map(|r| r.address).as_deref(),
        Some("127.0.0.1:31999")
    );
    assert_eq!(
        patched.metadata.generation,
        Some(generation),
        "a status write keeps the generation"
    );

    // The main resource cannot clear status.
    let mut edited = api.get(INIT_NAME).await?;
    edited.status = None;
    let replaced = api.replace(INIT_NAME, &PostParams::default(), &edited).await?;
    assert_eq!(
        replaced.status, patched.status,
        "the main resource must not be able to clear status"
    );
    api.delete(INIT_NAME, &Default::default()).await?;
    Ok(())
}
