//! Jackal's API: the `JackalInit` and `JackalPackage` custom resources (group `jackal.dev`,
//! version `v1alpha1`), the kstatus conditions they report, and the well-known names every part
//! of Jackal agrees on.
//!
//! This crate holds types and constants only: the operator, the kubectl plugin and the tests all
//! read it, so it carries no runtime (no tokio, no client). Server-side validation lives here too,
//! as OpenAPI constraints and CEL rules on the types, so the API server refuses an invalid object
//! with a message that names the field before any Jackal code sees it.
//!
//! ```text
//!   crds ──▶ core ──▶ plugin (kubectl-jackal)
//!     │        └────▶ operator (controllers + webhook)
//!     └──────────────▶ tests (real API server)
//! ```

// kube-derive's repeated `printcolumn(type_ = ...)` arguments trip this lint; they are distinct columns.
#![allow(clippy::duplicated_attributes)]

pub mod condition;
pub mod definition;
pub mod init;
pub mod names;
pub mod package;
mod schema;
pub mod state;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use condition::{ConditionType, Reason};
pub use init::{JackalInit, JackalInitSpec, JackalInitStatus};
pub use package::{JackalPackage, JackalPackageSpec, JackalPackageStatus};

/// API group of every Jackal custom resource.
pub const GROUP: &str = "jackal.dev";
/// The one served and stored API version.
pub const VERSION: &str = "v1alpha1";

/// Every custom resource definition Jackal installs, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![JackalInit::crd(), JackalPackage::crd()]
}

/// Renders one definition as YAML, the form committed into the chart and `config/crd/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(crd)
}

/// The file name a definition is committed under: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn sample(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/samples")
            .join(name);
        std::fs::read_to_string(path).expect("sample exists")
    }

    #[test]
    fn definitions_are_named_after_plural_and_group() {
        let names: Vec<_> = all()
            .into_iter()
            .map(|crd| crd.metadata.name.unwrap_or_default())
            .collect();
        assert_eq!(names, ["jackalinits.jackal.dev", "jackalpackages.jackal.dev"]);
        assert_eq!(file_name(&all()[1]), "jackalpackages.jackal.dev.yaml");
    }

    #[test]
    fn samples_deserialize_into_the_types() {
        let package: JackalPackage =
            serde_saphyr::from_str(&sample("jackalpackage.yaml")).expect("package sample");
        assert_eq!(
            package.spec.source.url,
            "oci://127.0.0.1:31999/packages/podinfo:6.4.0"
        );
        assert_eq!(package.spec.variables.len(), 2);
        assert_eq!(package.spec.chart_values[0].values.0["replicaCount"], 2);

        let init: JackalInit = serde_saphyr::from_str(&sample("jackalinit.yaml")).expect("init sample");
        let internal = init.spec.registry.internal.expect("internal registry");
        assert_eq!(internal.node_port, Some(names::DEFAULT_REGISTRY_NODE_PORT));
    }

    #[test]
    fn empty_init_spec_round_trips_as_defaults() {
        let spec: JackalInitSpec = serde_json::from_str("{}").expect("empty spec");
        assert_eq!(spec, JackalInitSpec::default());
        assert_eq!(
            serde_json::to_value(&spec).expect("serializes"),
            serde_json::json!({"registry": {}, "injector": {}, "webhook": {}})
        );
    }
}
