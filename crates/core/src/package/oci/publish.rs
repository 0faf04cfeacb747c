//! `package publish`: the package unpacked and checked, then every file pushed as a layer of
//! one artifact (blobs the registry has are skipped), then the config and the manifest.

use std::collections::BTreeMap;
use std::path::Path;

use futures::stream::{self, StreamExt, TryStreamExt};
use oci_client::Reference;
use oci_client::manifest::OciDescriptor;

use super::{
    ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, OciError, PARALLEL,
    PackageConfig, TITLE, annotations, parse_target, registry_error, retry,
};
use crate::package::archive::{self, Limits};
use crate::package::checksums::{self, file_sha256};
use crate::package::verify::{VerifyError, VerifyOptions, verify_dir};
use crate::package::{CHECKSUMS, DEFINITION, SIGNATURE, hex_of};
use crate::progress::Progress;
use crate::registry::{self, Credentials};

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
        digest: format!("sha256:{}", hex_of(digest)),
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
