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

/// Value of [`AGENT_LABEL`] on a namespace that asks for rewriting when the webhook's
/// `namespaceSelection` is `OptIn`.
pub const AGENT_OPT_IN_VALUE: &str = "mutate";

/// Annotation on a rewritten pod: JSON object of container name → original image.
pub const ORIGINAL_IMAGES_ANNOTATION: &str = "jackal.dev/original-images";
/// Annotation on a rewritten Flux or Argo CD object: JSON object of field path → original URL.
pub const ORIGINAL_URLS_ANNOTATION: &str = "jackal.dev/original-urls";

/// The registry pull Secret the operator keeps in every rewritten namespace and the webhook adds
/// to pods (named as in the original tool, so existing manifests keep working).
pub const REGISTRY_PULL_SECRET: &str = "private-registry";
/// The git credentials Secret the operator keeps in every rewritten namespace (for Flux).
pub const GIT_PULL_SECRET: &str = "private-git-server";

/// The MutatingWebhookConfiguration the operator registers.
pub const WEBHOOK_CONFIGURATION: &str = "jackal";
/// The Service in front of the operator's webhook port.
pub const WEBHOOK_SERVICE: &str = "jackal-webhook";
/// The Secret holding the webhook's CA and serving certificate.
pub const WEBHOOK_TLS_SECRET: &str = "jackal-webhook-tls";

/// The Secret holding Jackal's cluster state (registry and git endpoints and credentials).
pub const STATE_SECRET: &str = "jackal-state";
/// The key of the state JSON in [`STATE_SECRET`].
pub const STATE_KEY: &str = "state";
