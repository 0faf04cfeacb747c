//! The objects that run the operator inside the cluster once the registry holds its image: its
//! ServiceAccount and least-privilege RBAC (the one definition, `config/rbac`, embedded here and
//! put into the namespace bootstrap runs in), its Deployment and the webhook's Service. Pure: the
//! handover step applies them, the tests read them.

use std::collections::BTreeMap;

use jackal_crds::names::{
    AGENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, REGISTRY_PULL_SECRET, WEBHOOK_SERVICE,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::{Value, json};

use super::objects::{ObjectError, typed};

/// Name of the operator's Deployment, ServiceAccount and RBAC objects, and its `app` label.
pub const OPERATOR: &str = "jackal-operator";
/// The port the webhook listens on in the operator's pod (the Service exposes it as 443).
pub const WEBHOOK_PORT: i32 = 8443;
/// The port of the admin endpoints (`/healthz`, `/readyz`, `/metrics`).
pub const ADMIN_PORT: i32 = 8080;
/// Where the operator keeps what it caches (a writable emptyDir; the root is read-only).
pub const CACHE_DIRECTORY: &str = "/var/cache/jackal";

/// `config/rbac`, the one definition of what the operator may do.
const RBAC_FILES: [(&str, &str); 2] = [
    (
        "config/rbac/role.yaml",
        include_str!("../../../config/rbac/role.yaml"),
    ),
    (
        "config/rbac/bindings.yaml",
        include_str!("../../../config/rbac/bindings.yaml"),
    ),
];

/// The operator's identity and permissions, placed in one namespace.
#[derive(Clone, Debug, Default)]
pub struct Rbac {
    /// The operator's ServiceAccount.
    pub service_accounts: Vec<ServiceAccount>,
    /// What it may do cluster-wide.
    pub cluster_roles: Vec<ClusterRole>,
    /// Bound to its ServiceAccount.
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// What it may do in its namespace.
    pub roles: Vec<Role>,
    /// Bound to its ServiceAccount.
    pub role_bindings: Vec<RoleBinding>,
}

/// `config/rbac` with every namespace (of the namespaced objects and of the bound
/// ServiceAccounts) set to `namespace`.
pub fn rbac(namespace: &str) -> Result<Rbac, ObjectError> {
    let mut rbac = Rbac::default();
    for (file, text) in RBAC_FILES {
        for document in text.split("\n---\n") {
            let mut value: Value = serde_saphyr::from_str(document)
                .map_err(|error| ObjectError::new("RBAC document", file, error.to_string()))?;
            if value.is_null() {
                continue;
            }
            let kind = value["kind"].as_str().unwrap_or_default().to_owned();
            let name = value["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            if matches!(kind.as_str(), "ServiceAccount" | "Role" | "RoleBinding") {
                value["metadata"]["namespace"] = json!(namespace);
            }
            if let Some(subjects) = value["subjects"].as_array_mut() {
                for subject in subjects
                    .iter_mut()
                    .filter(|subject| subject["kind"] == "ServiceAccount")
                {
                    subject["namespace"] = json!(namespace);
                }
            }
            match kind.as_str() {
                "ServiceAccount" => rbac.service_accounts.push(typed("ServiceAccount", &name, value)?),
                "ClusterRole" => rbac.cluster_roles.push(typed("ClusterRole", &name, value)?),
                "ClusterRoleBinding" => {
                    rbac.cluster_role_bindings
                        .push(typed("ClusterRoleBinding", &name, value)?)
                }
                "Role" => rbac.roles.push(typed("Role", &name, value)?),
                "RoleBinding" => rbac.role_bindings.push(typed("RoleBinding", &name, value)?),
                other => {
                    return Err(ObjectError::new(
                        "RBAC document",
                        file,
                        format!("unexpected kind {other:?} ({name})"),
                    ));
                }
            }
        }
    }
    Ok(rbac)
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
        ("app".to_owned(), OPERATOR.to_owned()),
    ])
}

/// The operator's Deployment: `image` (in the registry) pulled with the registry's pull Secret,
/// run as its ServiceAccount, told its namespace, restricted (non-root,
/// read-only root, no capabilities), ready once its webhook has a serving certificate.
pub fn operator_deployment(namespace: &str, image: &str) -> Result<Deployment, ObjectError> {
    typed(
        "Deployment",
        OPERATOR,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": OPERATOR, "namespace": namespace, "labels": labels()},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": OPERATOR}},
                "template": {
                    // Its own webhook never judges it: a restarting operator must not wait for itself.
                    "metadata": {"labels": {"app": OPERATOR, AGENT_LABEL: "ignore"}},
                    "spec": {
                        "serviceAccountName": OPERATOR,
                        "enableServiceLinks": false,
                        "imagePullSecrets": [{"name": REGISTRY_PULL_SECRET}],
                        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "operator",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["run"],
                            "env": [
                                {"name": "JACKAL_NAMESPACE", "value": namespace},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                            ],
                            "ports": [{"name": "webhook", "containerPort": WEBHOOK_PORT},
                                      {"name": "admin", "containerPort": ADMIN_PORT}],
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": ADMIN_PORT}, "periodSeconds": 2},
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": ADMIN_PORT}, "periodSeconds": 10,
                                              "failureThreshold": 6},
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                                "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "cache", "mountPath": CACHE_DIRECTORY}],
                        }],
                        "volumes": [{"name": "cache", "emptyDir": {}}],
                    },
                },
            },
        }),
    )
}

/// The Service the API server calls the webhook through (`jackal-webhook:443`).
pub fn webhook_service(namespace: &str) -> Result<Service, ObjectError> {
    typed(
        "Service",
        WEBHOOK_SERVICE,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": WEBHOOK_SERVICE, "namespace": namespace, "labels": labels()},
            "spec": {"selector": {"app": OPERATOR},
                     "ports": [{"name": "webhook", "port": 443, "targetPort": WEBHOOK_PORT}]},
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_is_config_rbac_placed_in_the_namespace() {
        let rbac = rbac("elsewhere").unwrap();
        assert_eq!(rbac.service_accounts.len(), 1);
        assert_eq!(
            rbac.service_accounts[0].metadata.namespace.as_deref(),
            Some("elsewhere")
        );
        assert_eq!(rbac.cluster_roles[0].metadata.name.as_deref(), Some(OPERATOR));
        assert_eq!(rbac.roles[0].metadata.namespace.as_deref(), Some("elsewhere"));
        for subjects in rbac
            .cluster_role_bindings
            .iter()
            .map(|binding| &binding.subjects)
            .chain(rbac.role_bindings.iter().map(|binding| &binding.subjects))
        {
            let subject = &subjects.as_ref().unwrap()[0];
            assert_eq!(subject.name, OPERATOR);
            assert_eq!(subject.namespace.as_deref(), Some("elsewhere"));
        }
    }

    #[test]
    fn the_operator_runs_restricted_from_the_registry_as_its_account() {
        let deployment = operator_deployment(
            "jackal",
            "127.0.0.1:31999/docker.io/jackaldev/jackal-operator:0.1.0",
        )
        .unwrap();
        let pod = deployment.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some(OPERATOR));
        assert_eq!(pod.image_pull_secrets.unwrap()[0].name, REGISTRY_PULL_SECRET);
        let container = &pod.containers[0];
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        let env = container.env.as_ref().unwrap();
        let value = |name: &str| {
            env.iter()
                .find(|var| var.name == name)
                .and_then(|var| var.value.clone())
        };
        assert_eq!(value("JACKAL_NAMESPACE").as_deref(), Some("jackal"));
    }

    #[test]
    fn the_webhook_service_sends_443_to_the_webhook_port() {
        let service = webhook_service("jackal").unwrap();
        let port = &service.spec.unwrap().ports.unwrap()[0];
        assert_eq!(port.port, 443);
        assert_eq!(
            port.target_port,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                WEBHOOK_PORT
            ))
        );
    }
}
