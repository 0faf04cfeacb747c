//! The rewrite rules, one plain function per kind: given the object under admission and the
//! [`Rules`], return the JSON-patch operations (empty when there is nothing to change), with
//! warnings for what was left alone, or an error naming the field. Only an error that
//! [`HookError::is_misconfiguration`] denies the request; any other leaves the object unchanged,
//! with the error as a warning, so the API server judges the object as its author wrote it. No
//! I/O, no shared state: the webhook never calls the API server on its hot path.

mod argocd;
mod flux;
mod pod;

use jackal_core::transform::{GitServer, ReferenceError};
use jackal_crds::names;
use jackal_crds::state::{JackalState, Password};
use json_patch::PatchOperation;
use kube::core::admission::Operation;
use kube::core::{DynamicObject, GroupVersionKind};

/// What objects are rewritten to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The registry address workloads pull from (`127.0.0.1:31999`).
    pub registry: String,
    /// Read-only registry credentials (for Argo CD repository Secrets of OCI sources).
    pub registry_username: String,
    /// Password of [`Self::registry_username`].
    pub registry_password: Password,
    /// The pull Secret added to pods and Flux sources.
    pub pull_secret: String,
    /// The git server, when one is configured.
    pub git: Option<GitRules>,
}

/// Git rewriting settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitRules {
    /// Where repositories are mirrored.
    pub server: GitServer,
    /// Read-only account for clones.
    pub username: String,
    /// Password of [`Self::username`].
    pub password: Password,
    /// The credentials Secret added to Flux `GitRepository` objects.
    pub secret: String,
}

impl Rules {
    /// The rules for a cluster's state.
    pub fn from_state(state: &JackalState) -> Self {
        Self {
            registry: state.registry.address.clone(),
            registry_username: state.registry.pull_username.clone(),
            registry_password: state.registry.pull_password.clone(),
            pull_secret: names::REGISTRY_PULL_SECRET.to_owned(),
            git: state.git.as_ref().map(|git| GitRules {
                server: GitServer {
                    url: git.url.clone(),
                    user: git.push_username.clone(),
                },
                username: git.pull_username.clone(),
                password: git.pull_password.clone(),
                secret: names::GIT_PULL_SECRET.to_owned(),
            }),
        }
    }
}

/// What a hook decided: the patch, and warnings for the client about what it left alone.
#[derive(Debug, Default)]
pub struct Mutation {
    /// JSON-patch operations (empty when nothing changes).
    pub operations: Vec<PatchOperation>,
    /// Warnings for the requesting client.
    pub warnings: Vec<String>,
}

impl From<Vec<PatchOperation>> for Mutation {
    fn from(operations: Vec<PatchOperation>) -> Self {
        Self {
            operations,
            warnings: Vec::new(),
        }
    }
}

/// Why an object cannot be rewritten (a warning, or a denial for a misconfiguration).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// No rule exists for this kind: the registration sent something the webhook does not handle.
    #[error("the jackal webhook has no rewrite rule for {0}")]
    UnsupportedKind(String),
    /// A container's image cannot be parsed.
    #[error("container {container:?}: {source}")]
    Image {
        /// The container's name.
        container: String,
        /// What is wrong with its image.
        source: ReferenceError,
    },
    /// A URL field cannot be parsed.
    #[error("{field}: {source}")]
    Url {
        /// The field path (`spec.url`).
        field: String,
        /// What is wrong with it.
        source: ReferenceError,
    },
    /// A field holds a value of the wrong shape.
    #[error("{field}: {reason}")]
    Malformed {
        /// The field path.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl HookError {
    /// Whether the webhook's own configuration is at fault (the only reason to deny): the
    /// object may be fine, but nothing sound can be made of it.
    pub fn is_misconfiguration(&self) -> bool {
        matches!(
            self,
            Self::Image {
                source: ReferenceError::Registry { .. },
                ..
            } | Self::Url {
                source: ReferenceError::Registry { .. },
                ..
            }
        )
    }
}

/// The object under admission: what it is, what is done to it, and its state before (UPDATE).
pub struct Admission<'a> {
    /// The object's kind.
    pub kind: &'a GroupVersionKind,
    /// CREATE, UPDATE, …
    pub operation: &'a Operation,
    /// The object as it will be stored.
    pub object: &'a DynamicObject,
    /// The stored object an UPDATE replaces.
    pub old_object: Option<&'a DynamicObject>,
}

/// Rewrites the object under `admission`.
pub fn mutate(admission: &Admission<'_>, rules: &Rules) -> Result<Mutation, HookError> {
    let (kind, object) = (admission.kind, admission.object);
    match (kind.group.as_str(), kind.kind.as_str()) {
        ("", "Pod") => pod::mutate(object, admission.old_object, admission.operation, rules),
        ("", "Secret") => argocd::repository_secret(object, rules).map(Mutation::from),
        ("source.toolkit.fluxcd.io", "OCIRepository" | "HelmRepository" | "GitRepository") => {
            flux::mutate(&kind.kind, object, rules).map(Mutation::from)
        }
        ("argoproj.io", "Application") => argocd::application(object, rules).map(Mutation::from),
        ("argoproj.io", "ApplicationSet") => argocd::application_set(object, rules).map(Mutation::from),
        _ => Err(HookError::UnsupportedKind(format!(
            "{}/{} {}",
            kind.group, kind.version, kind.kind
        ))),
    }
}

/// Records original values in an annotation holding a JSON object, merged with any earlier
/// record. A field rewritten again (a new image set on UPDATE) overwrites its earlier original:
/// the value just rewritten is the one the internal reference now stands for.
fn record_originals(
    object: &DynamicObject,
    key: &str,
    originals: std::collections::BTreeMap<String, String>,
) -> PatchOperation {
    let annotations = object.metadata.annotations.as_ref();
    let mut merged: std::collections::BTreeMap<String, String> = annotations
        .and_then(|annotations| annotations.get(key))
        .and_then(|recorded| serde_json::from_str(recorded).ok())
        .unwrap_or_default();
    merged.extend(originals);
    let value = serde_json::to_string(&merged).unwrap_or_default();
    super::patch::annotate(&object.metadata, key, value)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The rules the tables use.
    pub fn rules() -> Rules {
        Rules {
            registry: "127.0.0.1:31999".into(),
            registry_username: "jackal-pull".into(),
            registry_password: Password("pull-secret-password".into()),
            pull_secret: "private-registry".into(),
            git: Some(GitRules {
                server: GitServer {
                    url: "http://git.jackal.svc:3000".into(),
                    user: "jackal-git-user".into(),
                },
                username: "jackal-git-read".into(),
                password: Password("git-read-password".into()),
                secret: "private-git-server".into(),
            }),
        }
    }

    /// Runs the hook for `object` and returns the patched object (or the error message).
    pub fn run(
        operation: Operation,
        object: serde_json::Value,
        rules: &Rules,
    ) -> Result<serde_json::Value, String> {
        run_update(operation, object, None, rules).map(|(patched, _)| patched)
    }

    /// Runs the hook for `object` (replacing `old_object`) and returns the patched object and
    /// the warnings (or the error message).
    pub fn run_update(
        operation: Operation,
        object: serde_json::Value,
        old_object: Option<serde_json::Value>,
        rules: &Rules,
    ) -> Result<(serde_json::Value, Vec<String>), String> {
        let dynamic: DynamicObject =
            serde_json::from_value(object.clone()).map_err(|error| error.to_string())?;
        let old_dynamic: Option<DynamicObject> = old_object
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| error.to_string())?;
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap_or_default());
        let admission = Admission {
            kind: &kind,
            operation: &operation,
            object: &dynamic,
            old_object: old_dynamic.as_ref(),
        };
        let mutation = mutate(&admission, rules).map_err(|error| error.to_string())?;
        let mut patched = object;
        crate::webhook::patch::apply(&mut patched, &mutation.operations)
            .map_err(|error| format!("patch does not apply: {error}"))?;
        Ok((patched, mutation.warnings))
    }

    #[test]
    fn patches_apply_to_objects_without_metadata() {
        // `run` applies the produced patch to the input object and fails if it does not apply.
        for (object, annotation) in [
            (
                serde_json::json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "app", "image": "nginx"}]}}),
                "jackal.dev/original-images",
            ),
            (
                serde_json::json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository", "metadata": {}, "spec": {"url": "oci://ghcr.io/x/y"}}),
                "jackal.dev/original-urls",
            ),
        ] {
            let patched = run(Operation::Create, object.clone(), &rules())
                .unwrap_or_else(|error| panic!("{object}: {error}"));
            assert!(
                patched["metadata"]["annotations"][annotation].is_string(),
                "{patched}"
            );
        }
    }

    #[test]
    fn unknown_kinds_are_refused_by_name() {
        let error = run(
            Operation::Create,
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}),
            &rules(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            "the jackal webhook has no rewrite rule for apps/v1 Deployment"
        );
    }
}
