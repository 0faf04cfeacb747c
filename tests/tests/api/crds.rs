//! The generated CRDs install on the real API server and say what they should.

use jackal_crds::{JackalInit, JackalPackage};
use jackal_tests::{Cluster, FIELD_MANAGER};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, ResourceExt};
use kube::{Api, CustomResourceExt};

#[tokio::test]
async fn crds_are_established_with_names_subresources_and_columns() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let api = Api::<CustomResourceDefinition>::all(cluster.client.clone());

    for (name, scope, short_name, columns) in [
        (
            "jackalpackages.jackal.dev",
            "Namespaced",
            "jpkg",
            vec!["Package", "Version", "Source", "Ready", "Status", "Age"],
        ),
        (
            "jackalinits.jackal.dev",
            "Cluster",
            "jinit",
            vec!["Registry", "Ready", "Status", "Age"],
        ),
    ] {
        let crd = api.get(name).await?;
        let status = crd.status.clone().unwrap_or_default();
        for wanted in ["Established", "NamesAccepted"] {
            let condition = status.conditions.iter().flatten().find(|c| c.type_ == wanted);
            assert_eq!(
                condition.map(|c| c.status.as_str()),
                Some("True"),
                "{name}: {wanted} is not True"
            );
        }
        assert_eq!(crd.spec.scope, scope, "{name}: scope");
        assert_eq!(
            crd.spec.names.short_names,
            Some(vec![short_name.to_owned()]),
            "{name}: short names"
        );
        assert_eq!(
            crd.spec.names.categories,
            Some(vec!["jackal".to_owned()]),
            "{name}: categories"
        );
        let version = &crd.spec.versions[0];
        assert_eq!(
            (version.name.as_str(), version.served, version.storage),
            ("v1alpha1", true, true)
        );
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name}: no status subresource"
        );
        let printed: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(printed, columns, "{name}: printer columns");
    }
    Ok(())
}

#[tokio::test]
async fn installing_the_crds_again_changes_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let api = Api::<CustomResourceDefinition>::all(cluster.client.clone());
    for crd in [JackalPackage::crd(), JackalInit::crd()] {
        let name = crd.name_any();
        let before = api.get(&name).await?.resource_version();
        let after = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await?
            .resource_version();
        assert_eq!(before, after, "re-applying {name} modified it");
    }
    Ok(())
}
