//! `package pull` and remote `inspect`: the artifact's layers downloaded (all of them, those some
//! components need, or only the metadata and image manifests), checked, and the package file
//! written back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use futures::stream::{self, TryStreamExt};
use jackal_crds::definition::PackageDefinition;
use oci_client::Reference;
use oci_client::manifest::OciDescriptor;
use serde::Deserialize;

use super::{OciError, PARALLEL, TITLE, malformed, registry_error, retry};
use crate::layout::{Layout, REFERENCE_ANNOTATION};
use crate::oci::media_type::{JACKAL_CONFIG, OCI_MANIFEST};
use crate::oci::{Digest, Document, OciUrl};
use crate::package::archive::{self, ArchiveError};
use crate::package::inspect::{self, Inspection};
use crate::package::verify::{Metadata, VerifyError, VerifyOptions, verify_metadata};
use crate::package::{CHECKSUMS, COMPONENTS, DEFINITION, IMAGES, SIGNATURE, file_name};
use crate::progress::{CountingWriter, Progress};
use crate::registry::Access;
use crate::transform::ImageReference;

/// What `pull` wrote.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The package file.
    pub path: PathBuf,
    /// Its definition.
    pub definition: PackageDefinition,
    /// Layers downloaded.
    pub files: usize,
    /// Whether only some components were pulled.
    pub partial: bool,
}

/// The metadata files, downloaded first when only part of a package is wanted.
const METADATA: [&str; 5] = [
    DEFINITION,
    SIGNATURE,
    CHECKSUMS,
    "images/index.json",
    "images/oci-layout",
];

/// A package artifact in a registry, being downloaded into `root`.
pub(super) struct Artifact<'a> {
    client: oci_client::Client,
    reference: Reference,
    /// The artifact's URL, as errors and progress name it.
    source: String,
    /// Every layer, by its title (the file's path in the package), with its digest.
    layers: BTreeMap<String, (OciDescriptor, Digest)>,
    root: &'a Path,
    progress: &'a dyn Progress,
}

impl<'a> Artifact<'a> {
    /// Resolves `url` (`oci://REGISTRY/REPOSITORY:TAG`) and reads its manifest; `root` (which
    /// must not exist) receives the files.
    pub(super) async fn open(
        url: &OciUrl,
        access: &Access,
        root: &'a Path,
        progress: &'a dyn Progress,
    ) -> Result<Artifact<'a>, OciError> {
        let source = url.to_string();
        let host = url.registry().to_owned();
        let reference = url.reference();
        if root.exists() {
            return Err(OciError::Archive(ArchiveError::Exists(root.to_owned())));
        }
        let client = access.client(std::slice::from_ref(&host));
        let auth = access.auth(&host);
        let (bytes, _) = client
            .pull_manifest_raw(&reference, &auth, &[OCI_MANIFEST])
            .await
            .map_err(|error| registry_error(&source, error))?;
        #[derive(Deserialize)]
        struct Manifest {
            config: OciDescriptor,
            layers: Vec<OciDescriptor>,
        }
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|error| malformed(&source, error))?;
        if manifest.config.media_type != JACKAL_CONFIG {
            return Err(OciError::NotAPackage {
                reference: source,
                config: manifest.config.media_type,
            });
        }
        let mut layers = BTreeMap::new();
        for layer in manifest.layers {
            let title = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(TITLE))
                .cloned()
                .unwrap_or_default();
            let safe = Path::new(&title)
                .components()
                .all(|part| matches!(part, std::path::Component::Normal(_)));
            if title.is_empty() || !safe {
                return Err(OciError::Title {
                    reference: source,
                    title,
                });
            }
            let digest = Digest::parse(&layer.digest).map_err(|error| malformed(&title, error))?;
            layers.insert(title, (layer, digest));
        }
        std::fs::create_dir_all(root).map_err(|source| OciError::Io {
            path: root.to_owned(),
            source,
        })?;
        Ok(Artifact {
            client,
            reference,
            source,
            layers,
            root,
            progress,
        })
    }

    /// Downloads the layers titled `titles` (unknown titles are skipped) into the root.
    pub(super) async fn download(&self, titles: Vec<String>) -> Result<(), OciError> {
        stream::iter(titles.into_iter().map(Ok::<_, OciError>))
            .try_for_each_concurrent(PARALLEL, |title| async move {
                let Some((layer, _)) = self.layers.get(&title) else {
                    return Ok(());
                };
                let path = self.root.join(&title);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|source| OciError::Io {
                        path: parent.to_owned(),
                        source,
                    })?;
                }
                retry(&title, || async {
                    let file = tokio::fs::File::create(&path)
                        .await
                        .map_err(|source| OciError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    self.client
                        .pull_blob(&self.reference, layer, CountingWriter::new(file, self.progress))
                        .await
                        .map_err(|error| registry_error(&title, error))
                })
                .await
            })
            .await
    }

    /// The artifact's reference (its repository holds every file's blob).
    pub(super) fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The metadata files this artifact has.
    fn metadata(&self) -> Vec<String> {
        METADATA
            .iter()
            .filter(|title| self.layers.contains_key(**title))
            .map(|title| (*title).to_owned())
            .collect()
    }

    /// Downloads the metadata and parses the definition.
    async fn definition(&self) -> Result<PackageDefinition, OciError> {
        self.download(self.metadata()).await?;
        let path = self.root.join(DEFINITION);
        let text = std::fs::read_to_string(&path).map_err(|source| OciError::Io { path, source })?;
        Ok(PackageDefinition::parse(&text, DEFINITION).map_err(VerifyError::from)?)
    }

    /// Total size of every layer.
    fn size(&self) -> u64 {
        self.layers
            .values()
            .map(|(layer, _)| u64::try_from(layer.size).unwrap_or(0))
            .sum()
    }
}

/// Pulls `source` (`oci://REGISTRY/REPOSITORY:TAG`) and writes the package file into `output`.
/// With `components`, only what those (and the required ones) need is downloaded. `scratch` must
/// not exist; it is removed afterwards.
pub async fn pull(
    source: &OciUrl,
    output: &Path,
    components: &[String],
    access: &Access,
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<Pulled, OciError> {
    let result = async {
        let artifact = Artifact::open(source, access, scratch, progress).await?;
        pull_into(&artifact, output, components).await
    }
    .await;
    if !matches!(result, Err(OciError::Archive(ArchiveError::Exists(_)))) {
        let _ = std::fs::remove_dir_all(scratch);
    }
    result
}

async fn pull_into(
    artifact: &Artifact<'_>,
    output: &Path,
    components: &[String],
) -> Result<Pulled, OciError> {
    let metadata = artifact.metadata();
    let partial = !components.is_empty();
    let wanted: Vec<String> = if partial {
        let definition = artifact.definition().await?;
        let needed = needed_files(artifact, &definition, components).await?;
        needed
            .into_iter()
            .filter(|title| !metadata.contains(title))
            .collect()
    } else {
        artifact.layers.keys().cloned().collect()
    };
    let progress = artifact.progress;
    progress.step(&format!(
        "downloading {} files of {}",
        wanted.len(),
        artifact.source
    ));
    progress.expect_bytes(
        wanted
            .iter()
            .filter_map(|title| artifact.layers.get(title))
            .map(|(layer, _)| u64::try_from(layer.size).unwrap_or(0))
            .sum(),
    );
    artifact.download(wanted.clone()).await?;
    let verified = verify_layers(artifact, partial)?;
    let architecture = verified
        .definition
        .metadata
        .architecture
        .clone()
        .unwrap_or_default();
    let mut name = file_name(&verified.definition, &architecture);
    if partial {
        name = name.replacen(".tar", &format!("-partial-{}.tar", components.join("-")), 1);
    }
    std::fs::create_dir_all(output).map_err(|source| OciError::Io {
        path: output.to_owned(),
        source,
    })?;
    let path = output.join(name);
    let (root, target, compress) = (
        artifact.root.to_owned(),
        path.clone(),
        !verified.definition.metadata.uncompressed,
    );
    crate::blocking(move || archive::write(&root, &target, compress)).await?;
    Ok(Pulled {
        path,
        definition: verified.definition,
        files: wanted.len() + if partial { metadata.len() } else { 0 },
        partial,
    })
}

/// Verifies a downloaded package without hashing its files again: the client checked every
/// layer against its digest while downloading, so it is enough to verify the metadata and compare
/// each layer's digest with `checksums.txt`. With `partial`, listed files may be absent.
fn verify_layers(artifact: &Artifact<'_>, partial: bool) -> Result<Metadata, OciError> {
    let read = |name: &str| -> Result<Option<Vec<u8>>, OciError> {
        let path = artifact.root.join(name);
        if !path.exists() {
            return Ok(None);
        }
        std::fs::read(&path)
            .map(Some)
            .map_err(|source| OciError::Io { path, source })
    };
    let definition = read(DEFINITION)?.ok_or(VerifyError::Missing(DEFINITION))?;
    let checksums = read(CHECKSUMS)?.ok_or(VerifyError::Missing(CHECKSUMS))?;
    let signature = read(SIGNATURE)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let metadata = verify_metadata(
        &definition,
        signature.as_deref(),
        &checksums,
        &VerifyOptions {
            skip_signature: true,
            ..VerifyOptions::default()
        },
    )?;
    for title in artifact.layers.keys() {
        if ![DEFINITION, SIGNATURE, CHECKSUMS].contains(&title.as_str())
            && !metadata.listed.contains_key(title)
        {
            return Err(VerifyError::Unexpected(title.clone()).into());
        }
    }
    for (path, expected) in &metadata.listed {
        match artifact.layers.get(path) {
            Some((_, digest)) if digest != expected => {
                return Err(VerifyError::FileMismatch {
                    path: path.clone(),
                    expected: expected.clone(),
                    actual: digest.clone(),
                }
                .into());
            }
            Some(_) => {}
            None if partial => {}
            None => return Err(VerifyError::FileMissing(path.clone()).into()),
        }
    }
    Ok(metadata)
}

/// Inspects a package in a registry without downloading its content: the metadata and the image
/// manifests only, checked against the checksums (and the signature when `options` has a key).
/// Sizes are those of the files in the registry. `scratch` must not exist; it is removed.
pub async fn inspect_remote(
    source: &OciUrl,
    access: &Access,
    options: &VerifyOptions,
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<Inspection, OciError> {
    let result = async {
        let artifact = Artifact::open(source, access, scratch, progress).await?;
        progress.step(&format!("reading the metadata of {source}"));
        let definition = artifact.definition().await?;
        let every_component: Vec<String> = definition.components.iter().map(|c| c.name.clone()).collect();
        needed_files(&artifact, &definition, &every_component).await?;
        let options = VerifyOptions {
            partial: true,
            ..options.clone()
        };
        let size = artifact.size();
        let (root, source) = (scratch.to_owned(), PathBuf::from(source.to_string()));
        crate::blocking(move || {
            let (verified, signature) = inspect::verify_for_inspection(&root, &options)?;
            Ok(inspect::summarize(
                source,
                size,
                size,
                &root,
                verified.definition,
                signature,
            )?)
        })
        .await
    }
    .await;
    if !matches!(result, Err(OciError::Archive(ArchiveError::Exists(_)))) {
        let _ = std::fs::remove_dir_all(scratch);
    }
    result
}

/// The files the selected components need: their archives and the blobs of their images.
/// Downloads the image manifests they need on the way (not the configs or layers).
async fn needed_files(
    artifact: &Artifact<'_>,
    definition: &PackageDefinition,
    components: &[String],
) -> Result<BTreeSet<String>, OciError> {
    let (root, by_title, source) = (artifact.root, &artifact.layers, artifact.source.as_str());
    for component in components {
        if !definition.components.iter().any(|c| &c.name == component) {
            let available = definition
                .components
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(OciError::NoComponent {
                reference: source.to_owned(),
                component: component.clone(),
                available,
            });
        }
    }
    let selected: Vec<_> = definition
        .components
        .iter()
        .filter(|c| c.is_required() || components.contains(&c.name))
        .collect();
    let mut needed = BTreeSet::new();
    for component in &selected {
        needed.insert(format!("{COMPONENTS}/{}.tar", component.name));
    }
    let images: BTreeSet<String> = selected
        .iter()
        .flat_map(|c| {
            c.images
                .iter()
                .chain(c.image_archives.iter().flat_map(|a| &a.images))
        })
        .filter_map(|image| ImageReference::parse(image).ok().map(|r| r.to_string()))
        .collect();
    if images.is_empty() || !root.join("images/index.json").exists() {
        return Ok(needed);
    }
    let layout = Layout::new(root.join(IMAGES));
    let index = layout.index().map_err(|error| malformed(source, error))?;
    let tops: Vec<_> = index
        .into_iter()
        .filter(|d| {
            d.annotations
                .get(REFERENCE_ANNOTATION)
                .is_some_and(|r| images.contains(r))
        })
        .collect();
    // Manifests first (they say which configs, layers and child manifests are needed).
    let blob_title = |digest: &Digest| format!("{IMAGES}/blobs/sha256/{}", digest.hex());
    let mut pending: Vec<Digest> = tops.iter().map(|descriptor| descriptor.digest.clone()).collect();
    while !pending.is_empty() {
        let titles: Vec<String> = pending
            .iter()
            .map(blob_title)
            .filter(|t| by_title.contains_key(t))
            .collect();
        artifact.download(titles.clone()).await?;
        needed.extend(titles);
        let mut next = Vec::new();
        for digest in &pending {
            let path = layout.blob_path(digest);
            let bytes = std::fs::read(&path).map_err(|source| OciError::Io {
                path: path.clone(),
                source,
            })?;
            let document = Document::parse(&bytes).map_err(|error| malformed(blob_title(digest), error))?;
            // Foreign layers included: a title that the artifact lacks is simply not needed.
            for descriptor in document.config.iter().chain(&document.layers) {
                needed.insert(blob_title(&descriptor.digest));
            }
            for child in document.manifests {
                if by_title.contains_key(&blob_title(&child.digest)) {
                    next.push(child.digest);
                }
            }
        }
        pending = next;
    }
    Ok(needed)
}
