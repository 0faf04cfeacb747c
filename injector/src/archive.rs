//! The payload archive: one pass over the reassembled chunks computes the sha256 and indexes the
//! tar entries in place, refusing anything that is not a plain OCI image layout.
//!
//! The format (written by `jackal-core`'s payload module): an uncompressed ustar archive holding
//! `oci-layout`, `index.json` and `blobs/sha256/<hex>` as regular files, optionally with their
//! directories and a `./` prefix. Links, devices, FIFOs, extended headers, absolute or `..` paths,
//! unknown paths, duplicates and truncation are errors that name the entry. Each blob's sha256 is
//! computed in the same pass and must match its name; the archive ends with exactly the
//! end-of-archive marker (two zero blocks), optionally followed by more zeros: a lone zero block
//! between entries, or anything but zeros after the marker, is refused.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::chunks::Chunks;
use crate::error::Error;

const BLOCK: usize = 512;

/// Where one file's bytes lie in the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first byte.
    pub offset: u64,
    /// Number of bytes.
    pub length: u64,
}

/// The files of the payload's OCI layout, by path (`index.json`, `blobs/sha256/<hex>`, …).
pub type Index = HashMap<String, Span>;

/// Why the archive was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// A header's checksum does not match its bytes.
    #[error("the header at offset {0} is corrupt (checksum mismatch)")]
    Checksum(u64),
    /// A header is not ustar.
    #[error("the header at offset {0} is not a ustar header")]
    NotUstar(u64),
    /// A header field cannot be read.
    #[error("entry {entry:?}: unreadable {field} field")]
    Field { entry: String, field: &'static str },
    /// An entry is a link, a device, a FIFO or an extended header.
    #[error("entry {entry:?} is a {kind}: the payload may hold only regular files and directories")]
    Type { entry: String, kind: &'static str },
    /// An entry's path leaves the archive root.
    #[error("entry {0:?} escapes the payload (absolute path or '..')")]
    Escape(String),
    /// An entry is not part of an OCI image layout.
    #[error("entry {0:?} is not part of an OCI image layout (oci-layout, index.json, blobs/sha256/<hex>)")]
    Unexpected(String),
    /// An entry appears twice.
    #[error("entry {0:?} appears twice")]
    Duplicate(String),
    /// The archive ends inside an entry or without its end marker.
    #[error("the archive is truncated{0}")]
    Truncated(String),
    /// A blob's bytes do not hash to the digest in its name.
    #[error("entry {entry:?} does not hold the blob its name promises: its bytes hash to sha256:{actual}")]
    BlobDigest { entry: String, actual: String },
    /// A single zero block sits where an entry header must be.
    #[error(
        "a lone zero block at offset {offset} (after {after}): only the end-of-archive marker, two zero blocks, may stand between headers"
    )]
    LoneZeroBlock { offset: u64, after: String },
    /// Something other than zeros follows the end-of-archive marker.
    #[error("non-zero bytes at offset {0}, after the end-of-archive marker")]
    TrailingData(u64),
}

/// Reads every chunk once, checks the payload's sha256 against `expected` and returns the index.
/// A digest mismatch is reported before any archive error, since it explains them.
pub fn verify(chunks: &Chunks, expected: &str) -> Result<Index, Error> {
    let mut hasher = Sha256::new();
    let mut scanner = Scanner::default();
    chunks.read_all(|piece| {
        hasher.update(piece);
        scanner.feed(piece);
    })?;
    let actual = format!("sha256:{}", hex(&hasher.finalize()));
    if actual != expected {
        return Err(Error::DigestMismatch {
            expected: expected.to_owned(),
            actual,
            chunks: chunks.count(),
            bytes: chunks.total_size(),
        });
    }
    Ok(scanner.finish()?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A streaming tar indexer: fed the archive piece by piece, it keeps only the current header and
/// the hash state of the blob being read.
#[derive(Default)]
struct Scanner {
    header: Vec<u8>,
    /// Bytes of the current entry's data still to read.
    remaining: u64,
    /// Bytes of padding after the current entry's data still to pass over.
    padding: u64,
    /// The blob being read: its running sha256 and the hex digest its name promises.
    blob: Option<(Sha256, String)>,
    /// Offset of the next byte fed.
    position: u64,
    /// Offset of a zero block just read: the first half of the end-of-archive marker, or an error.
    zero_block: Option<u64>,
    done: bool,
    /// Entry whose data is being skipped, for truncation messages.
    current: Option<String>,
    error: Option<ArchiveError>,
    index: Index,
}

impl Scanner {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.error.is_none() {
            if self.done {
                // Writers may pad the archive with zeros to a record size; nothing else may follow.
                if let Some(at) = data.iter().position(|byte| *byte != 0) {
                    self.error = Some(ArchiveError::TrailingData(self.position + at as u64));
                }
                self.position += data.len() as u64;
                return;
            }
            if self.remaining > 0 {
                let step = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                if let Some((hasher, _)) = &mut self.blob {
                    hasher.update(&data[..step]);
                }
                self.remaining -= step as u64;
                self.position += step as u64;
                data = &data[step..];
                if let Err(error) = self.end_of_data() {
                    self.error = Some(error);
                }
                continue;
            }
            if self.padding > 0 {
                let step = usize::try_from(self.padding)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.padding -= step as u64;
                self.position += step as u64;
                data = &data[step..];
                continue;
            }
            let step = (BLOCK - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..step]);
            self.position += step as u64;
            data = &data[step..];
            if self.header.len() == BLOCK {
                let header = std::mem::take(&mut self.header);
                if let Err(error) = self.entry(&header) {
                    self.error = Some(error);
                }
            }
        }
    }

    fn finish(self) -> Result<Index, ArchiveError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if !self.done {
            let detail = match (self.remaining + self.padding, self.current) {
                (missing, Some(entry)) if missing > 0 => {
                    format!(" inside entry {entry:?} ({missing} bytes missing)")
                }
                _ => " (no end-of-archive marker)".to_owned(),
            };
            return Err(ArchiveError::Truncated(detail));
        }
        Ok(self.index)
    }

    /// Handles one 512-byte header that ended just before `self.position`.
    fn entry(&mut self, header: &[u8]) -> Result<(), ArchiveError> {
        let offset = self.position - BLOCK as u64;
        if header.iter().all(|byte| *byte == 0) {
            self.done = self.zero_block.is_some();
            self.zero_block = Some(offset);
            return Ok(());
        }
        if let Some(offset) = self.zero_block {
            let after = match &self.current {
                Some(entry) => format!("entry {entry:?}"),
                None => "the start of the archive".to_owned(),
            };
            return Err(ArchiveError::LoneZeroBlock { offset, after });
        }
        let expected_checksum = octal(&header[148..156]).ok_or(ArchiveError::Checksum(offset))?;
        let actual_checksum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, byte)| {
                if (148..156).contains(&i) {
                    u64::from(b' ')
                } else {
                    u64::from(*byte)
                }
            })
            .sum();
        if expected_checksum != actual_checksum {
            return Err(ArchiveError::Checksum(offset));
        }
        if &header[257..262] != b"ustar" {
            return Err(ArchiveError::NotUstar(offset));
        }
        let name = path(header).ok_or(ArchiveError::Field {
            entry: format!("at offset {offset}"),
            field: "name",
        })?;
        let size = octal(&header[124..136]).ok_or(ArchiveError::Field {
            entry: name.clone(),
            field: "size",
        })?;
        let kind = match header[156] {
            b'0' | 0 => None,
            b'5' => Some("directory"),
            b'1' => {
                return Err(ArchiveError::Type {
                    entry: name,
                    kind: "hard link",
                });
            }
            b'2' => {
                return Err(ArchiveError::Type {
                    entry: name,
                    kind: "symbolic link",
                });
            }
            b'3' => {
                return Err(ArchiveError::Type {
                    entry: name,
                    kind: "character device",
                });
            }
            b'4' => {
                return Err(ArchiveError::Type {
                    entry: name,
                    kind: "block device",
                });
            }
            b'6' => {
                return Err(ArchiveError::Type {
                    entry: name,
                    kind: "FIFO",
                });
            }
            b'x' | b'g' => {
                return Err(ArchiveError::Type {
                    entry: name,
                    kind: "PAX extended header",
                });
            }
            b'L' | b'K' => {
                return Err(ArchiveError::Type {
                    entry: name,
                    kind: "GNU long-name header",
                });
            }
            _ => {
                return Err(ArchiveError::Type {
                    entry: name,
                    kind: "file of an unknown type",
                });
            }
        };
        let relative = layout_path(&name)?;
        match kind {
            Some(_) if matches!(relative.as_str(), "" | "blobs" | "blobs/sha256") => {}
            Some(_) => return Err(ArchiveError::Unexpected(name)),
            None if is_layout_file(&relative) => {
                let span = Span {
                    offset: self.position,
                    length: size,
                };
                if let Some(hex) = relative.strip_prefix("blobs/sha256/") {
                    self.blob = Some((Sha256::new(), hex.to_owned()));
                }
                if self.index.insert(relative, span).is_some() {
                    return Err(ArchiveError::Duplicate(name));
                }
            }
            None => return Err(ArchiveError::Unexpected(name)),
        }
        self.remaining = size;
        self.padding = size.div_ceil(BLOCK as u64) * BLOCK as u64 - size;
        self.current = Some(name);
        self.end_of_data()
    }

    /// Once all of a blob's bytes are read, checks them against its name.
    fn end_of_data(&mut self) -> Result<(), ArchiveError> {
        if self.remaining > 0 {
            return Ok(());
        }
        let Some((hasher, expected)) = self.blob.take() else {
            return Ok(());
        };
        let actual = hex(&hasher.finalize());
        if actual != expected {
            return Err(ArchiveError::BlobDigest {
                entry: self.current.clone().unwrap_or_default(),
                actual,
            });
        }
        Ok(())
    }
}

/// The entry's full name: ustar prefix and name joined.
fn path(header: &[u8]) -> Option<String> {
    let field = |bytes: &[u8]| {
        let end = bytes.iter().position(|byte| *byte == 0).unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..end]).ok().map(str::to_owned)
    };
    let name = field(&header[0..100])?;
    let prefix = field(&header[345..500])?;
    Some(if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    })
}

/// A numeric field: octal digits, padded with spaces or NULs. Base-256 sizes (over 8 GiB) are refused.
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field)
        .ok()?
        .trim_matches(|c| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The entry's path relative to the layout root, refusing anything that would leave it.
fn layout_path(name: &str) -> Result<String, ArchiveError> {
    if name.starts_with('/') {
        return Err(ArchiveError::Escape(name.to_owned()));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(ArchiveError::Escape(name.to_owned())),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

fn is_layout_file(path: &str) -> bool {
    match path.strip_prefix("blobs/sha256/") {
        Some(hex) => hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        None => path == "oci-layout" || path == "index.json",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: &str = "blobs/sha256/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// The layout path a blob with `content` must have.
    fn blob_path(content: &[u8]) -> String {
        format!("blobs/sha256/{}", hex(&Sha256::digest(content)))
    }

    /// A ustar header for `name` of `size` bytes and type `kind`, with a valid checksum.
    fn header(name: &str, size: u64, kind: u8) -> Vec<u8> {
        let mut block = vec![0u8; BLOCK];
        block[..name.len()].copy_from_slice(name.as_bytes());
        block[100..107].copy_from_slice(b"0000644");
        block[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        block[156] = kind;
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        block[148..156].copy_from_slice(b"        ");
        let sum: u64 = block.iter().map(|b| u64::from(*b)).sum();
        block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        block
    }

    fn archive(entries: &[(&str, &[u8], u8)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (name, content, kind) in entries {
            bytes.extend(header(name, content.len() as u64, *kind));
            bytes.extend_from_slice(content);
            bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        bytes.extend([0u8; 2 * BLOCK]);
        bytes
    }

    /// Scans `bytes` fed in pieces of `piece` bytes, as chunk boundaries would cut it.
    fn scan(bytes: &[u8], piece: usize) -> Result<Index, ArchiveError> {
        let mut scanner = Scanner::default();
        for part in bytes.chunks(piece) {
            scanner.feed(part);
        }
        scanner.finish()
    }

    #[test]
    fn a_layout_is_indexed_in_place_whatever_the_piece_size() {
        let (layer, empty) = (blob_path(b"layer bytes"), blob_path(b""));
        let mut bytes = archive(&[
            ("./", b"", b'5'),
            ("./oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, b'0'),
            ("./blobs/", b"", b'5'),
            ("./blobs/sha256/", b"", b'5'),
            (&layer, b"layer bytes", b'0'),
            (&empty, b"", b'0'),
            ("index.json", b"{}", 0),
        ]);
        // Zeros after the end-of-archive marker (padding to a record) are fine.
        bytes.extend([0u8; 3 * BLOCK]);
        for piece in [1, 7, 512, 513, 100_000] {
            let index = scan(&bytes, piece).unwrap();
            assert_eq!(index.len(), 4);
            let span = index[&layer];
            let offset = usize::try_from(span.offset).unwrap();
            assert_eq!(&bytes[offset..offset + 11], b"layer bytes");
            assert_eq!(index["index.json"].length, 2);
        }
    }

    #[test]
    fn hostile_entries_are_refused_by_name() {
        let cases: [(&str, u8, &str); 11] = [
            ("../etc/passwd", b'0', "escapes the payload"),
            ("/etc/passwd", b'0', "escapes the payload"),
            ("blobs/../../x", b'0', "escapes the payload"),
            ("blobs/sha256/link", b'2', "is a symbolic link"),
            ("blobs/sha256/hard", b'1', "is a hard link"),
            ("dev", b'3', "is a character device"),
            ("disk", b'4', "is a block device"),
            ("pipe", b'6', "is a FIFO"),
            ("pax", b'x', "PAX extended header"),
            ("etc/passwd", b'0', "is not part of an OCI image layout"),
            ("blobs/sha256/NOTHEX", b'0', "is not part of an OCI image layout"),
        ];
        for (name, kind, message) in cases {
            let error = scan(&archive(&[(name, b"x", kind)]), 512)
                .unwrap_err()
                .to_string();
            assert!(error.contains(message) && error.contains(name), "{name}: {error}");
        }
    }

    #[test]
    fn duplicates_corruption_and_truncation_are_refused() {
        let duplicate = archive(&[("index.json", b"{}", b'0'), ("./index.json", b"{}", b'0')]);
        assert_eq!(
            scan(&duplicate, 512).unwrap_err(),
            ArchiveError::Duplicate("./index.json".into())
        );

        let mut corrupt = archive(&[("index.json", b"{}", b'0')]);
        corrupt[10] ^= 0xff;
        assert_eq!(scan(&corrupt, 512).unwrap_err(), ArchiveError::Checksum(0));

        let whole = archive(&[(&blob_path(&[7u8; 2000]), &[7u8; 2000], b'0')]);
        let error = scan(&whole[..1024], 512).unwrap_err().to_string();
        assert!(
            error.contains("truncated inside entry") && error.contains("1536 bytes missing"),
            "{error}"
        );
        let error = scan(&whole[..whole.len() - BLOCK], 512).unwrap_err().to_string();
        assert!(error.contains("no end-of-archive marker"), "{error}");

        let mut not_tar = vec![1u8; BLOCK];
        not_tar.extend([0u8; 2 * BLOCK]);
        assert_eq!(scan(&not_tar, 512).unwrap_err(), ArchiveError::Checksum(0));
    }

    #[test]
    fn blobs_must_hash_to_their_names() {
        let error = scan(&archive(&[(BLOB, b"layer bytes", b'0')]), 7).unwrap_err();
        assert_eq!(
            error,
            ArchiveError::BlobDigest {
                entry: BLOB.into(),
                actual: hex(&Sha256::digest(b"layer bytes")),
            }
        );
        let error = scan(&archive(&[(BLOB, b"", b'0')]), 512).unwrap_err().to_string();
        assert!(
            error.contains(BLOB) && error.contains("does not hold the blob"),
            "{error}"
        );
    }

    #[test]
    fn lone_zero_blocks_and_trailing_bytes_are_refused() {
        let first = archive(&[("oci-layout", b"{}", b'0')]);
        let second = archive(&[("index.json", b"{}", b'0')]);
        // One zero block between two entries (the first archive's marker cut to one block).
        let mut lone = first[..first.len() - BLOCK].to_vec();
        lone.extend(&second);
        for piece in [1, 512, 4096] {
            assert_eq!(
                scan(&lone, piece).unwrap_err(),
                ArchiveError::LoneZeroBlock {
                    offset: 1024,
                    after: "entry \"oci-layout\"".into()
                }
            );
        }
        let mut leading = vec![0u8; BLOCK];
        leading.extend(&second);
        let error = scan(&leading, 512).unwrap_err().to_string();
        assert!(
            error.contains("offset 0 (after the start of the archive)"),
            "{error}"
        );

        // A whole second archive after the first one's end marker, and a single stray byte.
        let mut appended = first.clone();
        appended.extend(&second);
        assert_eq!(
            scan(&appended, 100).unwrap_err(),
            ArchiveError::TrailingData(first.len() as u64)
        );
        let mut stray = first.clone();
        stray.extend([0u8; 700]);
        stray.push(b'!');
        let error = scan(&stray, 512).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "non-zero bytes at offset {}, after the end-of-archive marker",
                first.len() + 700
            )
        );
    }

    #[test]
    fn the_payload_digest_is_checked_before_the_archive() {
        let bytes = archive(&[("index.json", b"{}", b'0')]);
        let directory = std::env::temp_dir().join(format!("injector-verify-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let (first, second) = bytes.split_at(700);
        std::fs::write(directory.join("payload-0"), first).unwrap();
        std::fs::write(directory.join("payload-1"), second).unwrap();
        let chunks = crate::chunks::Chunks::discover(&directory, Some(2)).unwrap();
        let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));

        let index = verify(&chunks, &digest).unwrap();
        assert_eq!(index["index.json"].length, 2);

        let wrong = format!("sha256:{}", "0".repeat(64));
        let error = verify(&chunks, &wrong).unwrap_err().to_string();
        assert!(
            error.contains(&wrong) && error.contains(&digest) && error.contains("2 chunks"),
            "the mismatch names both digests and the chunks: {error}"
        );

        // A corrupted chunk is reported as a digest mismatch, not as the archive error it causes.
        let mut corrupted = second.to_vec();
        corrupted[0] ^= 0xff;
        std::fs::write(directory.join("payload-1"), &corrupted).unwrap();
        let chunks = crate::chunks::Chunks::discover(&directory, Some(2)).unwrap();
        let error = verify(&chunks, &digest).unwrap_err().to_string();
        assert!(error.contains(&digest) && !error.contains("checksum"), "{error}");
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
