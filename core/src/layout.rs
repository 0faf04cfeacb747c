//! Reading OCI image layouts on disk: finding an image by its reference annotation and walking
//! every blob it reaches (manifests, indexes, configs, layers), without loading layers into memory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::oci::Descriptor;
use crate::oci::media_type::{self, OCI_INDEX};
use crate::oci::{Digest, Document};

/// Annotation carrying an image's reference in an OCI layout's `index.json`.
pub const REFERENCE_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Manifests and indexes larger than this are refused: they are read into memory.
const MAX_DOCUMENT: u64 = 4 << 20;

/// Why a layout cannot be read.
// Variant fields are named in the messages; documenting each again adds nothing.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file of the layout cannot be read.
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// A manifest or index is not valid JSON of the expected shape.
    #[error("{path} is not a valid OCI document: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A manifest or index is implausibly large.
    #[error("{path} is {size} bytes, larger than any manifest should be")]
    TooLarge { path: PathBuf, size: u64 },
    /// No image in the layout carries the reference.
    #[error("no image {reference:?} in the OCI layout {layout}")]
    ImageNotFound { reference: String, layout: PathBuf },
    /// An index none of whose manifests is in the layout.
    #[error("index {digest} has none of its manifests in the OCI layout {layout}")]
    EmptyIndex { digest: Digest, layout: PathBuf },
}

/// An OCI image layout directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens the layout at `root` (checked lazily, when read).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The descriptors listed in `index.json`.
    pub fn index(&self) -> Result<Vec<Descriptor>, LayoutError> {
        let index: Document = read_json(&self.root.join("index.json"))?;
        Ok(index.manifests)
    }

    /// The image whose reference annotation is `reference` (either the full reference or, as
    /// tools like skopeo write it, just the tag).
    pub fn find(&self, reference: &str) -> Result<Descriptor, LayoutError> {
        let tag = reference
            .rsplit_once(':')
            .map(|(_, tag)| tag)
            .filter(|tag| !tag.contains('/'));
        let index = self.index()?;
        let annotation = |descriptor: &Descriptor| descriptor.annotations.get(REFERENCE_ANNOTATION).cloned();
        index
            .iter()
            .find(|d| annotation(d).as_deref() == Some(reference))
            .or_else(|| {
                index
                    .iter()
                    .find(|d| tag.is_some() && annotation(d).as_deref() == tag)
            })
            .cloned()
            .ok_or_else(|| LayoutError::ImageNotFound {
                reference: reference.to_owned(),
                layout: self.root.clone(),
            })
    }

    /// The path of a blob.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// Every blob `root` reaches, itself included, in a stable order (foreign layers excluded).
    ///
    /// An index may be sparse: an image pinned by its index digest is packaged with the index as
    /// it is (so the digest still resolves) but only its target platform's manifest, so the
    /// children that are absent are skipped. An index with none of its children is an error.
    pub fn reachable(&self, root: &Descriptor) -> Result<Vec<Descriptor>, LayoutError> {
        walk(
            root,
            &self.root,
            |digest| Ok(self.blob_path(digest).exists()),
            |digest| read_json(&self.blob_path(digest)),
        )
    }
}

/// Like [`Layout::reachable`], over manifests and indexes already in memory (by digest), for a
/// layout read as a stream; `layout` names it in errors.
pub fn reachable_in(
    documents: &BTreeMap<Digest, Vec<u8>>,
    root: &Descriptor,
    layout: &Path,
) -> Result<Vec<Descriptor>, LayoutError> {
    let path = |digest: &Digest| blob_path(layout, digest);
    walk(
        root,
        layout,
        |digest| Ok(documents.contains_key(digest)),
        |digest| {
            let bytes = documents.get(digest).ok_or_else(|| LayoutError::Read {
                path: path(digest),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
            parse_json(bytes, &path(digest))
        },
    )
}

/// The walk behind both: `present` says whether a manifest is there, `read` parses it.
fn walk(
    root: &Descriptor,
    layout: &Path,
    present: impl Fn(&Digest) -> Result<bool, LayoutError>,
    read: impl Fn(&Digest) -> Result<Document, LayoutError>,
) -> Result<Vec<Descriptor>, LayoutError> {
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(descriptor) = pending.pop() {
        if descriptor.is_foreign() || !seen.insert(descriptor.digest.clone()) {
            continue;
        }
        if media_type::is_manifest(&descriptor.media_type) {
            let document = read(&descriptor.digest)?;
            pending.extend(document.config);
            pending.extend(document.layers);
            if !document.manifests.is_empty() {
                let mut held = Vec::new();
                for child in document.manifests {
                    if present(&child.digest)? {
                        held.push(child);
                    }
                }
                if held.is_empty() {
                    return Err(LayoutError::EmptyIndex {
                        digest: descriptor.digest,
                        layout: layout.to_owned(),
                    });
                }
                pending.extend(held);
            }
        }
        found.push(descriptor);
    }
    Ok(found)
}

/// The path of the blob `digest` in the layout at `root`.
pub fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs/sha256").join(digest.hex())
}

/// The descriptors an `index.json` read from `bytes` lists; `path` names it in errors.
pub fn parse_index(bytes: &[u8], path: &Path) -> Result<Vec<Descriptor>, LayoutError> {
    let index: Document = parse_json(bytes, path)?;
    Ok(index.manifests)
}

fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], path: &Path) -> Result<T, LayoutError> {
    serde_json::from_slice(bytes).map_err(|source| LayoutError::Parse {
        path: path.to_owned(),
        source,
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, LayoutError> {
    let read_error = |source| LayoutError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_DOCUMENT {
        return Err(LayoutError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    parse_json(&bytes, path)
}

/// Writes an OCI image layout: blobs as they come, `index.json` at the end (atomically), so a
/// reader never sees an index pointing at missing blobs.
#[derive(Debug)]
pub struct LayoutWriter {
    layout: Layout,
    manifests: Vec<Descriptor>,
}

impl LayoutWriter {
    /// Creates (or extends) a layout at `root`.
    pub fn create(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let layout = Layout::new(root);
        std::fs::create_dir_all(layout.root.join("blobs/sha256"))?;
        std::fs::write(
            layout.root.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        Ok(Self {
            layout,
            manifests: Vec::new(),
        })
    }

    /// Stores `bytes` as a blob and returns its descriptor.
    pub fn write_blob(&self, media_type: &str, bytes: &[u8]) -> std::io::Result<Descriptor> {
        let descriptor = Descriptor::of(media_type, bytes);
        let path = self.layout.blob_path(&descriptor.digest);
        if !path.exists() {
            let partial = path.with_extension("partial");
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, &path)?;
        }
        Ok(descriptor)
    }

    /// Lists `descriptor` in `index.json`, under `reference` if given.
    pub fn add_to_index(&mut self, mut descriptor: Descriptor, reference: Option<&str>) {
        if let Some(reference) = reference {
            descriptor
                .annotations
                .insert(REFERENCE_ANNOTATION.to_owned(), reference.to_owned());
        }
        self.manifests.push(descriptor);
    }

    /// Writes `index.json` and returns the finished layout.
    pub fn finish(self) -> std::io::Result<Layout> {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": self.manifests,
        });
        let path = self.layout.root.join("index.json");
        let partial = self.layout.root.join("index.json.partial");
        std::fs::write(&partial, serde_json::to_vec(&index)?)?;
        std::fs::rename(&partial, &path)?;
        Ok(self.layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::oci::media_type::{OCI_CONFIG, OCI_INDEX as INDEX, OCI_LAYER, OCI_MANIFEST as MANIFEST};

    fn scratch(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("jackal-layout-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        path
    }

    /// An image manifest over one layer; returns its descriptor and the layer's.
    fn image(writer: &LayoutWriter, content: &[u8]) -> (Descriptor, Descriptor) {
        let layer = writer.write_blob(OCI_LAYER, content).expect("layer");
        let config = writer.write_blob(OCI_CONFIG, b"{}").expect("config");
        let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]});
        let manifest = writer
            .write_blob(MANIFEST, &serde_json::to_vec(&manifest).expect("json"))
            .expect("manifest");
        (manifest, layer)
    }

    #[test]
    fn a_sparse_index_reaches_only_the_platforms_it_holds() {
        let root = scratch("sparse");
        let writer = LayoutWriter::create(&root).expect("layout");
        let (amd64, amd64_layer) = image(&writer, b"amd64 layer");
        let (arm64, arm64_layer) = image(&writer, b"arm64 layer");
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [amd64, arm64]});
        let index = writer
            .write_blob(INDEX, &serde_json::to_vec(&index).expect("json"))
            .expect("index");
        let layout = writer.finish().expect("finish");

        let digests = |found: Vec<Descriptor>| found.into_iter().map(|d| d.digest).collect::<BTreeSet<_>>();
        let full = digests(layout.reachable(&index).expect("full index"));
        assert!(full.contains(&arm64_layer.digest) && full.contains(&amd64_layer.digest));

        // Without the arm64 manifest, the index is sparse: the rest is still reached.
        std::fs::remove_file(layout.blob_path(&arm64.digest)).expect("remove");
        let sparse = digests(layout.reachable(&index).expect("sparse index"));
        assert!(sparse.contains(&index.digest) && sparse.contains(&amd64.digest));
        assert!(sparse.contains(&amd64_layer.digest));
        assert!(!sparse.contains(&arm64.digest) && !sparse.contains(&arm64_layer.digest));

        // With no platform left, the index names itself.
        std::fs::remove_file(layout.blob_path(&amd64.digest)).expect("remove");
        let error = layout.reachable(&index).expect_err("empty index");
        assert!(
            error
                .to_string()
                .contains(&format!("index {} has none of its manifests", index.digest)),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
