//! The package definition, `jackal.yaml`: what a package holds (components with images, charts,
//! manifests and files), its variables and constants, and the `build` record `package create`
//! writes into the copy stored in the package.
//!
//! It accepts the original tool's v1alpha1 definitions as they are, Jackal's and Zarf's kinds
//! alike: every field those define is known here, including the ones Jackal does not act on yet
//! (`actions`, `repos`, `dataInjections`, `values`, `stateAccess`, …), which are kept verbatim. Unknown fields are errors,
//! so a typo is reported with its line instead of being silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A free-form value kept as written (for the fields Jackal carries but does not interpret).
pub type Opaque = serde_json::Value;

/// A whole `jackal.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackageDefinition {
    /// `zarf.dev/v1alpha1` in newer Zarf definitions; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `JackalPackageConfig` or `JackalInitConfig` (Zarf's names are accepted too).
    pub kind: PackageKind,
    /// Name, version and descriptive data.
    pub metadata: Metadata,
    /// Written by `package create`; never authored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// The components, in deployment order.
    pub components: Vec<Component>,
    /// Values fixed at create time: `###JACKAL_CONST_NAME###`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constants: Vec<Constant>,
    /// Values given at deploy time: `###JACKAL_VAR_NAME###`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<VariableDefinition>,
    /// Package-level values files and schema for Go-template values (Zarf; carried, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Opaque>,
    /// Documentation files shipped with the package, by name (Zarf; carried, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<Opaque>,
}

/// The kind of package.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PackageKind {
    /// An ordinary package.
    #[default]
    #[serde(rename = "JackalPackageConfig", alias = "ZarfPackageConfig")]
    Package,
    /// The bootstrap package.
    #[serde(rename = "JackalInitConfig", alias = "ZarfInitConfig")]
    Init,
}

/// `metadata`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Package name: lowercase letters, digits and dashes.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Version (required to publish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Project link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Reserved (an image for the package).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Write an uncompressed `.tar` instead of `.tar.zst`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uncompressed: bool,
    /// Target architecture (`amd64`, `arm64`); the creating machine's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Deploy without init (no images may be rewritten).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub yolo: bool,
    /// Authors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authors: Option<String>,
    /// Documentation link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    /// Source link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// sha256 of `checksums.txt`, written by `package create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_checksum: Option<String>,
    /// Free-form annotations (Zarf).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `build`, recorded by `package create`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Build {
    /// Host the package was created on.
    #[serde(default)]
    pub terminal: String,
    /// User who created it.
    #[serde(default)]
    pub user: String,
    /// Architecture it was created for.
    #[serde(default)]
    pub architecture: String,
    /// When (RFC 3339).
    #[serde(default)]
    pub timestamp: String,
    /// Version of the tool that created it.
    #[serde(default)]
    pub version: String,
    /// Definition migrations applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<String>,
    /// Registry overrides used when pulling images (`source → mirror`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registry_overrides: BTreeMap<String, String>,
    /// Whether this is a differential package.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub differential: bool,
    /// Version of the package a differential package builds on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differential_package_version: Option<String>,
    /// Components a differential package leaves out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differential_missing: Vec<String>,
    /// Oldest tool version that can deploy it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_non_breaking_version: Option<String>,
    /// Flavor selected at create time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    /// Whether `jackal.yaml.sig` signs the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<bool>,
    /// Tool versions the package needs to deploy (Zarf; carried, not checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub version_requirements: Vec<Opaque>,
    /// Files of the package that `checksums.txt` does not cover, such as signatures (Zarf).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance_files: Vec<String>,
}

/// One component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Component {
    /// Name: lowercase letters, digits and dashes; unique in the package.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Selected unless deselected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// Always deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Create- and deploy-time filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<Only>,
    /// Deprecated: mutually exclusive choice between components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Deprecated: key to verify `sget://` downloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign_key_path: Option<String>,
    /// Import a component from another package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<Import>,
    /// Kubernetes manifests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<ManifestSet>,
    /// Helm charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<Chart>,
    /// Data copied into running pods (carried, not yet acted on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_injections: Vec<Opaque>,
    /// Files placed on the deploying machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
    /// Images pulled at create time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Images read from OCI layouts or docker archives instead of registries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_archives: Vec<ImageArchive>,
    /// Git repositories to mirror (not supported yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<String>,
    /// Extensions such as Big Bang (carried, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Opaque>,
    /// Deprecated scripts (carried, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scripts: Option<Opaque>,
    /// `onCreate`, `onDeploy`, `onRemove` actions (carried, not yet acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Opaque>,
    /// kstatus health checks after deploy (Zarf).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<Opaque>,
    /// Cluster state the component's templates may read (Zarf; carried, not acted on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_access: Vec<Opaque>,
}

impl Component {
    /// Whether the component is always deployed.
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(false)
    }
}

/// `only`: filters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Only {
    /// Operating system of the deploying machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_os: Option<String>,
    /// Cluster filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<OnlyCluster>,
    /// Included only when the package is created with this flavor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
}

/// `only.cluster`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnlyCluster {
    /// Included only in packages for this architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Reserved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distros: Vec<String>,
}

/// `import`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Import {
    /// Component name in the imported package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Local directory holding the package definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `oci://` skeleton package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A set of manifests in a component.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestSet {
    /// Name, unique in the component (at most 40 characters).
    pub name: String,
    /// Namespace the manifests go to (`default` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Local paths or URLs (`https://…@sha256` pins the content).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Kustomizations to build at create time (not supported yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kustomizations: Vec<String>,
    /// Allow kustomizations outside their directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kustomize_allow_any_directory: bool,
    /// Allow kustomize plugins (Zarf).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_kustomize_plugins: bool,
    /// Do not wait for the objects to become ready.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_wait: bool,
    /// Server-side apply setting (Zarf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_apply: Option<Opaque>,
    /// Go-template the files (Zarf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<bool>,
}

/// A Helm chart in a component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Chart {
    /// Name, unique in the component (at most 40 characters).
    pub name: String,
    /// Namespace the release goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Chart version (required with `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Helm repository URL, `oci://` reference or git URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Chart name in the repository when it differs from `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_name: Option<String>,
    /// Path of the chart inside a git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_path: Option<String>,
    /// Local chart directory or `.tgz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
    /// Release name (the chart name when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Do not wait for the release to become ready.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_wait: bool,
    /// Values files, merged in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
    /// Values exposed as variables (Zarf).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<Opaque>,
    /// Inline values (Zarf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Opaque>,
    /// Validate values against the chart's schema (Zarf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_validation: Option<bool>,
    /// Server-side apply setting (Zarf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_apply: Option<Opaque>,
    /// Template the values files (Zarf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templated_values_files: Option<Opaque>,
}

/// A file placed on the deploying machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileEntry {
    /// Local path or URL.
    pub source: String,
    /// Expected sha256 (required for URLs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shasum: Option<String>,
    /// Where it goes.
    pub target: String,
    /// Make it executable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executable: bool,
    /// Symlinks to create to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symlinks: Vec<String>,
    /// Take only this path out of an archive source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_path: Option<String>,
    /// Go-template the file (Zarf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<bool>,
}

/// Images read from a local OCI layout or docker archive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageArchive {
    /// An OCI image layout directory, an OCI archive (`.tar`) or a `docker save` archive.
    pub path: String,
    /// The images to take from it, by reference.
    pub images: Vec<String>,
}

/// A constant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constant {
    /// Name: upper-case letters, digits and underscores.
    pub name: String,
    /// Value.
    pub value: String,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Indent multi-line values like the marker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_indent: bool,
    /// A regular expression the value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// A variable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariableDefinition {
    /// Name: upper-case letters, digits and underscores.
    pub name: String,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Value when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Ask for it interactively.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompt: bool,
    /// Keep it out of logs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// Indent multi-line values like the marker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_indent: bool,
    /// A regular expression the value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `raw` (default) or `file` (the value is a path whose content is used).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

mod locate;
mod validate;

pub use validate::{DefinitionError, Problem};

impl PackageDefinition {
    /// Parses a `jackal.yaml`; errors carry the line, column and field, and `source` (the file
    /// name) in place of `<input>`. The parser's default budgets refuse alias bombs and
    /// absurdly deep or long documents.
    pub fn parse(text: &str, source: &str) -> Result<Self, DefinitionError> {
        serde_saphyr::from_str(text).map_err(|error| {
            let message = error.to_string();
            // Most messages quote `<input>`; those that do not (an empty file) get the name first.
            let message = if message.contains("<input>") {
                message.replace("<input>", source)
            } else {
                format!("{source}: {message}")
            };
            DefinitionError::Parse {
                file: source.to_owned(),
                message,
            }
        })
    }

    /// Renders the definition as YAML (the copy stored in a package).
    pub fn to_yaml(&self) -> Result<String, DefinitionError> {
        serde_saphyr::to_string(self).map_err(|error| DefinitionError::Render(error.to_string()))
    }
}
