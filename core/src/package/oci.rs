//! Packages in OCI registries: `publish` pushes a package as an OCI artifact — one layer per file
//! (`application/vnd.jackal.layer.v1.blob`, titled with its path), every image blob its own layer
//! so registries deduplicate them and the operator can mount them — and `pull` writes the same
//! package file back (the archive is deterministic, so it is bit-for-bit the original), or only
//! what some components need; `inspect_remote` reads only the metadata and image manifests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jackal_crds::definition::PackageDefinition;
use serde::{Deserialize, Serialize};

use super::archive::ArchiveError;
use super::inspect::InspectError;
use super::verify::VerifyError;
use crate::transform::ImageReference;

/// Media type of every layer of a package artifact.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.jackal.layer.v1.blob";
/// Media type of a package artifact's config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.jackal.config.v1+json";
/// Artifact type of a package.
pub const ARTIFACT_TYPE: &str = "application/vnd.jackal.package.v1";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
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
    #[error("{0:?} is not an oci:// reference: {1}")]
    Reference(String, String),
    #[error("the package has no version: set metadata.version to publish it")]
    NoVersion,
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error("{what}: {message}")]
    Registry { what: String, message: String },
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
}

fn registry_error(what: impl Into<String>, error: impl ToString) -> OciError {
    OciError::Registry {
        what: what.into(),
        message: without_queries(&error.to_string()),
    }
}

/// `text` with the query of every URL in it removed: upload URLs carry session state, and
/// redirects to storage carry signed tokens, neither of which belongs in an error or a log.
fn without_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let next_url = |text: &str| {
        [text.find("http://"), text.find("https://")]
            .into_iter()
            .flatten()
            .min()
    };
    while let Some(start) = next_url(rest) {
        let (before, url_onwards) = rest.split_at(start);
        out.push_str(before);
        let end = url_onwards
            .find(|c: char| c.is_whitespace() || c == ',' || c == '"')
            .unwrap_or(url_onwards.len());
        let (url, after) = url_onwards.split_at(end);
        out.push_str(url.split_once('?').map_or(url, |(path, _)| path));
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `oci://host/namespace` → (`host`, `host/namespace`).
fn parse_target(target: &str) -> Result<(String, String), OciError> {
    let rest = target
        .strip_prefix("oci://")
        .ok_or_else(|| OciError::Reference(target.into(), "it must start with oci://".into()))?;
    let rest = rest.trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or_default().to_owned();
    ImageReference::parse(&format!("{rest}/probe:1"))
        .map_err(|error| OciError::Reference(target.into(), error.to_string()))?;
    Ok((host, rest.to_owned()))
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

async fn retry<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, OciError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, OciError>>,
{
    let mut last = None;
    for number in 0..ATTEMPTS {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                tracing::warn!(what, attempt = number + 1, %error, "retrying");
                last = Some(error);
                tokio::time::sleep(Duration::from_millis(500 << number)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| registry_error(what, "failed")))
}

mod publish;
mod pull;

pub use publish::{Published, publish};
pub use pull::{Pulled, inspect_remote, pull};

#[cfg(test)]
mod tests {
    use super::without_queries;

    #[test]
    fn urls_in_errors_lose_their_queries() {
        let message = "server error: url http://127.0.0.1:5000/v2/a/blobs/uploads/1?_state=secret&digest=sha256%3A00, code: 503, then https://s3.example/b?X-Amz-Signature=token \"https://c/d?e\"";
        assert_eq!(
            without_queries(message),
            "server error: url http://127.0.0.1:5000/v2/a/blobs/uploads/1, code: 503, then https://s3.example/b \"https://c/d\""
        );
        assert_eq!(without_queries("no url here"), "no url here");
    }
}
