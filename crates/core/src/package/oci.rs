//! Packages in OCI registries: `publish` pushes a package as an OCI artifact — one layer per file
//! (`application/vnd.jackal.layer.v1.blob`, titled with its path), every image blob its own layer
//! so registries deduplicate them and the operator can mount them — and `pull` writes the same
//! package file back (the archive is deterministic, so it is bit-for-bit the original), or only
//! what some components need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use jackal_crds::definition::PackageDefinition;
use oci_client::Reference;
use oci_client::manifest::OciDescriptor;
use serde::{Deserialize, Serialize};

use super::archive::{self, ArchiveError, Limits};
use super::checksums::{self, file_sha256};
use super::verify::{VerifyError, VerifyOptions, verify_dir};
use super::{CHECKSUMS, COMPONENTS, DEFINITION, IMAGES, SIGNATURE};
use crate::layout::{Layout, REFERENCE_ANNOTATION};
use crate::progress::{CountingWriter, Progress};
use crate::registry::{self, Credentials};
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
        message: error.to_string(),
    }
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

/// What `publish` pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// `host/namespace/name:tag`.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// Layers pushed, and layers the registry already had.
    pub pushed: usize,
    /// Layers skipped because the registry already had them.
    pub skipped: usize,
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

/// Pushes the package file `package` to `target` (`oci://REGISTRY/NAMESPACE`), tagged with its
/// version (and flavor). `scratch` must not exist; it is removed afterwards.
pub async fn publish(
    package: &Path,
    target: &str,
    insecure: &[String],
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<Published, OciError> {
    let (host, repository_base) = parse_target(target)?;
    archive::extract(package, scratch, &Limits::default())?;
    let result = publish_unpacked(scratch, &host, &repository_base, insecure, progress).await;
    let _ = std::fs::remove_dir_all(scratch);
    result
}

async fn publish_unpacked(
    root: &Path,
    host: &str,
    base: &str,
    insecure: &[String],
    progress: &dyn Progress,
) -> Result<Published, OciError> {
    let verified = verify_dir(
        root,
        &VerifyOptions {
            skip_signature: true,
            ..VerifyOptions::default()
        },
    )?;
    let definition = verified.definition;
    let mut tag = definition.metadata.version.clone().ok_or(OciError::NoVersion)?;
    if let Some(flavor) = definition.build.as_ref().and_then(|build| build.flavor.clone()) {
        tag = format!("{tag}-{flavor}");
    }
    let reference_text = format!("{base}/{}:{tag}", definition.metadata.name);
    let reference: Reference = reference_text.parse().map_err(|error: oci_client::ParseError| {
        OciError::Reference(reference_text.clone(), error.to_string())
    })?;

    // The layers: every file, with the digest checksums.txt already vouches for.
    let listed =
        checksums::parse(
            &std::fs::read_to_string(root.join(CHECKSUMS)).map_err(|source| OciError::Io {
                path: root.join(CHECKSUMS),
                source,
            })?,
        )
        .map_err(|message| OciError::Verify(VerifyError::Checksums(message)))?;
    let mut layers = Vec::new();
    for special in [DEFINITION, SIGNATURE, CHECKSUMS] {
        let path = root.join(special);
        if path.exists() {
            let digest = file_sha256(&path).map_err(|source| OciError::Io {
                path: path.clone(),
                source,
            })?;
            layers.push(layer(
                special,
                &digest,
                std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            ));
        }
    }
    for (path, digest) in &listed {
        let size = std::fs::metadata(root.join(path))
            .map(|m| m.len())
            .map_err(|source| OciError::Io {
                path: root.join(path),
                source,
            })?;
        layers.push(layer(path, digest, size));
    }

    let client = registry::client(&[host.to_owned()], insecure);
    let auth = Credentials::load().for_host(host);
    client
        .store_auth_if_needed(reference.resolve_registry(), &auth)
        .await;
    let client = &client;
    let reference_ref = &reference;
    let counts = std::sync::Mutex::new((0usize, 0usize));
    progress.step(&format!(
        "publishing {} files of {} to {reference_text}",
        layers.len(),
        definition.metadata.name
    ));
    stream::iter(layers.iter().map(Ok::<_, OciError>))
        .try_for_each_concurrent(PARALLEL, |descriptor| {
            let counts = &counts;
            async move {
                let title = descriptor
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(TITLE))
                    .cloned()
                    .unwrap_or_default();
                let exists = client
                    .blob_exists(reference_ref, &descriptor.digest)
                    .await
                    .unwrap_or(false);
                if exists {
                    if let Ok(mut counts) = counts.lock() {
                        counts.1 += 1;
                    }
                    return Ok(());
                }
                let path = root.join(&title);
                progress.expect_bytes(u64::try_from(descriptor.size).unwrap_or(0));
                retry(&title, || {
                    push_file(
                        client,
                        reference_ref,
                        &path,
                        &descriptor.digest,
                        descriptor.size,
                        progress,
                    )
                })
                .await?;
                if let Ok(mut counts) = counts.lock() {
                    counts.0 += 1;
                }
                Ok(())
            }
        })
        .await?;

    let architecture = definition.metadata.architecture.clone().unwrap_or_default();
    let config = PackageConfig {
        architecture,
        oci_version: "1.1.0".into(),
        annotations: annotations(&definition),
    };
    let config_bytes = serde_json::to_vec(&config).map_err(|error| registry_error("config", error))?;
    let config_digest = format!("sha256:{}", checksums::sha256(&config_bytes));
    retry("config", || async {
        client
            .push_blob(&reference, config_bytes.clone(), &config_digest)
            .await
            .map(|_| ())
            .map_err(|error| registry_error("config", error))
    })
    .await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_bytes.len()},
        "layers": layers,
        "annotations": annotations(&definition),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|error| registry_error("manifest", error))?;
    let digest = format!("sha256:{}", checksums::sha256(&manifest_bytes));
    let content_type = MANIFEST_MEDIA_TYPE
        .parse()
        .map_err(|error| registry_error("manifest", error))?;
    client
        .push_manifest_raw(&reference, manifest_bytes, content_type)
        .await
        .map_err(|error| registry_error(&reference_text, error))?;
    let (pushed, skipped) = counts.lock().map(|counts| *counts).unwrap_or_default();
    Ok(Published {
        reference: reference_text,
        digest,
        pushed,
        skipped,
    })
}

fn layer(title: &str, digest: &str, size: u64) -> OciDescriptor {
    OciDescriptor {
        media_type: LAYER_MEDIA_TYPE.into(),
        digest: format!("sha256:{}", super::hex_of(digest)),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        annotations: Some(BTreeMap::from([(TITLE.to_owned(), title.to_owned())])),
        ..OciDescriptor::default()
    }
}

/// Pushes a file as a blob, streamed (monolithic PUT with the size known).
async fn push_file(
    client: &oci_client::Client,
    reference: &Reference,
    path: &Path,
    digest: &str,
    size: i64,
    progress: &dyn Progress,
) -> Result<(), OciError> {
    let file = tokio::fs::File::open(path).await.map_err(|source| OciError::Io {
        path: path.to_owned(),
        source,
    })?;
    // The client wants a 'static stream: it reports the bytes it reads through a channel,
    // drained into `progress` while the upload runs.
    let (moved, mut reports) = futures::channel::mpsc::unbounded::<u64>();
    let chunks = stream::unfold((file, moved), |(mut file, moved)| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 1 << 20];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                let _ = moved.unbounded_send(read as u64);
                Some((Ok(bytes::Bytes::from(buffer)), (file, moved)))
            }
            Err(error) => Some((
                Err(oci_client::errors::OciDistributionError::IoError(error)),
                (file, moved),
            )),
        }
    });
    let upload = client.push_blob_stream(reference, chunks, digest, Some(u64::try_from(size).unwrap_or(0)));
    let report = async {
        while let Some(bytes) = reports.next().await {
            progress.moved_bytes(bytes);
        }
    };
    let (result, ()) = futures::join!(upload, report);
    result
        .map(|_| ())
        .map_err(|error| registry_error(path.display().to_string(), error))
}

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

/// Pulls `source` (`oci://REGISTRY/REPOSITORY:TAG`) and writes the package file into `output`.
/// With `components`, only what those (and the required ones) need is downloaded.
pub async fn pull(
    source: &str,
    output: &Path,
    components: &[String],
    insecure: &[String],
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<Pulled, OciError> {
    let rest = source
        .strip_prefix("oci://")
        .ok_or_else(|| OciError::Reference(source.into(), "it must start with oci://".into()))?;
    let host = ImageReference::parse(rest)
        .map_err(|error| OciError::Reference(source.into(), error.to_string()))?
        .registry;
    let reference: Reference = rest
        .parse()
        .map_err(|error: oci_client::ParseError| OciError::Reference(source.into(), error.to_string()))?;
    if scratch.exists() {
        return Err(OciError::Archive(ArchiveError::Exists(scratch.to_owned())));
    }
    let result = pull_into(
        &reference, &host, source, output, components, insecure, scratch, progress,
    )
    .await;
    let _ = std::fs::remove_dir_all(scratch);
    result
}

#[allow(clippy::too_many_arguments)]
async fn pull_into(
    reference: &Reference,
    host: &str,
    source: &str,
    output: &Path,
    components: &[String],
    insecure: &[String],
    root: &Path,
    progress: &dyn Progress,
) -> Result<Pulled, OciError> {
    let client = registry::client(&[host.to_owned()], insecure);
    let auth = Credentials::load().for_host(host);
    let (bytes, _) = client
        .pull_manifest_raw(reference, &auth, &[MANIFEST_MEDIA_TYPE])
        .await
        .map_err(|error| registry_error(source, error))?;
    #[derive(Deserialize)]
    struct Manifest {
        config: OciDescriptor,
        layers: Vec<OciDescriptor>,
    }
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|error| registry_error(source, error))?;
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(OciError::NotAPackage {
            reference: source.to_owned(),
            config: manifest.config.media_type,
        });
    }
    let mut by_title = BTreeMap::new();
    for layer in &manifest.layers {
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
                reference: source.to_owned(),
                title,
            });
        }
        by_title.insert(title, layer.clone());
    }
    std::fs::create_dir_all(root).map_err(|source| OciError::Io {
        path: root.to_owned(),
        source,
    })?;
    let download = |titles: Vec<String>| {
        let (client, by_title) = (&client, &by_title);
        async move {
            stream::iter(titles.into_iter().map(Ok::<_, OciError>))
                .try_for_each_concurrent(PARALLEL, |title| async move {
                    let Some(layer) = by_title.get(&title) else {
                        return Ok(());
                    };
                    let path = root.join(&title);
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
                        client
                            .pull_blob(reference, layer, CountingWriter::new(file, progress))
                            .await
                            .map_err(|error| registry_error(&title, error))
                    })
                    .await
                })
                .await
        }
    };

    let metadata: Vec<String> = [
        DEFINITION,
        SIGNATURE,
        CHECKSUMS,
        "images/index.json",
        "images/oci-layout",
    ]
    .iter()
    .filter(|title| by_title.contains_key(**title))
    .map(|title| (*title).to_owned())
    .collect();
    let partial = !components.is_empty();
    let wanted: Vec<String> = if partial {
        download(metadata.clone()).await?;
        let definition_text =
            std::fs::read_to_string(root.join(DEFINITION)).map_err(|source| OciError::Io {
                path: root.join(DEFINITION),
                source,
            })?;
        let definition = PackageDefinition::parse(&definition_text, DEFINITION).map_err(VerifyError::from)?;
        let needed = needed_files(&definition, components, root, &by_title, source, &download).await?;
        needed
            .into_iter()
            .filter(|title| !metadata.contains(title))
            .collect()
    } else {
        by_title.keys().cloned().collect()
    };
    progress.step(&format!("downloading {} files of {source}", wanted.len()));
    progress.expect_bytes(
        wanted
            .iter()
            .filter_map(|title| by_title.get(title))
            .map(|layer| u64::try_from(layer.size).unwrap_or(0))
            .sum(),
    );
    download(wanted.clone()).await?;
    let verified = verify_dir(
        root,
        &VerifyOptions {
            skip_signature: true,
            partial,
            ..VerifyOptions::default()
        },
    )?;
    let architecture = verified
        .definition
        .metadata
        .architecture
        .clone()
        .unwrap_or_default();
    let mut name = super::file_name(&verified.definition, &architecture);
    if partial {
        name = name.replacen(".tar", &format!("-partial-{}.tar", components.join("-")), 1);
    }
    std::fs::create_dir_all(output).map_err(|source| OciError::Io {
        path: output.to_owned(),
        source,
    })?;
    let path = output.join(name);
    archive::write(root, &path, !verified.definition.metadata.uncompressed)?;
    Ok(Pulled {
        path,
        definition: verified.definition,
        files: wanted.len() + if partial { metadata.len() } else { 0 },
        partial,
    })
}

/// The files the selected components need: their archives and the blobs of their images.
async fn needed_files<D, F>(
    definition: &PackageDefinition,
    components: &[String],
    root: &Path,
    by_title: &BTreeMap<String, OciDescriptor>,
    source: &str,
    download: &D,
) -> Result<BTreeSet<String>, OciError>
where
    D: Fn(Vec<String>) -> F,
    F: std::future::Future<Output = Result<(), OciError>>,
{
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
    let index = layout.index().map_err(|error| registry_error(source, error))?;
    let tops: Vec<_> = index
        .into_iter()
        .filter(|d| {
            d.annotations
                .get(REFERENCE_ANNOTATION)
                .is_some_and(|r| images.contains(r))
        })
        .collect();
    // Manifests first (they say which configs, layers and child manifests are needed).
    let blob_title = |digest: &str| format!("{IMAGES}/blobs/sha256/{}", super::hex_of(digest));
    let mut pending: Vec<String> = tops.iter().map(|descriptor| descriptor.digest.clone()).collect();
    while !pending.is_empty() {
        let titles: Vec<String> = pending
            .iter()
            .map(|digest| blob_title(digest))
            .filter(|t| by_title.contains_key(t))
            .collect();
        download(titles.clone()).await?;
        needed.extend(titles);
        let mut next = Vec::new();
        for digest in &pending {
            let path = layout
                .blob_path(digest)
                .map_err(|error| registry_error(source, error))?;
            let bytes = std::fs::read(&path).map_err(|source| OciError::Io {
                path: path.clone(),
                source,
            })?;
            let document: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|error| registry_error(digest, error))?;
            let referenced = document["config"].as_object().into_iter().chain(
                document["layers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_object()),
            );
            for descriptor in referenced {
                if let Some(digest) = descriptor.get("digest").and_then(|d| d.as_str()) {
                    needed.insert(blob_title(digest));
                }
            }
            for child in document["manifests"].as_array().into_iter().flatten() {
                if let Some(digest) = child["digest"]
                    .as_str()
                    .filter(|digest| by_title.contains_key(&blob_title(digest)))
                {
                    next.push(digest.to_owned());
                }
            }
        }
        pending = next;
    }
    Ok(needed)
}
