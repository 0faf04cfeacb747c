//! The MutatingWebhookConfiguration, built so that it cannot brick the cluster: the `jackal`,
//! `kube-system` and `kube-node-lease` namespaces and anything labelled `jackal.dev/agent: skip` or
//! `ignore` are excluded by selectors (the registry and operator pods live in `jackal` and carry
//! that label too), side effects are none, the timeout is short, and CEL `matchConditions` skip
//! objects that are already rewritten before the webhook is even called. Pod UPDATEs are sent
//! (`kubectl set image` changes a running pod's images), but only those that change an image.

use std::collections::BTreeMap;

use jackal_crds::init::{FailurePolicy, WebhookSpec};
use jackal_crds::names::{
    AGENT_LABEL, AGENT_OPT_OUT_VALUES, FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
    ORIGINAL_IMAGES_ANNOTATION, WEBHOOK_CONFIGURATION,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};

use crate::selection::{self, requirement, selector};

/// Default seconds the API server waits for the webhook.
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 5;
/// Path every rule is served on.
pub const PATH: &str = "/mutate";

/// How the API server reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Through a Service (in-cluster operator).
    Service {
        /// Namespace of the Service.
        namespace: String,
        /// Its name.
        name: String,
        /// Its port.
        port: i32,
    },
    /// A URL (`https://127.0.0.1:8443/mutate` for an operator outside the cluster).
    Url(String),
}

/// Everything the configuration depends on.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    /// Name of the configuration.
    pub name: String,
    /// Where the webhook is.
    pub endpoint: Endpoint,
    /// PEM CA bundle the API server must trust.
    pub ca_bundle: String,
    /// The registry address (to skip already-rewritten Flux sources cheaply).
    pub registry: String,
    /// `failurePolicy`, `namespaceSelection`, `timeoutSeconds` from the `JackalInit`.
    pub spec: WebhookSpec,
}

impl Registration {
    /// A registration named `jackal` with the defaults of `spec`.
    pub fn new(endpoint: Endpoint, ca_bundle: String, registry: String, spec: WebhookSpec) -> Self {
        Self {
            name: WEBHOOK_CONFIGURATION.to_owned(),
            endpoint,
            ca_bundle,
            registry,
            spec,
        }
    }

    /// The configuration object.
    pub fn configuration(&self) -> MutatingWebhookConfiguration {
        let client_config = WebhookClientConfig {
            ca_bundle: Some(ByteString(self.ca_bundle.clone().into_bytes())),
            service: match &self.endpoint {
                Endpoint::Service {
                    namespace,
                    name,
                    port,
                } => Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(PATH.to_owned()),
                    port: Some(*port),
                }),
                Endpoint::Url(_) => None,
            },
            url: match &self.endpoint {
                Endpoint::Url(url) => Some(url.clone()),
                Endpoint::Service { .. } => None,
            },
        };
        let webhook = |name: &str,
                       rules: Vec<RuleWithOperations>,
                       object: LabelSelector,
                       conditions: Vec<MatchCondition>| MutatingWebhook {
            name: name.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: client_config.clone(),
            failure_policy: Some(
                match self.spec.failure_policy.unwrap_or_default() {
                    FailurePolicy::Fail => "Fail",
                    FailurePolicy::Ignore => "Ignore",
                }
                .to_owned(),
            ),
            match_policy: Some("Equivalent".to_owned()),
            namespace_selector: Some(self.namespace_selector()),
            object_selector: Some(object),
            match_conditions: (!conditions.is_empty()).then_some(conditions),
            reinvocation_policy: Some("Never".to_owned()),
            rules: Some(rules),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(self.spec.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS)),
        };
        let opted_out = || selector(vec![requirement(AGENT_LABEL, "NotIn", &AGENT_OPT_OUT_VALUES)]);
        let repository_secrets = selector(vec![
            requirement(
                "argocd.argoproj.io/secret-type",
                "In",
                &["repository", "repo-creds"],
            ),
            requirement(AGENT_LABEL, "NotIn", &AGENT_OPT_OUT_VALUES),
        ]);
        let registry_prefix = format!("oci://{}/", self.registry);
        MutatingWebhookConfiguration {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.to_owned(),
                    MANAGED_BY_VALUE.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            webhooks: Some(vec![
                webhook(
                    "pods.jackal.dev",
                    vec![
                        rule(&[""], &["v1"], &["pods"], &["CREATE", "UPDATE"]),
                        rule(&[""], &["v1"], &["pods/ephemeralcontainers"], &["UPDATE"]),
                    ],
                    opted_out(),
                    vec![
                        condition(
                            "not-yet-rewritten",
                            &format!(
                                "request.operation != 'CREATE' || !has(object.metadata.annotations) || !('{ORIGINAL_IMAGES_ANNOTATION}' in object.metadata.annotations)"
                            ),
                        ),
                        condition("image-changed", &image_changed()),
                    ],
                ),
                webhook(
                    "flux.jackal.dev",
                    vec![rule(
                        &["source.toolkit.fluxcd.io"],
                        &["v1", "v1beta2"],
                        &["ocirepositories", "helmrepositories", "gitrepositories"],
                        &["CREATE", "UPDATE"],
                    )],
                    opted_out(),
                    vec![condition(
                        "not-yet-rewritten",
                        &format!("!has(object.spec.url) || !object.spec.url.startsWith('{registry_prefix}')"),
                    )],
                ),
                webhook(
                    "argocd.jackal.dev",
                    vec![rule(
                        &["argoproj.io"],
                        &["v1alpha1"],
                        &["applications", "applicationsets"],
                        &["CREATE", "UPDATE"],
                    )],
                    opted_out(),
                    Vec::new(),
                ),
                webhook(
                    "argocd-repositories.jackal.dev",
                    vec![rule(&[""], &["v1"], &["secrets"], &["CREATE", "UPDATE"])],
                    repository_secrets,
                    Vec::new(),
                ),
            ]),
        }
    }

    fn namespace_selector(&self) -> LabelSelector {
        selection::namespace_selector(self.spec.namespace_selection.unwrap_or_default())
    }

    /// Creates or updates the configuration (server-side apply).
    pub async fn apply(&self, client: &Client) -> Result<MutatingWebhookConfiguration, kube::Error> {
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .patch(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(self.configuration()),
            )
            .await
    }
}

fn rule(groups: &[&str], versions: &[&str], resources: &[&str], operations: &[&str]) -> RuleWithOperations {
    let owned = |items: &[&str]| Some(items.iter().map(|item| (*item).to_owned()).collect());
    RuleWithOperations {
        api_groups: owned(groups),
        api_versions: owned(versions),
        resources: owned(resources),
        operations: owned(operations),
        scope: Some("Namespaced".to_owned()),
    }
}

/// CEL: true unless the request is an UPDATE that leaves every container, init container and
/// ephemeral container image as it was (most pod updates: labels, status-adjacent fields), so
/// those never reach the webhook.
fn image_changed() -> String {
    let images = |object: &str, field: &str| {
        format!(
            "(has({object}.spec.{field}) ? {object}.spec.{field}.map(c, has(c.image) ? c.image : '') : [])"
        )
    };
    let changes: Vec<String> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .map(|field| format!("{} != {}", images("object", field), images("oldObject", field)))
        .collect();
    format!("request.operation != 'UPDATE' || {}", changes.join(" || "))
}

fn condition(name: &str, expression: &str) -> MatchCondition {
    MatchCondition {
        name: name.to_owned(),
        expression: expression.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use jackal_crds::init::NamespaceSelection;

    use super::*;

    fn registration(spec: WebhookSpec) -> Registration {
        Registration::new(
            Endpoint::Service {
                namespace: "jackal".into(),
                name: "jackal-webhook".into(),
                port: 443,
            },
            "PEM".into(),
            "127.0.0.1:31999".into(),
            spec,
        )
    }

    #[test]
    fn defaults_fail_closed_with_a_short_timeout_and_exclusions() {
        let configuration = registration(WebhookSpec::default()).configuration();
        let webhooks = configuration.webhooks.unwrap();
        assert_eq!(webhooks.len(), 4);
        for webhook in &webhooks {
            assert_eq!(
                webhook.failure_policy.as_deref(),
                Some("Fail"),
                "{}",
                webhook.name
            );
            assert_eq!(webhook.timeout_seconds, Some(5));
            assert_eq!(webhook.side_effects, "None");
            let service = webhook.client_config.service.as_ref().unwrap();
            assert_eq!(
                (service.name.as_str(), service.path.as_deref()),
                ("jackal-webhook", Some("/mutate"))
            );
            let namespaces = webhook
                .namespace_selector
                .as_ref()
                .unwrap()
                .match_expressions
                .as_ref()
                .unwrap();
            assert_eq!(
                namespaces[0].values.as_deref(),
                Some(
                    &[
                        "jackal".to_owned(),
                        "kube-system".into(),
                        "kube-node-lease".into()
                    ][..]
                )
            );
            assert_eq!(
                (
                    namespaces[1].operator.as_str(),
                    namespaces[1].values.as_ref().unwrap()[0].as_str()
                ),
                ("NotIn", "skip")
            );
            let objects = webhook
                .object_selector
                .as_ref()
                .unwrap()
                .match_expressions
                .as_ref()
                .unwrap();
            assert!(
                objects
                    .iter()
                    .any(|r| r.key == "jackal.dev/agent" && r.operator == "NotIn")
            );
        }
        let pods = &webhooks[0];
        assert!(
            pods.match_conditions.as_ref().unwrap()[0]
                .expression
                .contains("jackal.dev/original-images")
        );
        assert_eq!(
            pods.rules.as_ref().unwrap()[1].resources.as_ref().unwrap()[0],
            "pods/ephemeralcontainers"
        );
    }

    #[test]
    fn pod_updates_are_sent_only_when_an_image_changes() {
        let configuration = registration(WebhookSpec::default()).configuration();
        let pods = &configuration.webhooks.unwrap()[0];
        let rules = pods.rules.as_ref().unwrap();
        assert_eq!(rules[0].resources.as_deref(), Some(&["pods".to_owned()][..]));
        assert_eq!(
            rules[0].operations.as_deref(),
            Some(&["CREATE".to_owned(), "UPDATE".to_owned()][..])
        );
        let conditions = pods.match_conditions.as_ref().unwrap();
        let names: Vec<&str> = conditions.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["not-yet-rewritten", "image-changed"]);
        assert_eq!(
            conditions[1].expression,
            "request.operation != 'UPDATE' || \
             (has(object.spec.containers) ? object.spec.containers.map(c, has(c.image) ? c.image : '') : []) != \
             (has(oldObject.spec.containers) ? oldObject.spec.containers.map(c, has(c.image) ? c.image : '') : []) || \
             (has(object.spec.initContainers) ? object.spec.initContainers.map(c, has(c.image) ? c.image : '') : []) != \
             (has(oldObject.spec.initContainers) ? oldObject.spec.initContainers.map(c, has(c.image) ? c.image : '') : []) || \
             (has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers.map(c, has(c.image) ? c.image : '') : []) != \
             (has(oldObject.spec.ephemeralContainers) ? oldObject.spec.ephemeralContainers.map(c, has(c.image) ? c.image : '') : [])"
        );
    }

    #[test]
    fn the_policy_knobs_are_honoured() {
        let spec = WebhookSpec {
            failure_policy: Some(FailurePolicy::Ignore),
            namespace_selection: Some(NamespaceSelection::OptIn),
            timeout_seconds: Some(2),
        };
        let mut registration = registration(spec);
        registration.endpoint = Endpoint::Url("https://127.0.0.1:8443/mutate".into());
        let webhook = &registration.configuration().webhooks.unwrap()[0];
        assert_eq!(
            (webhook.failure_policy.as_deref(), webhook.timeout_seconds),
            (Some("Ignore"), Some(2))
        );
        assert_eq!(
            webhook.client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/mutate")
        );
        assert!(webhook.client_config.service.is_none());
        let opt_in = &webhook
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap()[1];
        assert_eq!(
            (
                opt_in.operator.as_str(),
                opt_in.values.as_ref().unwrap()[0].as_str()
            ),
            ("In", "mutate")
        );
    }
}
