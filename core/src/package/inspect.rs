//! `package inspect`: what a package holds — definition, components, images with digests and
//! sizes, total size — after verifying it, in one streaming pass over the file (nothing is
//! unpacked); `summarize` does the same for a package unpacked on disk (a remote inspection).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jackal_crds::definition::PackageDefinition;
use serde::Serialize;

use super::IMAGES;
use super::archive::ArchiveError;
use super::verify::{Verified, VerifiedFile, VerifyError, VerifyOptions, verify_dir, verify_file};
use crate::layout::{Descriptor, Layout, LayoutError, REFERENCE_ANNOTATION, parse_index, reachable_in};
use crate::oci::Digest;
use crate::registry::{Categorize, ErrorCategory};

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
    pub digest: Digest,
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

impl Categorize for InspectError {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Archive(error) => error.category(),
            Self::Verify(error) => error.category(),
            Self::Layout(_) => ErrorCategory::Integrity,
        }
    }
}

/// Verifies the package file at `path` and summarises it, in one streaming pass: nothing is
/// unpacked; only the image layout's `index.json`, manifests and configs are kept in memory.
pub fn inspect(path: &Path, options: &VerifyOptions) -> Result<Inspection, InspectError> {
    let options = VerifyOptions {
        skip_signature: options.skip_signature || options.public_key.is_none(),
        ..options.clone()
    };
    let index_path = format!("{IMAGES}/index.json");
    let blobs = format!("{IMAGES}/blobs/sha256/");
    let VerifiedFile {
        verified,
        sizes,
        mut kept,
    } = verify_file(path, &options, |name, first| {
        name == index_path || (name.starts_with(&blobs) && first.first() == Some(&b'{'))
    })?;
    let signature = signature_state(sizes.contains_key(super::SIGNATURE), verified.signature_checked);
    let mut images = Vec::new();
    if let Some(index) = kept.remove(&index_path) {
        let index = parse_index(&index, Path::new(&index_path))?;
        // The rest of what was kept are the layout's JSON blobs, moved into a map by digest.
        let documents: BTreeMap<Digest, Vec<u8>> = kept
            .into_iter()
            .filter_map(|(name, bytes)| Some((Digest::from_hex(name.strip_prefix(&blobs)?).ok()?, bytes)))
            .collect();
        for descriptor in index {
            let blobs = reachable_in(&documents, &descriptor, Path::new(IMAGES))?;
            images.push(image_summary(descriptor, &blobs));
        }
    }
    let size = std::fs::metadata(path)
        .map(|metadata| metadata.len())
        .unwrap_or(0);
    let content_size = sizes.values().sum();
    Ok(assemble(
        path.to_owned(),
        size,
        content_size,
        images,
        verified.definition,
        signature,
    ))
}

fn signature_state(signed: bool, checked: bool) -> SignatureState {
    match (signed, checked) {
        (false, _) => SignatureState::Unsigned,
        (true, true) => SignatureState::Verified,
        (true, false) => SignatureState::NotChecked,
    }
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
    let signature = signature_state(signed, verified.signature_checked);
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
            let blobs = layout.reachable(&descriptor)?;
            images.push(image_summary(descriptor, &blobs));
        }
    }
    Ok(assemble(path, size, content_size, images, definition, signature))
}

/// An image's summary: its reference, its top digest, and the size of all it reaches.
fn image_summary(descriptor: Descriptor, blobs: &[Descriptor]) -> ImageSummary {
    ImageSummary {
        reference: descriptor
            .annotations
            .get(REFERENCE_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        size: blobs.iter().map(|blob| blob.size).sum(),
        digest: descriptor.digest,
    }
}

fn assemble(
    path: PathBuf,
    size: u64,
    content_size: u64,
    images: Vec<ImageSummary>,
    definition: PackageDefinition,
    signature: SignatureState,
) -> Inspection {
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
    Inspection {
        path,
        size,
        content_size,
        signature,
        components,
        images,
        definition,
    }
}
