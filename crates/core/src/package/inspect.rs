//! `package inspect`: what a package holds — definition, components, images with digests and
//! sizes, total size — after verifying it. The package is unpacked (safely) into a scratch
//! directory that is removed afterwards.

use std::path::{Path, PathBuf};

use jackal_crds::definition::PackageDefinition;
use serde::Serialize;

use super::IMAGES;
use super::archive::{self, ArchiveError, Limits};
use super::verify::{Verified, VerifyError, VerifyOptions, verify_dir};
use crate::layout::{Layout, LayoutError, REFERENCE_ANNOTATION};

/// A summary of a package.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The package file, or its `oci://` reference.
    pub path: PathBuf,
    /// Size of the package file (in a registry: of its files).
    pub size: u64,
    /// Size of its content unpacked.
    pub content_size: u64,
    /// Whether it carries a signature, and whether that was checked.
    pub signature: SignatureState,
    /// The components, with what each holds.
    pub components: Vec<ComponentSummary>,
    /// Every image, with digest and size.
    pub images: Vec<ImageSummary>,
    /// The full definition.
    pub definition: PackageDefinition,
}

/// Signature status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SignatureState {
    /// Not signed.
    Unsigned,
    /// Signed; no key was given to check it.
    NotChecked,
    /// Signed and verified with the given key.
    Verified,
}

/// One component.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSummary {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Always deployed.
    pub required: bool,
    /// Selected by default.
    pub default: bool,
    /// Chart names.
    pub charts: Vec<String>,
    /// Manifest set names.
    pub manifests: Vec<String>,
    /// Number of files.
    pub files: usize,
    /// Image references.
    pub images: Vec<String>,
}

/// One image.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// Full reference.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// Manifest, config and layers, in bytes.
    pub size: u64,
}

/// Why a package cannot be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Unpacking failed (corrupt or hostile archive).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Verification failed.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The image layout is unreadable.
    #[error("the package's image layout is unreadable: {0}")]
    Layout(#[from] LayoutError),
}

/// Unpacks `path` into `scratch` (which must not exist), verifies and summarises it.
pub fn inspect(path: &Path, options: &VerifyOptions, scratch: &Path) -> Result<Inspection, InspectError> {
    let result = (|| {
        archive::extract(path, scratch, &Limits::default())?;
        let (verified, signature) = verify_for_inspection(scratch, options)?;
        let mut files = Vec::new();
        archive::collect(scratch, scratch, &mut files)?;
        let content_size = files
            .iter()
            .filter_map(|file| std::fs::metadata(scratch.join(file)).ok())
            .map(|m| m.len())
            .sum();
        let size = std::fs::metadata(path)
            .map(|metadata| metadata.len())
            .unwrap_or(0);
        summarize(
            path.to_owned(),
            size,
            content_size,
            scratch,
            verified.definition,
            signature,
        )
    })();
    let _ = std::fs::remove_dir_all(scratch);
    result
}

/// Verifies the unpacked package at `root`; the signature only when `options` has a key.
pub fn verify_for_inspection(
    root: &Path,
    options: &VerifyOptions,
) -> Result<(Verified, SignatureState), VerifyError> {
    let signed = root.join(super::SIGNATURE).exists();
    let options = VerifyOptions {
        skip_signature: options.skip_signature || options.public_key.is_none(),
        ..options.clone()
    };
    let verified = verify_dir(root, &options)?;
    let signature = match (signed, verified.signature_checked) {
        (false, _) => SignatureState::Unsigned,
        (true, true) => SignatureState::Verified,
        (true, false) => SignatureState::NotChecked,
    };
    Ok((verified, signature))
}

/// The summary of the package at `path` (a file or an `oci://` reference) unpacked, fully or
/// but for image configs and layers, at `root`.
pub fn summarize(
    path: PathBuf,
    size: u64,
    content_size: u64,
    root: &Path,
    definition: PackageDefinition,
    signature: SignatureState,
) -> Result<Inspection, InspectError> {
    let mut images = Vec::new();
    if root.join(IMAGES).join("index.json").exists() {
        let layout = Layout::new(root.join(IMAGES));
        for descriptor in layout.index()? {
            let size = layout.reachable(&descriptor)?.iter().map(|blob| blob.size).sum();
            let reference = descriptor
                .annotations
                .get(REFERENCE_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            images.push(ImageSummary {
                reference,
                digest: descriptor.digest,
                size,
            });
        }
    }
    let components = definition
        .components
        .iter()
        .map(|component| ComponentSummary {
            name: component.name.clone(),
            description: component.description.clone(),
            required: component.is_required(),
            default: component.default,
            charts: component.charts.iter().map(|chart| chart.name.clone()).collect(),
            manifests: component.manifests.iter().map(|set| set.name.clone()).collect(),
            files: component.files.len(),
            images: component
                .images
                .iter()
                .chain(component.image_archives.iter().flat_map(|a| &a.images))
                .cloned()
                .collect(),
        })
        .collect();
    Ok(Inspection {
        path,
        size,
        content_size,
        signature,
        components,
        images,
        definition,
    })
}
