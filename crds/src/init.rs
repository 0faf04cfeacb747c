//! `JackalInit`: bootstrap Jackal into a cluster that has no registry.
//!
//! There is one per cluster, named `jackal`. The operator (in-process in the plugin during the very
//! first bootstrap, in-cluster afterwards) brings up the seed registry from the injector, the
//! permanent registry, itself and the admission webhook, recording each step in `status.steps` so
//! a crash resumes where it stopped.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// Bootstraps the in-cluster registry, the operator and the admission webhook.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "jackal.dev",
    version = "v1alpha1",
    kind = "JackalInit",
    doc = "Bootstraps Jackal into a cluster: the seed and permanent registries, the operator and the admission webhook. One per cluster, named `jackal`.",
    status = "JackalInitStatus",
    shortname = "jinit",
    category = "jackal",
    validation = Rule::new("self.metadata.name == 'jackal'")
        .message("metadata.name must be 'jackal': a cluster has exactly one JackalInit"),
    printcolumn(name = "Registry", type_ = "string", json_path = ".status.registry.address"),
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
pub struct JackalInitSpec {
    /// CPU architecture of the images to run. Detected from the nodes when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,

    /// The registry workloads pull from.
    #[serde(default)]
    pub registry: RegistrySpec,

    /// How the seed registry is brought up.
    #[serde(default)]
    pub injector: InjectorSpec,

    /// How the admission webhook is registered.
    #[serde(default)]
    pub webhook: WebhookSpec,
}

/// CPU architectures Jackal packages are built for.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
}

impl Architecture {
    /// The name Kubernetes nodes and OCI platforms use (`amd64`, `arm64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Amd64 => "amd64",
            Self::Arm64 => "arm64",
        }
    }

    /// The architecture named `name` (`amd64`, `arm64`), if Jackal builds for it.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Amd64, Self::Arm64]
            .into_iter()
            .find(|architecture| architecture.as_str() == name)
    }
}

/// The registry: run one in the cluster (the default) or use an existing one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.internal) && has(self.external))")
        .message("set at most one of registry.internal and registry.external"),
    validation = Rule::new("has(self.external) == has(oldSelf.external)")
        .message("cannot switch between the internal and an external registry after init: remove Jackal and init again")
)]
pub struct RegistrySpec {
    /// Settings of the registry Jackal runs in the cluster (used when `external` is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<InternalRegistry>,

    /// An existing registry to use instead of running one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRegistry>,
}

/// The in-cluster registry.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.storage) == has(oldSelf.storage) && (!has(self.storage) || self.storage == oldSelf.storage)")
        .message("registry.internal.storage cannot change after init: the registry's content would be lost")
)]
pub struct InternalRegistry {
    /// NodePort the registry answers on, as `127.0.0.1:<nodePort>` on every node. Default 31999.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,

    /// Number of registry pods. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub replicas: Option<i32>,

    /// Persistent storage for the registry's blobs. Without it the registry uses an emptyDir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<RegistryStorage>,
}

/// A PersistentVolumeClaim for the registry.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStorage {
    /// Requested size, as a Kubernetes quantity (`20Gi`).
    #[schemars(
        regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"),
        length(max = 32)
    )]
    pub size: String,

    /// StorageClass to request. The cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
}

/// A registry Jackal does not run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRegistry {
    /// `HOST[:PORT][/PATH]`, without a scheme.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("!self.contains('://')")
        .message("give the registry as HOST[:PORT][/PATH], without a scheme"))]
    pub address: String,

    /// A `kubernetes.io/dockerconfigjson` Secret in the `jackal` namespace with push credentials.
    pub push_secret_ref: LocalObjectReference,

    /// A `kubernetes.io/dockerconfigjson` Secret in the `jackal` namespace with pull credentials,
    /// copied into every namespace whose pods are rewritten. The push credentials when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret_ref: Option<LocalObjectReference>,

    /// Use plain HTTP, or accept an untrusted certificate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// The seed registry that serves the bootstrap images out of ConfigMaps.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InjectorSpec {
    /// A fixed NodePort for the seed registry (for firewalled nodes). Allocated by Kubernetes when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,

    /// An image already present on a node to run the injector in. Discovered when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub image: Option<String>,

    /// Bytes of payload per ConfigMap. Each ConfigMap must stay under the API's 1 MiB object limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 65536, max = 1_000_000))]
    pub chunk_size: Option<i32>,
}

/// Registration of the mutating admission webhook.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// What the API server does when the webhook cannot answer. Default `Fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,

    /// Which namespaces get their pods rewritten. Default `All` (minus the excluded ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selection: Option<NamespaceSelection>,

    /// Seconds the API server waits for the webhook. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 30))]
    pub timeout_seconds: Option<i32>,
}

/// The webhook's `failurePolicy`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Refuse the object when the webhook is unreachable (images would not be pullable anyway).
    #[default]
    Fail,
    /// Admit the object unchanged when the webhook is unreachable.
    Ignore,
}

/// Which namespaces the webhook rewrites.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NamespaceSelection {
    /// Every namespace except `jackal`, `kube-system`, `kube-node-lease` and opted-out ones.
    #[default]
    All,
    /// Only namespaces labelled `jackal.dev/agent: mutate`.
    OptIn,
}

/// Observed state of the bootstrap.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JackalInitStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// kstatus conditions: `Ready`, `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The architecture in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,

    /// Where workloads pull from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryStatus>,

    /// Each bootstrap step and how far it got, so a restart resumes instead of starting over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub steps: Vec<BootstrapStep>,
}

/// The registry as workloads see it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStatus {
    /// Address container runtimes pull from (`127.0.0.1:31999` for the internal registry).
    pub address: String,
}

/// One bootstrap step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapStep {
    /// Step name.
    pub name: String,
    /// How far the step got.
    pub phase: StepPhase,
    /// What happened last, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `phase` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Progress of a bootstrap step.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StepPhase {
    /// Not started.
    #[default]
    Pending,
    /// Under way.
    Running,
    /// Done; skipped on resume.
    Succeeded,
    /// Failed; retried with backoff.
    Failed,
}
