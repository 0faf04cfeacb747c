//! Images into the package's shared OCI layout: from registries (with overrides, plain HTTP for
//! loopback, docker credentials), from OCI image layouts and OCI archives, and from `docker save`
//! archives. Multi-platform indexes are reduced to the target platform's manifest, whose bytes
//! (and so digest) are kept exactly; an image pinned by its index digest keeps the index too, as a
//! sparse index holding only that platform. Blobs are streamed to disk, verified, and stored once however
//! many images share them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use futures::stream::{self, TryStreamExt};
use jackal_crds::definition::ImageArchive;
use oci_client::manifest::OciDescriptor;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::layout::{self, Layout, LayoutError, REFERENCE_ANNOTATION};
use crate::oci::media_type::{
    DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, IMAGE_MANIFESTS, OCI_INDEX,
};
use crate::oci::{Descriptor, Digest, Document};
use crate::progress::{CountingWriter, Progress};
use crate::registry::{Access, Categorize, ErrorCategory, RegistryError};
use crate::transform::{ImageReference, ReferenceError};

/// Annotation the original tool used for an image's full reference.
pub const BASE_NAME_ANNOTATION: &str = "org.opencontainers.image.base.name";

/// Layers pulled at once.
const PARALLEL_BLOBS: usize = 4;

/// Where images come from and for which platform.
#[derive(Clone, Debug, Default)]
pub struct ImageOptions {
    /// CPU architecture to select from multi-platform images (`amd64`).
    pub architecture: String,
    /// Pull `SOURCE/...` from `MIRROR/...` instead (`docker.io` → `127.0.0.1:5000`).
    pub registry_overrides: Vec<(String, String)>,
    /// Credentials and plain-HTTP registries.
    pub access: Access,
}

/// Why an image could not be added.
// Variant fields are named in the messages; documenting each again adds nothing.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("image {image}: {source}")]
    Registry { image: String, source: RegistryError },
    #[error("image {image}: the manifest is not valid JSON: {source}")]
    Manifest {
        image: String,
        source: serde_json::Error,
    },
    #[error("image {image}: blob {digest} in {path} is corrupt (it hashes to {actual})")]
    Corrupt {
        image: String,
        digest: Digest,
        path: PathBuf,
        actual: Digest,
    },
    #[error("image {image}: failed to read {path}: {source}")]
    Read {
        image: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("image {image}: no manifest for linux/{architecture} in its index (it has: {available})")]
    Platform {
        image: String,
        architecture: String,
        available: String,
    },
    #[error("image {image}: {source}")]
    Layout { image: String, source: LayoutError },
    #[error("image {image} is not in {archive}")]
    NotInArchive { image: String, archive: PathBuf },
    #[error("{path}: {message}")]
    Archive { path: PathBuf, message: String },
    #[error("failed to write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

impl Categorize for ImageError {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Registry { source, .. } => source.category,
            Self::Read { .. } | Self::Write { .. } => ErrorCategory::Io,
            Self::Corrupt { .. } => ErrorCategory::Integrity,
            Self::NotInArchive { .. } => ErrorCategory::NotFound,
            Self::Reference(_)
            | Self::Manifest { .. }
            | Self::Platform { .. }
            | Self::Layout { .. }
            | Self::Archive { .. } => ErrorCategory::Invalid,
        }
    }
}

/// An image added to the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedImage {
    /// Its full reference.
    pub reference: String,
    /// Digest of the manifest stored for it.
    pub digest: Digest,
    /// Bytes of manifest, config and layers.
    pub size: u64,
}

/// Collects images into one OCI layout.
pub struct ImageCollector {
    root: PathBuf,
    options: ImageOptions,
    entries: BTreeMap<String, Descriptor>,
}

impl ImageCollector {
    /// A collector writing into the layout at `root`.
    pub fn new(root: &Path, options: ImageOptions) -> Result<Self, ImageError> {
        let write_error = |source| ImageError::Write {
            path: root.to_owned(),
            source,
        };
        std::fs::create_dir_all(root.join("blobs/sha256")).map_err(write_error)?;
        std::fs::write(root.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(write_error)?;
        Ok(Self {
            root: root.to_owned(),
            options,
            entries: BTreeMap::new(),
        })
    }

    /// Writes `index.json` listing every image added, under its full reference.
    pub fn finish(self) -> Result<(), ImageError> {
        let manifests: Vec<&Descriptor> = self.entries.values().collect();
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        let path = self.root.join("index.json");
        let bytes = serde_json::to_vec(&index).map_err(|error| ImageError::Write {
            path: path.clone(),
            source: error.into(),
        })?;
        std::fs::write(&path, bytes).map_err(|source| ImageError::Write { path, source })
    }

    /// The registry `image` is really pulled from, after overrides.
    fn source_of(&self, image: &ImageReference) -> String {
        let full = image.to_string();
        for (source, mirror) in &self.options.registry_overrides {
            if let Some(rest) = full.strip_prefix(&format!("{}/", source.trim_end_matches('/'))) {
                return format!("{}/{rest}", mirror.trim_end_matches('/'));
            }
        }
        full
    }

    /// Pulls every image in `images` from its registry.
    pub async fn pull_all(
        &mut self,
        images: &[String],
        progress: &dyn Progress,
    ) -> Result<Vec<AddedImage>, ImageError> {
        let parsed: Vec<ImageReference> = images
            .iter()
            .map(|image| ImageReference::parse(image))
            .collect::<Result<_, _>>()?;
        let sources: Vec<String> = parsed.iter().map(|image| self.source_of(image)).collect();
        let hosts: Vec<String> = sources
            .iter()
            .filter_map(|source| ImageReference::parse(source).ok().map(|r| r.registry))
            .collect();
        let client = self.options.access.client(&hosts);
        let mut added = Vec::new();
        for (image, source) in parsed.iter().zip(&sources) {
            progress.step(&format!(
                "pulling {image}{}",
                if *source == image.to_string() {
                    String::new()
                } else {
                    format!(" from {source}")
                }
            ));
            added.push(self.pull(&client, image, source, progress).await?);
        }
        Ok(added)
    }

    async fn pull(
        &mut self,
        client: &oci_client::Client,
        image: &ImageReference,
        source: &str,
        progress: &dyn Progress,
    ) -> Result<AddedImage, ImageError> {
        let name = image.to_string();
        let failed = |error: oci_client::errors::OciDistributionError| ImageError::Registry {
            image: name.clone(),
            source: error.into(),
        };
        let source_image = ImageReference::parse(source)?;
        let reference = crate::oci::url::client_reference(
            &source_image.registry,
            &source_image.repository,
            source_image.tag.as_deref(),
            source_image.digest.as_deref(),
        );
        let auth = self.options.access.auth(&source_image.registry);
        let (bytes, _) = client
            .pull_manifest_raw(&reference, &auth, &IMAGE_MANIFESTS)
            .await
            .map_err(failed)?;
        let document = parse_document(&name, &bytes)?;
        let mut top = Descriptor::of(document.kind(), &bytes);
        let mut manifest = (bytes, document, top.digest.clone());
        if manifest.1.is_index() {
            let child = self.platform_child(&name, &manifest.1)?;
            let child_reference = reference.clone_with_digest(child.digest.to_string());
            let (child_bytes, _) = client
                .pull_manifest_raw(&child_reference, &auth, &IMAGE_MANIFESTS)
                .await
                .map_err(failed)?;
            let child_descriptor = Descriptor::of(&child.media_type, &child_bytes);
            if image.digest.is_some() {
                // Pinned to the index: keep it so the pinned digest still resolves.
                self.store_blob(&manifest.0, &manifest.2)?;
            } else {
                top = child_descriptor.clone();
            }
            let child_document = parse_document(&name, &child_bytes)?;
            manifest = (child_bytes, child_document, child_descriptor.digest);
        }
        let blobs: Vec<Descriptor> = manifest.1.blobs().cloned().collect();
        let size = manifest.0.len() as u64 + blobs.iter().map(|blob| blob.size).sum::<u64>();
        // A manifest may list one blob twice (two identical layers): fetch it once, or two
        // downloads would share its `.partial` file.
        let mut unique = BTreeSet::new();
        let missing: Vec<Descriptor> = blobs
            .into_iter()
            .filter(|blob| unique.insert(blob.digest.clone()))
            .filter(|blob| !self.blob_path(&blob.digest).exists())
            .collect();
        progress.expect_bytes(missing.iter().map(|blob| blob.size).sum());
        let root = self.root.clone();
        stream::iter(missing.into_iter().map(Ok::<_, ImageError>))
            .try_for_each_concurrent(PARALLEL_BLOBS, |blob| {
                let (reference, root, name) = (&reference, root.clone(), name.clone());
                async move {
                    let path = layout::blob_path(&root, &blob.digest);
                    let partial = path.with_extension("partial");
                    let file =
                        tokio::fs::File::create(&partial)
                            .await
                            .map_err(|source| ImageError::Write {
                                path: partial.clone(),
                                source,
                            })?;
                    let descriptor = OciDescriptor {
                        media_type: blob.media_type.clone(),
                        digest: blob.digest.to_string(),
                        size: i64::try_from(blob.size).unwrap_or(i64::MAX),
                        ..OciDescriptor::default()
                    };
                    if let Err(error) = client
                        .pull_blob(reference, &descriptor, CountingWriter::new(file, progress))
                        .await
                    {
                        let _ = tokio::fs::remove_file(&partial).await;
                        let error = RegistryError::from(error);
                        return Err(ImageError::Registry {
                            image: name,
                            source: RegistryError::new(
                                error.category,
                                format!("blob {}: {error}", blob.digest),
                            ),
                        });
                    }
                    tokio::fs::rename(&partial, &path)
                        .await
                        .map_err(|source| ImageError::Write { path, source })
                }
            })
            .await?;
        self.store_blob(&manifest.0, &manifest.2)?;
        self.record(&name, top.clone());
        Ok(AddedImage {
            reference: name,
            digest: top.digest,
            size,
        })
    }

    /// The manifest for linux/<architecture> in an index.
    fn platform_child(&self, image: &str, index: &Document) -> Result<Descriptor, ImageError> {
        let architecture = self.options.architecture.as_str();
        index
            .manifests
            .iter()
            .find(|descriptor| descriptor.os_and_architecture() == ("linux", architecture))
            .cloned()
            .ok_or_else(|| ImageError::Platform {
                image: image.to_owned(),
                architecture: architecture.to_owned(),
                available: index
                    .manifests
                    .iter()
                    .map(|d| {
                        let (os, arch) = d.os_and_architecture();
                        format!("{os}/{arch}")
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        layout::blob_path(&self.root, digest)
    }

    fn store_blob(&self, bytes: &[u8], digest: &Digest) -> Result<(), ImageError> {
        let path = self.blob_path(digest);
        if !path.exists() {
            std::fs::write(&path, bytes).map_err(|source| ImageError::Write { path, source })?;
        }
        Ok(())
    }

    fn record(&mut self, reference: &str, mut descriptor: Descriptor) {
        descriptor
            .annotations
            .insert(REFERENCE_ANNOTATION.to_owned(), reference.to_owned());
        descriptor
            .annotations
            .insert(BASE_NAME_ANNOTATION.to_owned(), reference.to_owned());
        self.entries.insert(reference.to_owned(), descriptor);
    }

    /// Adds the images an `imageArchives` entry names, from an OCI layout directory, an OCI
    /// archive or a `docker save` archive; `base` resolves a relative path.
    pub fn add_archive(
        &mut self,
        archive: &ImageArchive,
        base: &Path,
        scratch: &Path,
    ) -> Result<Vec<AddedImage>, ImageError> {
        let path = base.join(&archive.path);
        let archive_error = |message: String| ImageError::Archive {
            path: path.clone(),
            message,
        };
        let layout_root = if path.is_dir() {
            path.clone()
        } else {
            let unpacked = scratch.join(format!(
                "archive-{}",
                Digest::of(path.to_string_lossy().as_bytes()).hex()
            ));
            if !unpacked.exists() {
                super::archive::extract_skipping_links(&path, &unpacked, &super::archive::Limits::default())
                    .map_err(|error| archive_error(error.to_string()))?;
            }
            unpacked
        };
        let mut added = Vec::new();
        for image in &archive.images {
            let parsed = ImageReference::parse(image)?;
            let name = parsed.to_string();
            let result = if layout_root.join("oci-layout").exists() && layout_root.join("index.json").exists()
            {
                self.copy_from_layout(&Layout::new(&layout_root), &name, image, &path)?
            } else if layout_root.join("manifest.json").exists() {
                self.convert_docker(&layout_root, &parsed, &path)?
            } else {
                return Err(archive_error(
                    "neither an OCI image layout nor a docker archive".into(),
                ));
            };
            added.push(result);
        }
        Ok(added)
    }

    fn copy_from_layout(
        &mut self,
        layout: &Layout,
        name: &str,
        written: &str,
        archive: &Path,
    ) -> Result<AddedImage, ImageError> {
        let layout_error = |source| ImageError::Layout {
            image: name.to_owned(),
            source,
        };
        let mut top =
            layout
                .find(name)
                .or_else(|_| layout.find(written))
                .map_err(|_| ImageError::NotInArchive {
                    image: name.to_owned(),
                    archive: archive.to_owned(),
                })?;
        if crate::oci::media_type::is_index(&top.media_type) {
            let index = read_document(name, &layout.blob_path(&top.digest))?;
            top = self.platform_child(name, &index)?;
        }
        top.annotations.clear();
        top.platform = None;
        let blobs = layout.reachable(&top).map_err(layout_error)?;
        let mut size = 0;
        for blob in &blobs {
            size += blob.size;
            let target = self.blob_path(&blob.digest);
            if !target.exists() {
                copy_verified(&layout.blob_path(&blob.digest), &target, &blob.digest, name)?;
            }
        }
        self.record(name, top.clone());
        Ok(AddedImage {
            reference: name.to_owned(),
            digest: top.digest,
            size,
        })
    }

    /// Builds a Docker schema 2 manifest for an image in a `docker save` archive.
    fn convert_docker(
        &mut self,
        root: &Path,
        image: &ImageReference,
        archive: &Path,
    ) -> Result<AddedImage, ImageError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Vec<String>,
            layers: Vec<String>,
        }
        let name = image.to_string();
        let archive_error = |message: String| ImageError::Archive {
            path: archive.to_owned(),
            message,
        };
        let manifest_bytes = std::fs::read(root.join("manifest.json"))
            .map_err(|error| archive_error(format!("manifest.json: {error}")))?;
        let entries: Vec<Entry> = serde_json::from_slice(&manifest_bytes)
            .map_err(|error| archive_error(format!("manifest.json: {error}")))?;
        let entry = entries
            .iter()
            .find(|entry| {
                entry
                    .repo_tags
                    .iter()
                    .any(|tag| ImageReference::parse(tag).is_ok_and(|tag| tag.to_string() == name))
            })
            .ok_or_else(|| ImageError::NotInArchive {
                image: name.clone(),
                archive: archive.to_owned(),
            })?;
        let file_in = |relative: &str| {
            let joined = root.join(relative);
            if relative.contains("..") || !joined.starts_with(root) {
                return Err(archive_error(format!("{relative} is outside the archive")));
            }
            Ok(joined)
        };
        let config = self.store_file(&file_in(&entry.config)?, DOCKER_CONFIG, &name)?;
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let path = file_in(layer)?;
            let mut magic = [0u8; 2];
            let gzip = File::open(&path)
                .and_then(|mut file| file.read_exact(&mut magic))
                .is_ok()
                && magic == [0x1f, 0x8b];
            let media_type = if gzip { DOCKER_LAYER_GZIP } else { DOCKER_LAYER };
            layers.push(self.store_file(&path, media_type, &name)?);
        }
        let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config, "layers": layers});
        let bytes = serde_json::to_vec(&manifest).map_err(|error| archive_error(error.to_string()))?;
        let top = Descriptor::of(DOCKER_MANIFEST, &bytes);
        self.store_blob(&bytes, &top.digest)?;
        let size = bytes.len() as u64 + config.size + layers.iter().map(|layer| layer.size).sum::<u64>();
        self.record(&name, top.clone());
        Ok(AddedImage {
            reference: name,
            digest: top.digest,
            size,
        })
    }

    /// Stores a file as a blob (hashing it as it is copied).
    fn store_file(&self, path: &Path, media_type: &str, image: &str) -> Result<Descriptor, ImageError> {
        let partial = self.root.join("blobs/sha256/import.partial");
        let (digest, size) = copy_hashing(path, &partial, image)?;
        let target = self.blob_path(&digest);
        std::fs::rename(&partial, &target).map_err(|source| ImageError::Write { path: target, source })?;
        Ok(Descriptor::new(media_type, digest, size))
    }
}

fn parse_document(image: &str, bytes: &[u8]) -> Result<Document, ImageError> {
    Document::parse(bytes).map_err(|source| ImageError::Manifest {
        image: image.to_owned(),
        source,
    })
}

fn read_document(image: &str, path: &Path) -> Result<Document, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Read {
        image: image.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    parse_document(image, &bytes)
}

/// Copies `source` to `target`, hashing it; returns the digest and size.
fn copy_hashing(source: &Path, target: &Path, image: &str) -> Result<(Digest, u64), ImageError> {
    let mut input = File::open(source).map_err(|error| ImageError::Read {
        image: image.to_owned(),
        path: source.to_owned(),
        source: error,
    })?;
    let write_error = |error| ImageError::Write {
        path: target.to_owned(),
        source: error,
    };
    let mut output = io::BufWriter::new(File::create(target).map_err(write_error)?);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = input.read(&mut buffer).map_err(write_error)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        output.write_all(&buffer[..read]).map_err(write_error)?;
        size += read as u64;
    }
    output.flush().map_err(write_error)?;
    Ok((Digest::from_hasher(hasher), size))
}

/// Copies a blob, refusing it if its content does not match its digest.
fn copy_verified(source: &Path, target: &Path, digest: &Digest, image: &str) -> Result<(), ImageError> {
    let partial = target.with_extension("partial");
    let (actual, _) = copy_hashing(source, &partial, image)?;
    if &actual != digest {
        let _ = std::fs::remove_file(&partial);
        return Err(ImageError::Corrupt {
            image: image.to_owned(),
            digest: digest.clone(),
            path: source.to_owned(),
            actual,
        });
    }
    std::fs::rename(&partial, target).map_err(|source| ImageError::Write {
        path: target.to_owned(),
        source,
    })
}
