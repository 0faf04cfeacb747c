//! `package publish`: streams a package file into a registry as one artifact without unpacking
//! it. The metadata at the front of the archive is read and verified first; then one pass over
//! the archive pushes every file the registry lacks as a layer (a few uploads overlapping),
//! checking each against `checksums.txt` on the way; uploads that fail are retried in further
//! passes; the config and the
//! manifest go last, so a tag never points at missing blobs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures::SinkExt;
use futures::channel::mpsc;
use futures::stream::{self, StreamExt};
use oci_client::Reference;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use sha2::{Digest as _, Sha256};

use super::{
    ATTEMPTS, OciError, PARALLEL, PackageConfig, TITLE, annotations, malformed, registry_error, retry,
};
use crate::oci::media_type::{JACKAL_CONFIG, JACKAL_LAYER, JACKAL_PACKAGE, OCI_MANIFEST};
use crate::oci::{Digest, OciUrl};
use crate::package::archive::{self, Entry, Limits};
use crate::package::verify::{VerifyError, VerifyOptions, read_metadata};
use crate::package::{CHECKSUMS, DEFINITION, SIGNATURE};
use crate::progress::Progress;
use crate::registry::{Access, RegistryError};

/// What `publish` pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// `oci://host/namespace/name:tag`.
    pub reference: OciUrl,
    /// Manifest digest.
    pub digest: Digest,
    /// Layers pushed.
    pub pushed: usize,
    /// Layers skipped because the registry already had them.
    pub skipped: usize,
}

/// Bytes per chunk handed from the archive reader to an upload.
const CHUNK: usize = 1 << 20;

/// Pushes the package file `package` to `target` (`oci://REGISTRY/NAMESPACE`), tagged with its
/// version (and flavor).
pub async fn publish(
    package: &Path,
    target: &OciUrl,
    access: &Access,
    progress: &dyn Progress,
) -> Result<Published, OciError> {
    let host = target.registry().to_owned();
    let (metadata, verified) = {
        let package = package.to_owned();
        crate::blocking(move || {
            read_metadata(
                &package,
                &VerifyOptions {
                    skip_signature: true,
                    ..VerifyOptions::default()
                },
            )
        })
        .await?
    };
    let definition = verified.definition;
    let mut tag = definition.metadata.version.clone().ok_or(OciError::NoVersion)?;
    if let Some(flavor) = definition.build.as_ref().and_then(|build| build.flavor.clone()) {
        tag = format!("{tag}-{flavor}");
    }
    let url = target.child(&definition.metadata.name, &tag);
    let reference_text = url.without_scheme();
    let reference = url.reference();

    let client = access.client(std::slice::from_ref(&host));
    let auth = access.auth(&host);
    client
        .store_auth_if_needed(reference.resolve_registry(), &auth)
        .await;

    // The digest of every layer: the metadata hashed here, the rest vouched for by checksums.txt.
    let mut digests: BTreeMap<String, Digest> = metadata
        .iter()
        .map(|(title, bytes)| (title.clone(), Digest::of(bytes)))
        .collect();
    digests.extend(verified.listed.clone());
    let present: BTreeSet<String> = stream::iter(digests.iter())
        .map(|(title, digest)| {
            let (client, reference) = (&client, &reference);
            async move {
                let exists = client
                    .blob_exists(reference, digest.as_str())
                    .await
                    .unwrap_or(false);
                exists.then(|| title.clone())
            }
        })
        .buffer_unordered(PARALLEL)
        .filter_map(|title| async move { title })
        .collect()
        .await;

    progress.step(&format!(
        "publishing {} files of {} to {reference_text} ({} already there)",
        digests.len(),
        definition.metadata.name,
        present.len()
    ));
    for (title, bytes) in &metadata {
        if present.contains(title) {
            continue;
        }
        let digest = &digests[title];
        retry(title, || async {
            client
                .push_blob(&reference, bytes.clone(), digest.as_str())
                .await
                .map(|_| ())
                .map_err(|error| registry_error(title, error))
        })
        .await?;
    }

    // The other files, streamed from the archive; failed uploads are retried in another pass.
    let mut wanted: BTreeSet<String> = verified
        .listed
        .keys()
        .filter(|title| !present.contains(*title))
        .cloned()
        .collect();
    let mut sizes: BTreeMap<String, u64> = metadata
        .iter()
        .map(|(title, bytes)| (title.clone(), bytes.len() as u64))
        .collect();
    for attempt in 1..=ATTEMPTS {
        let pass = stream_pass(package, &verified.listed, &wanted, &client, &reference, progress).await?;
        if attempt == 1 {
            // Every pass reads every header; the first one's sizes serve the manifest.
            sizes.extend(pass.sizes);
        }
        let Some((title, error)) = pass.failed.iter().next() else {
            break;
        };
        if attempt == ATTEMPTS || !error.category.is_retryable() {
            return Err(registry_error(title.clone(), error.clone()));
        }
        progress.step(&format!(
            "retrying {} uploads ({title}: {error})",
            pass.failed.len()
        ));
        tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt))).await;
        wanted = pass.failed.into_keys().collect();
    }

    // The manifest lists the metadata first, then the rest as checksums.txt does.
    let layers: Vec<OciDescriptor> = [DEFINITION, SIGNATURE, CHECKSUMS]
        .into_iter()
        .filter(|title| metadata.contains_key(*title))
        .map(str::to_owned)
        .chain(verified.listed.keys().cloned())
        .filter_map(|title| {
            let size = sizes.get(&title).copied().unwrap_or(0);
            digests.get(&title).map(|digest| layer(&title, digest, size))
        })
        .collect();
    let config = PackageConfig {
        architecture: definition.metadata.architecture.clone().unwrap_or_default(),
        oci_version: "1.1.0".into(),
        annotations: annotations(&definition),
    };
    let config_bytes = serde_json::to_vec(&config).map_err(|error| malformed("config", error))?;
    let config_digest = Digest::of(&config_bytes);
    retry("config", || async {
        client
            .push_blob(&reference, config_bytes.clone(), config_digest.as_str())
            .await
            .map(|_| ())
            .map_err(|error| registry_error("config", error))
    })
    .await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": JACKAL_PACKAGE,
        "config": {"mediaType": JACKAL_CONFIG, "digest": config_digest, "size": config_bytes.len()},
        "layers": layers,
        "annotations": annotations(&definition),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|error| malformed("manifest", error))?;
    let digest = Digest::of(&manifest_bytes);
    let content_type = reqwest::header::HeaderValue::from_static(OCI_MANIFEST);
    retry(&reference_text, || async {
        client
            .push_manifest_raw(&reference, manifest_bytes.clone(), content_type.clone())
            .await
            .map(|_| ())
            .map_err(|error| registry_error(&reference_text, error))
    })
    .await?;
    Ok(Published {
        reference: url,
        digest,
        pushed: digests.len() - present.len(),
        skipped: present.len(),
    })
}

fn layer(title: &str, digest: &Digest, size: u64) -> OciDescriptor {
    OciDescriptor {
        media_type: JACKAL_LAYER.into(),
        digest: digest.to_string(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        annotations: Some(BTreeMap::from([(TITLE.to_owned(), title.to_owned())])),
        ..OciDescriptor::default()
    }
}

/// What one pass over the archive did.
struct Pass {
    /// The size of every file in the archive (from the headers).
    sizes: BTreeMap<String, u64>,
    /// Uploads that failed, with the registry's answer.
    failed: BTreeMap<String, RegistryError>,
}

/// A file the archive reader hands to the uploader: its title, size and a stream of its bytes.
struct Upload {
    title: String,
    size: u64,
    chunks: mpsc::Receiver<Result<bytes::Bytes, OciDistributionError>>,
}

/// One pass over `package`: a blocking reader walks the archive (refusing what `extract` refuses,
/// and files not in `listed`), hashing the files in `wanted` as it streams them to uploads run
/// here, a few at a time. A file whose bytes do not match `listed` stops the pass.
async fn stream_pass(
    package: &Path,
    listed: &BTreeMap<String, Digest>,
    wanted: &BTreeSet<String>,
    client: &oci_client::Client,
    reference: &Reference,
    progress: &dyn Progress,
) -> Result<Pass, OciError> {
    let (uploads, next) = mpsc::channel::<Upload>(1);
    let reader = {
        let (package, listed, wanted) = (package.to_owned(), listed.clone(), wanted.clone());
        tokio::task::spawn_blocking(move || read_archive(&package, &listed, &wanted, uploads))
    };
    // Up to PARALLEL uploads overlap: the reader streams one file while earlier ones finish
    // (the registry commits and checks each blob at its end), and small files pile up in their
    // channels without waiting for each other. Memory stays bounded by the channels.
    let failed: BTreeMap<String, RegistryError> = next
        .map(|upload| async move {
            progress.expect_bytes(upload.size);
            // The reader hands over only listed files.
            let digest = listed.get(&upload.title).map(Digest::as_str).unwrap_or_default();
            let (moved, mut reports) = mpsc::unbounded::<u64>();
            let chunks = upload.chunks.inspect(move |chunk| {
                if let Ok(bytes) = chunk {
                    let _ = moved.unbounded_send(bytes.len() as u64);
                }
            });
            let push = client.push_blob_stream(reference, chunks, digest, Some(upload.size));
            let report = async {
                while let Some(bytes) = reports.next().await {
                    progress.moved_bytes(bytes);
                }
            };
            let (result, ()) = futures::join!(push, report);
            result
                .err()
                .map(|error| (upload.title, RegistryError::from(error)))
        })
        .buffer_unordered(PARALLEL)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    let sizes = reader.await.map_err(|error| OciError::Io {
        path: package.to_owned(),
        source: std::io::Error::other(error),
    })??;
    Ok(Pass { sizes, failed })
}

/// The blocking half of a pass: returns the size of every file.
fn read_archive(
    package: &Path,
    listed: &BTreeMap<String, Digest>,
    wanted: &BTreeSet<String>,
    mut uploads: mpsc::Sender<Upload>,
) -> Result<BTreeMap<String, u64>, OciError> {
    let mut sizes = BTreeMap::new();
    archive::visit(package, &Limits::default(), false, |entry| {
        let Entry::File { path, size, content } = entry else {
            return Ok(());
        };
        sizes.insert(path.to_owned(), size);
        if [DEFINITION, SIGNATURE, CHECKSUMS].contains(&path) {
            return Ok(());
        }
        let Some(expected) = listed.get(path) else {
            return Err(OciError::Verify(VerifyError::Unexpected(path.to_owned())));
        };
        if !wanted.contains(path) {
            return Ok(());
        }
        let (mut chunks, receiver) = mpsc::channel(2);
        let upload = Upload {
            title: path.to_owned(),
            size,
            chunks: receiver,
        };
        if futures::executor::block_on(uploads.send(upload)).is_err() {
            return Ok(());
        }
        let mut hasher = Sha256::new();
        loop {
            let mut buffer = vec![0u8; CHUNK];
            let read = content
                .read(&mut buffer)
                .map_err(|error| OciError::Archive(archive::read_failed(package, path, &error)))?;
            if read == 0 {
                break;
            }
            buffer.truncate(read);
            hasher.update(&buffer);
            if futures::executor::block_on(chunks.send(Ok(bytes::Bytes::from(buffer)))).is_err() {
                // The upload failed and was recorded; the rest of this file is skipped.
                return Ok(());
            }
        }
        let actual = Digest::from_hasher(hasher);
        if &actual != expected {
            // Fail the upload before it completes, then the publish.
            let _ = futures::executor::block_on(chunks.send(Err(OciDistributionError::GenericError(Some(
                format!("{path} does not match checksums.txt"),
            )))));
            return Err(OciError::Verify(VerifyError::FileMismatch {
                path: path.to_owned(),
                expected: expected.clone(),
                actual,
            }));
        }
        Ok(())
    })?;
    for path in listed.keys() {
        if !sizes.contains_key(path) {
            return Err(OciError::Verify(VerifyError::FileMissing(path.clone())));
        }
    }
    Ok(sizes)
}
