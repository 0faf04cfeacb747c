//! Copying an image from one registry to another, as it is: the same manifest bytes (so the same
//! digests), every platform of an index, blobs streamed from source to target (never held in
//! memory) and skipped when the target already has them. Bootstrap moves the seed images into the
//! permanent registry with it; no external tool is involved.

use futures::{StreamExt, TryStreamExt};
use oci_client::Reference;
use oci_client::client::Client;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;

use super::Access;
use super::error::{Categorize, ErrorCategory, RegistryError};
use crate::oci::media_type::IMAGE_MANIFESTS;
use crate::oci::{Digest, Document};

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// Digest of the top manifest (or index), the same at source and target.
    pub digest: Option<Digest>,
    /// Blobs (layers and configs) uploaded.
    pub pushed: usize,
    /// Blobs the target already had.
    pub skipped: usize,
    /// Bytes uploaded.
    pub bytes: u64,
}

/// Why a copy failed, naming the image and the step.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A registry request failed.
    #[error("failed to {action} {what}: {source}")]
    Registry {
        /// What was attempted (`read the manifest of`, `copy blob … of`).
        action: String,
        /// The image.
        what: String,
        /// Why.
        source: RegistryError,
    },
    /// The source served something that does not match its digest or is not a manifest.
    #[error("{what}: {message}")]
    Corrupt {
        /// The image.
        what: String,
        /// What is wrong.
        message: String,
    },
}

impl Categorize for CopyError {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Registry { source, .. } => source.category,
            Self::Corrupt { .. } => ErrorCategory::Integrity,
        }
    }
}

/// Copies `source` to `target` (both `HOST[:PORT]/REPOSITORY:TAG` or `@DIGEST`), using `access`
/// for both registries.
pub async fn copy_image(
    source: &Reference,
    target: &Reference,
    access: &Access,
) -> Result<Copied, CopyError> {
    let client = access.client(&[
        source.resolve_registry().to_owned(),
        target.resolve_registry().to_owned(),
    ]);
    let source_auth = access.auth(source.resolve_registry());
    let target_auth = access.auth(target.resolve_registry());
    client
        .store_auth_if_needed(target.resolve_registry(), &target_auth)
        .await;
    let mut copied = Copied::default();
    let what = source.whole();
    let (bytes, digest) = manifest(&client, source, &source_auth, &what).await?;
    let document = parse(&bytes, &digest, &what)?;
    if document.is_index() {
        for child in &document.manifests {
            let child_source = source.clone_with_digest(child.digest.to_string());
            let child_target = target.clone_with_digest(child.digest.to_string());
            let (child_bytes, child_digest) = manifest(&client, &child_source, &source_auth, &what).await?;
            let child_document = parse(&child_bytes, &child_digest, &what)?;
            copy_blobs(
                &client,
                &child_source,
                &child_target,
                &child_document,
                &what,
                &mut copied,
            )
            .await?;
            put_manifest(&client, &child_target, child_bytes, &child_document, &what).await?;
        }
    } else {
        copy_blobs(&client, source, target, &document, &what, &mut copied).await?;
    }
    put_manifest(&client, target, bytes, &document, &what).await?;
    copied.digest = Some(digest);
    Ok(copied)
}

/// Fetches a manifest's exact bytes and checks them against the digest the registry gave.
async fn manifest(
    client: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
    what: &str,
) -> Result<(bytes::Bytes, Digest), CopyError> {
    let (bytes, claimed) = client
        .pull_manifest_raw(reference, auth, &IMAGE_MANIFESTS)
        .await
        .map_err(|error| registry_error("read the manifest of", what, error))?;
    let digest = Digest::of(&bytes);
    let expected = reference.digest().unwrap_or(claimed.as_str());
    if !expected.is_empty() && expected != digest.as_str() {
        return Err(CopyError::Corrupt {
            what: what.to_owned(),
            message: format!("the manifest hashes to {digest}, not {expected}"),
        });
    }
    Ok((bytes, digest))
}

fn parse(bytes: &[u8], digest: &Digest, what: &str) -> Result<Document, CopyError> {
    Document::parse(bytes).map_err(|error| CopyError::Corrupt {
        what: what.to_owned(),
        message: format!("manifest {digest} is not an image manifest or index: {error}"),
    })
}

/// Streams every blob of a manifest the target lacks.
async fn copy_blobs(
    client: &Client,
    source: &Reference,
    target: &Reference,
    document: &Document,
    what: &str,
    copied: &mut Copied,
) -> Result<(), CopyError> {
    for blob in document.blobs() {
        let digest = blob.digest.as_str();
        let exists = client
            .blob_exists(target, digest)
            .await
            .map_err(|error| registry_error(&format!("look for blob {digest} of"), what, error))?;
        if exists {
            copied.skipped += 1;
            continue;
        }
        let descriptor = OciDescriptor {
            media_type: blob.media_type.clone(),
            digest: digest.to_owned(),
            size: i64::try_from(blob.size).unwrap_or(i64::MAX),
            ..OciDescriptor::default()
        };
        let action = format!("copy blob {digest} of");
        // The client checks the bytes against the digest as they stream through.
        let stream = client
            .pull_blob_stream(source, &descriptor)
            .await
            .map_err(|error| registry_error(&action, what, error))?
            .stream
            .map_err(|error| oci_client::errors::OciDistributionError::GenericError(Some(error.to_string())));
        client
            .push_blob_stream(target, stream.boxed(), digest, Some(blob.size))
            .await
            .map_err(|error| registry_error(&action, what, error))?;
        copied.pushed += 1;
        copied.bytes += blob.size;
    }
    Ok(())
}

async fn put_manifest(
    client: &Client,
    target: &Reference,
    bytes: bytes::Bytes,
    document: &Document,
    what: &str,
) -> Result<(), CopyError> {
    let media_type =
        reqwest::header::HeaderValue::from_str(document.kind()).map_err(|_| CopyError::Corrupt {
            what: what.to_owned(),
            message: format!("media type {:?} is not a valid header", document.kind()),
        })?;
    client
        .push_manifest_raw(target, bytes, media_type)
        .await
        .map_err(|error| registry_error("write the manifest of", what, error))?;
    Ok(())
}

fn registry_error(action: &str, what: &str, error: oci_client::errors::OciDistributionError) -> CopyError {
    CopyError::Registry {
        action: action.to_owned(),
        what: what.to_owned(),
        source: RegistryError::from(error),
    }
}
