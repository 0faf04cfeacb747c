//! Well-known names: the namespace, labels, annotations, finalizers and defaults that the operator,
//! the webhook, the plugin and the tests must spell the same way. Nothing here is configuration;
//! configurable values live in the custom resources.

/// Namespace holding the registry, the operator, the state Secret and the bootstrap objects.
pub const NAMESPACE: &str = "jackal";

/// The only name a `JackalInit` may have: there is one bootstrap per cluster.
pub const INIT_NAME: &str = "jackal";

/// Label set on every object Jackal creates, so they can be found and cleaned up.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "jackal";

/// Label on a namespace or object that opts it out of admission rewriting (`skip` or `ignore`).
pub const AGENT_LABEL: &str = "jackal.dev/agent";
/// Values of [`AGENT_LABEL`] that exclude an object or a namespace from rewriting.
pub const AGENT_OPT_OUT_VALUES: [&str; 2] = ["skip", "ignore"];

/// Finalizer the operator puts on a `JackalPackage` so deletion uninstalls its components.
pub const PACKAGE_FINALIZER: &str = "jackal.dev/cleanup";

/// Field manager the operator uses for every server-side apply.
pub const FIELD_MANAGER: &str = "jackal-operator";

/// Default NodePort of the in-cluster registry: reachable as `127.0.0.1:31999` on every node.
pub const DEFAULT_REGISTRY_NODE_PORT: i32 = 31999;
/// Lowest port of the Kubernetes default NodePort range.
pub const NODE_PORT_MIN: i32 = 30000;
/// Highest port of the Kubernetes default NodePort range.
pub const NODE_PORT_MAX: i32 = 32767;
