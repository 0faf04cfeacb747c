//! `JackalPackage`: deploy (some components of) a Jackal package that sits in an OCI registry.
//!
//! The operator pulls the artifact named by `spec.source`, verifies it, relocates its images into
//! the cluster's registry, installs its charts and manifests and reports per-component status.
//! Deleting the resource uninstalls what it installed.

use k8s_openapi::api::core::v1::{ConfigMapKeySelector, LocalObjectReference, SecretKeySelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::schema::FreeFormObject;

/// Deploys the selected components of a Jackal package from an OCI registry.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "jackal.dev",
    version = "v1alpha1",
    kind = "JackalPackage",
    doc = "Deploys the selected components of a Jackal package from an OCI registry into this cluster.",
    namespaced,
    status = "JackalPackageStatus",
    shortname = "jpkg",
    category = "jackal",
    printcolumn(name = "Package", type_ = "string", json_path = ".status.package.name"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.package.version"),
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".spec.source.url",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct JackalPackageSpec {
    /// Where the package artifact lives.
    pub source: PackageSource,

    /// Components to deploy. Empty means the package's required and default components.
    /// Required components are always deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub components: Vec<ComponentName>,

    /// Values for the package's `###JACKAL_VAR_NAME###` variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub variables: Vec<Variable>,

    /// Helm values passed to individual charts, merged over the package's own values files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["component".into(), "chart".into()]))]
    pub chart_values: Vec<ChartValues>,

    /// Verify the package signature with this public key before deploying anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verification>,

    /// Take over existing objects that the package declares instead of failing on them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_existing_resources: bool,

    /// Stop reconciling: nothing is installed, upgraded or removed while true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// How long one component may take to become healthy, as a Go duration (`90s`, `15m`, `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub timeout: Option<String>,
}

/// The OCI artifact holding the package.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PackageSource {
    /// `oci://REGISTRY/REPOSITORY:TAG` or `oci://REGISTRY/REPOSITORY@sha256:DIGEST`.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.matches('^oci://[^/]+/.+$')").message(
        "must be an OCI reference of the form oci://REGISTRY/REPOSITORY[:TAG|@DIGEST]"
    ))]
    pub url: String,

    /// Use plain HTTP, or accept an untrusted certificate, when talking to this registry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,

    /// A `kubernetes.io/dockerconfigjson` Secret in this namespace holding pull credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
}

/// A component name as written in `jackal.yaml`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[serde(transparent)]
pub struct ComponentName(
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9\-]*$"), length(min = 1, max = 63))] pub String,
);

/// One deploy-time variable: a literal value or a reference to a Secret or ConfigMap key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)")
    .message("set exactly one of value and valueFrom"))]
pub struct Variable {
    /// Variable name, as in `###JACKAL_VAR_NAME###`: upper-case letters, digits and underscores.
    #[schemars(regex(pattern = r"^[A-Z0-9_]+$"), length(min = 1, max = 128))]
    pub name: String,

    /// The literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1_048_576))]
    pub value: Option<String>,

    /// Read the value from a key of a Secret or ConfigMap in this namespace (for sensitive values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<VariableSource>,
}

/// Where a variable's value comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretKeyRef) != has(self.configMapKeyRef)")
    .message("set exactly one of secretKeyRef and configMapKeyRef"))]
pub struct VariableSource {
    /// A key of a Secret in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
    /// A key of a ConfigMap in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeySelector>,
}

/// Helm values for one chart of one component.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChartValues {
    /// The component declaring the chart.
    pub component: ComponentName,
    /// The chart's `name` in `jackal.yaml`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9\-]*$"), length(min = 1, max = 63))]
    pub chart: String,
    /// Values merged over the chart's values files (highest precedence).
    pub values: FreeFormObject,
}

/// Signature verification settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// The key of a Secret in this namespace holding the PEM public key the package must be signed with.
    pub public_key: SecretKeySelector,
}

/// Observed state of a `JackalPackage`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JackalPackageStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// kstatus conditions: `Ready`, `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The package the source resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<ResolvedPackage>,

    /// Per-component progress, in deployment order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub components: Vec<ComponentStatus>,
}

/// Identity of the package artifact that was (or is being) deployed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedPackage {
    /// `metadata.name` from `jackal.yaml`.
    pub name: String,
    /// `metadata.version` from `jackal.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The package's target architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Digest of the OCI manifest that was pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Progress of one component.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Component name.
    pub name: String,
    /// Where the component is in its lifecycle.
    pub phase: ComponentPhase,
    /// What happened last, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` this component was last deployed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Lifecycle of one component.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ComponentPhase {
    /// Not started yet.
    #[default]
    Pending,
    /// Images, charts or manifests are being applied.
    Deploying,
    /// Applied and healthy.
    Deployed,
    /// The last attempt failed; see the message.
    Failed,
    /// Being uninstalled.
    Removing,
}
