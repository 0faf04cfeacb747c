//! The injector payload, writing side: images from OCI layouts packed into one archive and cut
//! into chunks small enough for a ConfigMap each. The injector binary is the reading side; the
//! format is recorded in `docs/adr/0005-injector-payload.md`.
//!
//! - Archive: uncompressed ustar with `oci-layout`, `index.json` and `blobs/sha256/<hex>` (each
//!   blob once, sorted by digest), root-owned, mtime 0: the same images give the same bytes.
//!   Layers are already compressed, so compressing again would cost time and injector size.
//! - `index.json` lists each image under its full reference in `org.opencontainers.image.ref.name`.
//! - Chunks: `payload-00000`, `payload-00001`, …, ordered by number; the payload digest is the
//!   sha256 of the archive, i.e. of the chunks concatenated in order.
//!
//! Everything streams: memory holds one chunk, whatever the image sizes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::layout::{Descriptor, Layout, LayoutError};
use crate::oci::Digest;
use crate::oci::media_type::OCI_INDEX;

/// File-name prefix of every chunk (and ConfigMap key).
pub const CHUNK_PREFIX: &str = "payload-";
/// Default chunk size: 768 KiB, as the original tool (gentle on small control planes).
pub const DEFAULT_CHUNK_SIZE: usize = 786_432;
/// Largest chunk that still fits a ConfigMap (1 MiB of data) with room for its metadata.
pub const MAX_CHUNK_SIZE: usize = 1_000_000;
/// Smallest chunk size accepted.
pub const MIN_CHUNK_SIZE: usize = 512;

/// The name of chunk `index`.
pub fn chunk_name(index: usize) -> String {
    format!("{CHUNK_PREFIX}{index:05}")
}

/// One image to put into the payload.
#[derive(Clone, Debug)]
pub struct SourceImage {
    /// The layout holding it.
    pub layout: Layout,
    /// Its full reference, as the injector will serve it (`docker.io/library/registry:3.1.2`).
    pub reference: String,
}

/// What was built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// sha256 of the whole payload.
    pub digest: Digest,
    /// Bytes in the payload.
    pub size: u64,
    /// Number of chunks.
    pub chunks: usize,
    /// Number of distinct blobs.
    pub blobs: usize,
}

/// Why a payload could not be built.
// Variant fields are named in the messages; documenting each again adds nothing.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// A source layout cannot be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The chunk size is out of bounds.
    #[error("chunk size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} bytes")]
    ChunkSize(usize),
    /// No image was given.
    #[error("a payload needs at least one image")]
    Empty,
    /// A blob file cannot be read.
    #[error("failed to read blob {digest} ({path}): {source}")]
    ReadBlob {
        digest: Digest,
        path: PathBuf,
        source: io::Error,
    },
    /// A blob's content does not match its digest or size: the source layout is corrupt.
    #[error("blob {digest} in {path} is corrupt: its content hashes to {actual} ({size} bytes)")]
    CorruptBlob {
        digest: Digest,
        path: PathBuf,
        actual: Digest,
        size: u64,
    },
    /// Writing the archive or a chunk failed.
    #[error("failed to write the payload: {0}")]
    Write(#[source] io::Error),
}

/// Builds the payload of `images`, handing each chunk (its index and bytes) to `sink` in order.
pub fn build(
    images: &[SourceImage],
    chunk_size: usize,
    sink: impl FnMut(usize, &[u8]) -> io::Result<()>,
) -> Result<Summary, PayloadError> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(PayloadError::ChunkSize(chunk_size));
    }
    if images.is_empty() {
        return Err(PayloadError::Empty);
    }
    let mut roots = Vec::new();
    let mut blobs: BTreeMap<Digest, (Layout, Descriptor)> = BTreeMap::new();
    for image in images {
        let mut root = image.layout.find(&image.reference)?;
        root.annotations.clear();
        root.annotations.insert(
            crate::layout::REFERENCE_ANNOTATION.to_owned(),
            image.reference.clone(),
        );
        for descriptor in image.layout.reachable(&root)? {
            blobs
                .entry(descriptor.digest.clone())
                .or_insert_with(|| (image.layout.clone(), descriptor));
        }
        roots.push(root);
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": roots,
    });
    let index = serde_json::to_vec(&index).map_err(|error| PayloadError::Write(error.into()))?;

    let mut archive = tar::Builder::new(ChunkWriter::new(chunk_size, sink));
    append(
        &mut archive,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#.len() as u64,
        &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
    )?;
    append(&mut archive, "index.json", index.len() as u64, index.as_slice())?;
    for (digest, (layout, descriptor)) in &blobs {
        let path = layout.blob_path(digest);
        let read_error = |source| PayloadError::ReadBlob {
            digest: digest.clone(),
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        let mut hashing = HashingReader {
            inner: file,
            hasher: Sha256::new(),
        };
        append(
            &mut archive,
            &format!("blobs/sha256/{}", digest.hex()),
            size,
            &mut hashing,
        )?;
        let actual = Digest::from_hasher(hashing.hasher);
        if actual != *digest || size != descriptor.size {
            return Err(PayloadError::CorruptBlob {
                digest: digest.clone(),
                path,
                actual,
                size,
            });
        }
    }
    let writer = archive.into_inner().map_err(PayloadError::Write)?;
    let (digest, size, chunks) = writer.finish().map_err(PayloadError::Write)?;
    Ok(Summary {
        digest,
        size,
        chunks,
        blobs: blobs.len(),
    })
}

/// Builds the payload into `directory` as chunk files. The chunks are written into a sibling
/// directory first and moved into place at the end, so a failure never leaves a partial payload.
pub fn write_chunks(
    images: &[SourceImage],
    chunk_size: usize,
    directory: &Path,
) -> Result<Summary, PayloadError> {
    let staging = directory.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(PayloadError::Write)?;
    let result = build(images, chunk_size, |index, bytes| {
        std::fs::write(staging.join(chunk_name(index)), bytes)
    });
    match result {
        Ok(summary) => {
            let _ = std::fs::remove_dir_all(directory);
            std::fs::rename(&staging, directory).map_err(PayloadError::Write)?;
            Ok(summary)
        }
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(error)
        }
    }
}

fn append<W: Write>(
    archive: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl Read,
) -> Result<(), PayloadError> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    archive
        .append_data(&mut header, path, data)
        .map_err(PayloadError::Write)
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        Ok(read)
    }
}

/// Cuts what is written into chunks of a fixed size and hashes it all.
struct ChunkWriter<F> {
    chunk_size: usize,
    buffer: Vec<u8>,
    next: usize,
    hasher: Sha256,
    size: u64,
    sink: F,
}

impl<F: FnMut(usize, &[u8]) -> io::Result<()>> ChunkWriter<F> {
    fn new(chunk_size: usize, sink: F) -> Self {
        Self {
            chunk_size,
            buffer: Vec::with_capacity(chunk_size),
            next: 0,
            hasher: Sha256::new(),
            size: 0,
            sink,
        }
    }

    fn emit(&mut self) -> io::Result<()> {
        (self.sink)(self.next, &self.buffer)?;
        self.next += 1;
        self.buffer.clear();
        Ok(())
    }

    /// Emits the last, partial chunk; returns the digest, the size and the chunk count.
    fn finish(mut self) -> io::Result<(Digest, u64, usize)> {
        if !self.buffer.is_empty() {
            self.emit()?;
        }
        Ok((Digest::from_hasher(self.hasher), self.size, self.next))
    }
}

impl<F: FnMut(usize, &[u8]) -> io::Result<()>> Write for ChunkWriter<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = (self.chunk_size - self.buffer.len()).min(data.len());
        self.buffer.extend_from_slice(&data[..take]);
        self.hasher.update(&data[..take]);
        self.size += take as u64;
        if self.buffer.len() == self.chunk_size {
            self.emit()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
