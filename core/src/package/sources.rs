//! Getting a component's content in: local files, URLs (sha256-pinned where the definition says),
//! Helm charts from a local directory or `.tgz`, a Helm repository index, or an `oci://`
//! registry. Everything streams to disk; nothing is held whole in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt;
use oci_client::manifest::OciDescriptor;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::oci::media_type::HELM_CHART_LAYER;
use crate::oci::{Digest, OciUrl};
use crate::registry::error::{http_category, status_category};
use crate::registry::{self, Access, Categorize, ErrorCategory, RegistryError};

/// Why content could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Something is wrong with the named thing.
    #[error("{what}: {message}")]
    Failed {
        /// The file, URL or chart.
        what: String,
        /// How a caller should react.
        category: ErrorCategory,
        /// What went wrong.
        message: String,
    },
}

impl Categorize for SourceError {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Failed { category, .. } => *category,
        }
    }
}

/// A cause of a failed fetch, which knows its category.
trait Cause: ToString {
    fn category(&self) -> ErrorCategory;
}

impl Cause for io::Error {
    fn category(&self) -> ErrorCategory {
        if self.kind() == io::ErrorKind::NotFound {
            ErrorCategory::NotFound
        } else {
            ErrorCategory::Io
        }
    }
}

impl Cause for reqwest::Error {
    fn category(&self) -> ErrorCategory {
        http_category(self)
    }
}

impl Cause for oci_client::errors::OciDistributionError {
    fn category(&self) -> ErrorCategory {
        RegistryError::from(self).category
    }
}

impl Cause for super::archive::ArchiveError {
    fn category(&self) -> ErrorCategory {
        Categorize::category(self)
    }
}

impl Cause for crate::oci::OciUrlError {
    fn category(&self) -> ErrorCategory {
        ErrorCategory::Invalid
    }
}

/// Text describing malformed input.
impl Cause for String {
    fn category(&self) -> ErrorCategory {
        ErrorCategory::Invalid
    }
}

fn failed(what: impl Into<String>, cause: impl Cause) -> SourceError {
    failed_as(what, cause.category(), cause)
}

fn failed_as(what: impl Into<String>, category: ErrorCategory, message: impl ToString) -> SourceError {
    SourceError::Failed {
        what: what.into(),
        category,
        message: registry::error::without_queries(&message.to_string()),
    }
}

/// Whether `source` is a URL rather than a local path.
pub fn is_url(source: &str) -> bool {
    source.starts_with("https://") || source.starts_with("http://")
}

/// Splits `https://host/file.yaml@sha256:<hex>` (or `@<hex>`) into the URL and the pinned sha256.
pub fn pinned(source: &str) -> (&str, Option<&str>) {
    match source.rsplit_once('@') {
        Some((url, pin)) if is_url(source) => {
            let hex = pin.strip_prefix("sha256:").unwrap_or(pin);
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                (url, Some(hex))
            } else {
                (source, None)
            }
        }
        _ => (source, None),
    }
}

/// Copies a local file or downloads a URL to `target`, checking `sha256` when given; returns the
/// content's sha256.
pub async fn fetch(
    source: &str,
    base: &Path,
    target: &Path,
    sha256: Option<&str>,
) -> Result<Digest, SourceError> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|error| failed(parent.display().to_string(), error))?;
    }
    let actual = if is_url(source) {
        download(source, target).await?
    } else {
        copy(&base.join(source), target)?
    };
    // Pins come as bare hex (Helm repository indexes, `files[].shasum`) or prefixed.
    if let Some(expected) = sha256.map(|pin| pin.strip_prefix("sha256:").unwrap_or(pin))
        && !expected.eq_ignore_ascii_case(actual.hex())
    {
        let _ = std::fs::remove_file(target);
        return Err(failed_as(
            source,
            ErrorCategory::Integrity,
            format!("sha256 is {}, but the definition pins {expected}", actual.hex()),
        ));
    }
    Ok(actual)
}

fn copy(source: &Path, target: &Path) -> Result<Digest, SourceError> {
    let what = source.display().to_string();
    let mut input = File::open(source).map_err(|error| failed(&what, error))?;
    let mut output = io::BufWriter::new(
        File::create(target).map_err(|error| failed(target.display().to_string(), error))?,
    );
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = input.read(&mut buffer).map_err(|error| failed(&what, error))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        output
            .write_all(&buffer[..read])
            .map_err(|error| failed(target.display().to_string(), error))?;
    }
    output
        .flush()
        .map_err(|error| failed(target.display().to_string(), error))?;
    Ok(Digest::from_hasher(hasher))
}

fn http() -> Result<reqwest::Client, SourceError> {
    registry::ensure_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("jackal/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| failed("HTTP client", error))
}

async fn download(url: &str, target: &Path) -> Result<Digest, SourceError> {
    let response = http()?
        .get(url)
        .send()
        .await
        .map_err(|error| failed(url, error))?;
    if !response.status().is_success() {
        return Err(failed_as(
            url,
            status_category(response.status().as_u16()),
            format!("the server answered {}", response.status()),
        ));
    }
    let mut output = io::BufWriter::new(
        File::create(target).map_err(|error| failed(target.display().to_string(), error))?,
    );
    let mut hasher = Sha256::new();
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|error| failed(url, error))?;
        hasher.update(&piece);
        output
            .write_all(&piece)
            .map_err(|error| failed(target.display().to_string(), error))?;
    }
    output
        .flush()
        .map_err(|error| failed(target.display().to_string(), error))?;
    Ok(Digest::from_hasher(hasher))
}

/// `name` and `version` from a chart's `Chart.yaml`.
#[derive(Deserialize)]
struct ChartMetadata {
    name: String,
    version: String,
}

/// Packs a chart directory into `<directory>/<name>-<version>.tgz` like `helm package`
/// (entries under `<name>/`, deterministic); returns the file.
pub fn package_chart_directory(chart: &Path, directory: &Path) -> Result<PathBuf, SourceError> {
    let what = chart.display().to_string();
    let metadata_text = std::fs::read_to_string(chart.join("Chart.yaml"))
        .map_err(|error| failed(&what, format!("Chart.yaml: {error}")))?;
    let metadata: ChartMetadata =
        lenient_yaml(&metadata_text).map_err(|error| failed(format!("{what}/Chart.yaml"), error))?;
    let target = directory.join(format!("{}-{}.tgz", metadata.name, metadata.version));
    let mut files = Vec::new();
    super::archive::collect(chart, chart, &mut files).map_err(|error| failed(&what, error))?;
    files.sort();
    let output = File::create(&target).map_err(|error| failed(target.display().to_string(), error))?;
    let mut builder = tar::Builder::new(GzEncoder::new(output, Compression::default()));
    for relative in files {
        let path = chart.join(&relative);
        let mut file = File::open(&path).map_err(|error| failed(path.display().to_string(), error))?;
        let size = file
            .metadata()
            .map_err(|error| failed(path.display().to_string(), error))?
            .len();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        builder
            .append_data(&mut header, format!("{}/{relative}", metadata.name), &mut file)
            .map_err(|error| failed(path.display().to_string(), error))?;
    }
    builder
        .into_inner()
        .and_then(GzEncoder::finish)
        .map_err(|error| failed(target.display().to_string(), error))?;
    Ok(target)
}

/// Parses YAML that may carry fields we do not model (Chart.yaml, Helm indexes).
fn lenient_yaml<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|error| error.to_string())
}

/// Downloads chart `name` at `version` from the Helm repository at `url` into `directory`.
pub async fn fetch_repository_chart(
    url: &str,
    name: &str,
    version: &str,
    directory: &Path,
) -> Result<PathBuf, SourceError> {
    #[derive(Deserialize)]
    struct Index {
        entries: BTreeMap<String, Vec<Entry>>,
    }
    #[derive(Deserialize)]
    struct Entry {
        version: String,
        #[serde(default)]
        urls: Vec<String>,
        #[serde(default)]
        digest: Option<String>,
    }
    let base = url.trim_end_matches('/');
    let index_url = format!("{base}/index.yaml");
    let response = http()?
        .get(&index_url)
        .send()
        .await
        .map_err(|error| failed(&index_url, error))?;
    if !response.status().is_success() {
        return Err(failed_as(
            &index_url,
            status_category(response.status().as_u16()),
            format!("the server answered {}", response.status()),
        ));
    }
    let text = response.text().await.map_err(|error| failed(&index_url, error))?;
    let index: Index = lenient_yaml(&text).map_err(|error| failed(&index_url, error))?;
    let versions = index.entries.get(name).ok_or_else(|| {
        failed_as(
            &index_url,
            ErrorCategory::NotFound,
            format!("has no chart named {name}"),
        )
    })?;
    let entry = versions
        .iter()
        .find(|entry| entry.version == version)
        .ok_or_else(|| {
            failed_as(
                &index_url,
                ErrorCategory::NotFound,
                format!(
                    "has no version {version} of {name} (it has {})",
                    versions
                        .iter()
                        .map(|e| e.version.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    let chart_url = entry
        .urls
        .first()
        .ok_or_else(|| failed(&index_url, format!("lists no URL for {name} {version}")))?;
    let chart_url = if is_url(chart_url) {
        chart_url.clone()
    } else {
        format!("{base}/{}", chart_url.trim_start_matches("./"))
    };
    let target = directory.join(format!("{name}-{version}.tgz"));
    fetch(&chart_url, directory, &target, entry.digest.as_deref()).await?;
    Ok(target)
}

/// Pulls chart `url` (`oci://REGISTRY/REPOSITORY`) at `version` into `directory`.
pub async fn fetch_oci_chart(
    url: &str,
    name: &str,
    version: &str,
    directory: &Path,
    access: &Access,
) -> Result<PathBuf, SourceError> {
    let chart = OciUrl::parse(url)
        .map_err(|error| failed(url, error))?
        .with_tag(version);
    let reference = chart.reference();
    let client = access.client(&[chart.registry().to_owned()]);
    let auth = access.auth(chart.registry());
    let (manifest, _) = client
        .pull_image_manifest(&reference, &auth)
        .await
        .map_err(|error| failed(url, error))?;
    let layer = manifest
        .layers
        .iter()
        .find(|layer| layer.media_type == HELM_CHART_LAYER)
        .ok_or_else(|| {
            failed(
                url,
                format!("{chart} is not a Helm chart (no {HELM_CHART_LAYER} layer)"),
            )
        })?;
    let target = directory.join(format!("{name}-{version}.tgz"));
    let file = tokio::fs::File::create(&target)
        .await
        .map_err(|error| failed(target.display().to_string(), error))?;
    let descriptor: &OciDescriptor = layer;
    client
        .pull_blob(&reference, descriptor, file)
        .await
        .map_err(|error| failed(url, error))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_split_from_urls() {
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            pinned(&format!("https://x/y.yaml@sha256:{hex}")),
            ("https://x/y.yaml", Some(hex))
        );
        assert_eq!(
            pinned(&format!("https://x/y.yaml@{hex}")),
            ("https://x/y.yaml", Some(hex))
        );
        assert_eq!(pinned("https://user@x/y.yaml"), ("https://user@x/y.yaml", None));
        assert_eq!(pinned("local@file.yaml"), ("local@file.yaml", None));
    }
}
