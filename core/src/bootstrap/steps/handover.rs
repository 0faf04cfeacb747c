//! The handover step: the operator started from the registry (its RBAC, Deployment and webhook
//! Service), after which the in-cluster `JackalInit` controller owns the bootstrap (ADR 0009).

use jackal_crds::state::JackalState;
use k8s_openapi::ClusterResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Bootstrap, StepError, apply_with};
use crate::bootstrap::operator::{self, OPERATOR};
use crate::transform::image::to_internal;

impl Bootstrap {
    /// Applies a cluster-scoped object.
    async fn apply_cluster<K>(&self, object: &K, name: &str) -> Result<K, StepError>
    where
        K: kube::Resource<Scope = ClusterResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        apply_with(Api::<K>::all(self.client.clone()), object, name, name).await
    }

    /// Runs the operator from the registry's copy of `operator_image`, as its own ServiceAccount
    /// with the RBAC of `config/rbac`, behind the webhook Service, and waits until it is
    /// available (ready: its webhook has a serving certificate).
    pub async fn start_operator(&self, state: &JackalState, operator_image: &str) -> Result<(), StepError> {
        let invalid = |error: crate::bootstrap::objects::ObjectError| StepError::Invalid(error.to_string());
        let rbac = operator::rbac(&self.namespace).map_err(invalid)?;
        let name = |metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            metadata.name.clone().unwrap_or_default()
        };
        for account in &rbac.service_accounts {
            self.apply(account, &name(&account.metadata)).await?;
        }
        for role in &rbac.cluster_roles {
            self.apply_cluster(role, &name(&role.metadata)).await?;
        }
        for binding in &rbac.cluster_role_bindings {
            self.apply_cluster(binding, &name(&binding.metadata)).await?;
        }
        for role in &rbac.roles {
            self.apply(role, &name(&role.metadata)).await?;
        }
        for binding in &rbac.role_bindings {
            self.apply(binding, &name(&binding.metadata)).await?;
        }
        let image = to_internal(operator_image, &state.registry.address)
            .map_err(|error| StepError::Invalid(error.to_string()))?;
        let deployment = operator::operator_deployment(&self.namespace, &image).map_err(invalid)?;
        self.apply::<Deployment>(&deployment, OPERATOR).await?;
        let service = operator::webhook_service(&self.namespace).map_err(invalid)?;
        self.apply(&service, jackal_crds::names::WEBHOOK_SERVICE).await?;
        self.wait_deployment_available(OPERATOR).await
    }
}
