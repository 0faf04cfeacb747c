//! Copying an image from one registry to another, as it is: the same manifest bytes (so the same
//! digests), every platform of an index, blobs streamed from source to target (never held in
//! memory) and skipped when the target already has them. Bootstrap moves the seed images into the
//! permanent registry with it, and the init package's other images from its OCI layout
//! ([`push_from_layout`]); a package's images are made images of a registry from the package's
//! OCI artifact ([`copy_from_blobs`]: blobs mounted when it is the same registry). No external
//! tool is involved.

use futures::{StreamExt, TryStreamExt};
use oci_client::Reference;
use oci_client::client::Client;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;

use super::Access;
use super::error::{Categorize, ErrorCategory, RegistryError};
use crate::layout::{Layout, LayoutError};
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
    /// Blobs mounted from another repository of the same registry (no bytes sent).
    pub mounted: usize,
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
    /// The layout does not hold the image.
    #[error("{what}: {source}")]
    Layout {
        /// The image.
        what: String,
        /// Why.
        source: LayoutError,
    },
    /// A blob or manifest file of the layout could not be read.
    #[error("{what}: failed to read {path}: {source}")]
    Read {
        /// The image.
        what: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Pushes the image `reference` of `layout` to `target`: every platform of an index, blobs
/// streamed from their files and skipped when present, the manifests' exact bytes.
pub async fn push_from_layout(
    layout: &Layout,
    reference: &str,
    target: &Reference,
    access: &Access,
) -> Result<Copied, CopyError> {
    let what = reference.to_owned();
    let layout_error = |source| CopyError::Layout {
        what: what.clone(),
        source,
    };
    let top = layout.find(reference).map_err(layout_error)?;
    let client = access.client(&[target.resolve_registry().to_owned()]);
    log_in(&client, target, &access.auth(target.resolve_registry()), &what).await?;
    let read = |digest: &Digest| {
        let path = layout.blob_path(digest);
        std::fs::read(&path).map_err(|source| CopyError::Read {
            what: what.clone(),
            path,
            source,
        })
    };
    let mut copied = Copied::default();
    let bytes = bytes::Bytes::from(read(&top.digest)?);
    let document = parse(&bytes, &top.digest, &what)?;
    if document.is_index() {
        for child in &document.manifests {
            let child_bytes = match read(&child.digest) {
                Ok(bytes) => bytes::Bytes::from(bytes),
                // A package keeps the platforms it was made for; the index lists them all.
                Err(CopyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    continue;
                }
                Err(error) => return Err(error),
            };
            let child_document = parse(&child_bytes, &child.digest, &what)?;
            let child_target = target.clone_with_digest(child.digest.to_string());
            send_blobs(
                &client,
                Origin::Layout(layout),
                &child_target,
                &child_document,
                &what,
                &mut copied,
            )
            .await?;
            put_manifest(&client, &child_target, child_bytes, &child_document, &what).await?;
        }
    } else {
        send_blobs(
            &client,
            Origin::Layout(layout),
            target,
            &document,
            &what,
            &mut copied,
        )
        .await?;
    }
    put_manifest(&client, target, bytes, &document, &what).await?;
    copied.digest = Some(top.digest);
    Ok(copied)
}

impl Categorize for CopyError {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Registry { source, .. } => source.category,
            Self::Corrupt { .. } => ErrorCategory::Integrity,
            Self::Layout { .. } => ErrorCategory::Invalid,
            Self::Read { .. } => ErrorCategory::Io,
        }
    }
}

/// Logs in to `target`'s registry for pushing before anything is sent. A failed login is an
/// error here: left to the client, a login that fails (a registry pod that stops while answering)
/// is remembered as none, and every request after it goes out anonymously and is refused.
async fn log_in(
    client: &Client,
    target: &Reference,
    auth: &RegistryAuth,
    what: &str,
) -> Result<(), CopyError> {
    client
        .auth(target, auth, oci_client::RegistryOperation::Push)
        .await
        .map(|_| ())
        .map_err(|error| registry_error("log in to push", what, error))
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
    let what = source.whole();
    log_in(&client, target, &target_auth, &what).await?;
    let mut copied = Copied::default();
    let (bytes, digest) = manifest(&client, source, &source_auth, &what).await?;
    let document = parse(&bytes, &digest, &what)?;
    if document.is_index() {
        for child in &document.manifests {
            let child_source = source.clone_with_digest(child.digest.to_string());
            let child_target = target.clone_with_digest(child.digest.to_string());
            let (child_bytes, child_digest) = manifest(&client, &child_source, &source_auth, &what).await?;
            let child_document = parse(&child_bytes, &child_digest, &what)?;
            send_blobs(
                &client,
                Origin::Registry(&child_source),
                &child_target,
                &child_document,
                &what,
                &mut copied,
            )
            .await?;
            put_manifest(&client, &child_target, child_bytes, &child_document, &what).await?;
        }
    } else {
        send_blobs(
            &client,
            Origin::Registry(source),
            target,
            &document,
            &what,
            &mut copied,
        )
        .await?;
    }
    put_manifest(&client, target, bytes, &document, &what).await?;
    copied.digest = Some(digest);
    Ok(copied)
}

/// Makes `target` the image whose top manifest (or index) is the blob `top` of the repository
/// `source`, where its other manifests and blobs are blobs too: a package artifact, every file of
/// which is a layer. In the same registry every blob is mounted from `source` (no bytes move);
/// otherwise blobs stream from `source`, skipped when the target has them. Platforms an index lists
/// but the repository lacks (a package keeps those it was made for) are left out.
pub async fn copy_from_blobs(
    source: &Reference,
    top: &Digest,
    what: &str,
    target: &Reference,
    access: &Access,
) -> Result<Copied, CopyError> {
    let same_registry = source.resolve_registry() == target.resolve_registry();
    let client = access.client(&[
        source.resolve_registry().to_owned(),
        target.resolve_registry().to_owned(),
    ]);
    let source_auth = access.auth(source.resolve_registry());
    log_in(&client, target, &access.auth(target.resolve_registry()), what).await?;
    // Reading from the source needs its own login (a no-op for the same registry and account).
    client
        .auth(source, &source_auth, oci_client::RegistryOperation::Pull)
        .await
        .map_err(|error| registry_error("log in to read", what, error))?;
    let origin = if same_registry {
        Origin::SameRegistry(source)
    } else {
        Origin::Registry(source)
    };
    let mut copied = Copied::default();
    let bytes = manifest_blob(&client, source, top, what)
        .await?
        .ok_or_else(|| CopyError::Corrupt {
            what: what.to_owned(),
            message: format!("the manifest {top} is not in {}", source.whole()),
        })?;
    let document = parse(&bytes, top, what)?;
    if document.is_index() {
        for child in &document.manifests {
            let Some(child_bytes) = manifest_blob(&client, source, &child.digest, what).await? else {
                continue;
            };
            let child_document = parse(&child_bytes, &child.digest, what)?;
            let child_target = target.clone_with_digest(child.digest.to_string());
            send_blobs(&client, origin, &child_target, &child_document, what, &mut copied).await?;
            put_manifest(&client, &child_target, child_bytes, &child_document, what).await?;
        }
    } else {
        send_blobs(&client, origin, target, &document, what, &mut copied).await?;
    }
    put_manifest(&client, target, bytes, &document, what).await?;
    copied.digest = Some(top.clone());
    Ok(copied)
}

/// A manifest kept as a blob of `source`, checked against its digest; `None` when absent.
async fn manifest_blob(
    client: &Client,
    source: &Reference,
    digest: &Digest,
    what: &str,
) -> Result<Option<bytes::Bytes>, CopyError> {
    let descriptor = OciDescriptor {
        digest: digest.to_string(),
        ..OciDescriptor::default()
    };
    let mut bytes = Vec::new();
    if let Err(error) = client.pull_blob(source, &descriptor, &mut bytes).await {
        let error = registry_error(&format!("read the manifest {digest} of"), what, error);
        return match error {
            CopyError::Registry { source, .. } if source.category == ErrorCategory::NotFound => Ok(None),
            error => Err(error),
        };
    }
    let found = Digest::of(&bytes);
    if &found != digest {
        return Err(CopyError::Corrupt {
            what: what.to_owned(),
            message: format!("the manifest {digest} hashes to {found}"),
        });
    }
    Ok(Some(bytes::Bytes::from(bytes)))
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

/// Where blobs come from.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// Another registry, the image at this reference.
    Registry(&'a Reference),
    /// Another repository of the target's registry: blobs are mounted from it.
    SameRegistry(&'a Reference),
    /// An OCI layout's blob files.
    Layout(&'a Layout),
}

/// Streams every blob of a manifest the target lacks from `origin` (a registry's bytes are
/// checked against their digest by the client as they stream through).
async fn send_blobs(
    client: &Client,
    origin: Origin<'_>,
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
        // Same registry: ask it to link the blob into the target repository; only a registry
        // that refuses (it answers with an upload session instead) gets the bytes.
        if let Origin::SameRegistry(source) = origin
            && client.mount_blob(target, source, digest).await.is_ok()
        {
            copied.mounted += 1;
            continue;
        }
        let action = format!("copy blob {digest} of");
        let stream = match origin {
            Origin::Registry(source) | Origin::SameRegistry(source) => {
                let descriptor = OciDescriptor {
                    media_type: blob.media_type.clone(),
                    digest: digest.to_owned(),
                    size: i64::try_from(blob.size).unwrap_or(i64::MAX),
                    ..OciDescriptor::default()
                };
                client
                    .pull_blob_stream(source, &descriptor)
                    .await
                    .map_err(|error| registry_error(&action, what, error))?
                    .stream
                    .map_err(|error| OciDistributionError::GenericError(Some(error.to_string())))
                    .boxed()
            }
            Origin::Layout(layout) => {
                let path = layout.blob_path(&blob.digest);
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|source| CopyError::Read {
                        what: what.to_owned(),
                        path: path.clone(),
                        source,
                    })?;
                tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
                    .map_err(|error| OciDistributionError::GenericError(Some(error.to_string())))
                    .boxed()
            }
        };
        client
            .push_blob_stream(target, stream, digest, Some(blob.size))
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

fn registry_error(action: &str, what: &str, error: OciDistributionError) -> CopyError {
    CopyError::Registry {
        action: action.to_owned(),
        what: what.to_owned(),
        source: RegistryError::from(error),
    }
}
