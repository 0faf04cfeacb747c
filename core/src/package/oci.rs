//! Packages in OCI registries: `publish` pushes a package as an OCI artifact — one layer per file
//! (`application/vnd.jackal.layer.v1.blob`, titled with its path), every image blob its own layer
//! so registries deduplicate them and the operator can mount them — and `pull` writes the same
//! package file back (the archive is deterministic, so it is bit-for-bit the original), or only
//! what some components need; `inspect_remote` reads only the metadata and image manifests;
//! `relocate` makes the package's images images of a registry, by blob mounts when the artifact
//! is in that registry.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jackal_crds::definition::PackageDefinition;
use serde::{Deserialize, Serialize};

use super::archive::ArchiveError;
use super::inspect::InspectError;
use super::verify::VerifyError;
use crate::oci::OciUrlError;
use crate::registry::{Categorize, ErrorCategory, RegistryError};

const TITLE: &str = "org.opencontainers.image.title";
/// Blobs transferred at once.
const PARALLEL: usize = 4;
/// Attempts per blob before giving up.
const ATTEMPTS: u32 = 3;

/// Why publishing or pulling failed.
// Variant fields are named in the messages; documenting each again adds nothing.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Url(#[from] OciUrlError),
    #[error("the package has no version: set metadata.version to publish it")]
    NoVersion,
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error("{what}: {source}")]
    Registry { what: String, source: RegistryError },
    #[error("{what}: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{reference} is not a Jackal package (config {config})")]
    NotAPackage { reference: String, config: String },
    #[error("{reference}: layer title {title:?} escapes the package")]
    Title { reference: String, title: String },
    #[error("{reference} has no component {component} (it has {available})")]
    NoComponent {
        reference: String,
        component: String,
        available: String,
    },
    #[error("failed to read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Copy(#[from] crate::registry::copy::CopyError),
}

impl Categorize for OciError {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Registry { source, .. } => source.category,
            Self::Archive(error) => error.category(),
            Self::Verify(error) => error.category(),
            Self::Inspect(error) => error.category(),
            Self::Io { .. } => ErrorCategory::Io,
            Self::Copy(error) => error.category(),
            Self::NoComponent { .. } => ErrorCategory::NotFound,
            Self::Title { .. } | Self::Malformed { .. } => ErrorCategory::Integrity,
            Self::Url(_) | Self::NoVersion | Self::NotAPackage { .. } => ErrorCategory::Invalid,
        }
    }
}

/// A failed registry request about `what`.
fn registry_error(what: impl Into<String>, error: impl Into<RegistryError>) -> OciError {
    OciError::Registry {
        what: what.into(),
        source: error.into(),
    }
}

/// Content from the registry about `what` that is not what it should be.
fn malformed(what: impl Into<String>, reason: impl ToString) -> OciError {
    OciError::Malformed {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// The config of a package artifact.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PackageConfig {
    architecture: String,
    oci_version: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn annotations(definition: &PackageDefinition) -> BTreeMap<String, String> {
    let metadata = &definition.metadata;
    let mut annotations = BTreeMap::from([(TITLE.to_owned(), metadata.name.clone())]);
    for (key, value) in [
        ("org.opencontainers.image.description", &metadata.description),
        ("org.opencontainers.image.version", &metadata.version),
        ("org.opencontainers.image.url", &metadata.url),
        ("org.opencontainers.image.authors", &metadata.authors),
        ("org.opencontainers.image.documentation", &metadata.documentation),
        ("org.opencontainers.image.source", &metadata.source),
        ("org.opencontainers.image.vendor", &metadata.vendor),
    ] {
        if let Some(value) = value {
            annotations.insert(key.to_owned(), value.clone());
        }
    }
    annotations
}

/// [`crate::registry::error::retry`] with this module's number of attempts.
async fn retry<T, F, Fut>(what: &str, attempt: F) -> Result<T, OciError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, OciError>>,
{
    crate::registry::error::retry(what, ATTEMPTS, attempt).await
}

mod publish;
mod pull;
mod relocate;

pub use publish::{Published, publish};
pub use pull::{Pulled, inspect_remote, pull};
pub use relocate::{Relocated, relocate};

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn only_retryable_failures_are_retried() {
        for (category, expected_attempts) in [
            (ErrorCategory::Transient, ATTEMPTS),
            (ErrorCategory::Unauthorized, 1),
            (ErrorCategory::NotFound, 1),
        ] {
            let attempts = AtomicU32::new(0);
            let result: Result<(), OciError> = retry("blob", || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err(registry_error("blob", RegistryError::new(category, "refused")))
            })
            .await;
            assert_eq!(result.unwrap_err().category(), category);
            assert_eq!(attempts.load(Ordering::SeqCst), expected_attempts, "{category}");
        }
    }
}
