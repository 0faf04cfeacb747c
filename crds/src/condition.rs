//! The kstatus condition vocabulary Jackal reports: the condition types (`Ready`, `Reconciling`,
//! `Stalled`) and the reasons, shared by the operator that writes them and the plugin and tests
//! that read them.
//!
//! Conditions themselves use the upstream `metav1.Condition` type so that kstatus, Flux and
//! Argo CD health checks understand them without custom code.

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// The condition types of every Jackal resource, following kstatus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// The resource is in its desired state (normal-true).
    Ready,
    /// The operator is working towards the desired state (abnormal-true).
    Reconciling,
    /// The operator cannot make progress until something changes (abnormal-true).
    Stalled,
}

impl ConditionType {
    /// The string written into `status.conditions[].type`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Reconciling => "Reconciling",
            Self::Stalled => "Stalled",
        }
    }
}

/// Machine-readable reasons written into conditions and used as Kubernetes Event reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Everything the spec asks for is in place.
    Succeeded,
    /// Work is under way.
    Progressing,
    /// The spec is invalid and will not be retried until it changes.
    InvalidSpec,
    /// A transient failure; the operator retries with backoff.
    RetryingAfterError,
    /// The resource is suspended by `spec.suspend`.
    Suspended,
}

impl Reason {
    /// The CamelCase string written into `status.conditions[].reason`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Progressing => "Progressing",
            Self::InvalidSpec => "InvalidSpec",
            Self::RetryingAfterError => "RetryingAfterError",
            Self::Suspended => "Suspended",
        }
    }
}
