//! The package file: a tar archive (zstd-compressed unless the package says otherwise).
//!
//! Writing is deterministic — fixed entry order (`jackal.yaml` first, so it can be read without
//! unpacking the rest), root ownership, mtime 0, fixed compression parameters — so the same
//! content always gives the same bytes, and a package pulled back from a registry is
//! bit-for-bit the one that was published.
//!
//! Reading treats the archive as hostile: only regular files and directories, no absolute or
//! `..` paths, no duplicates, no path that is both a file and a directory, size limits per entry
//! and in total, files created exclusively in a fresh directory that is removed again if anything
//! is wrong. Every refusal names the entry.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use super::{CHECKSUMS, DEFINITION, SIGNATURE};

/// zstd level: fast, and within a few percent of `zstd -3`'s ratio.
const ZSTD_LEVEL: i32 = 3;
/// Worker threads; fixed so the output does not depend on the machine.
const ZSTD_WORKERS: u32 = 2;
/// Bytes each worker compresses at a time. zstd's default for level 3 (8 MiB) made its buffers
/// two thirds of create's memory; 1 MiB jobs cost a fraction of a percent of ratio.
const ZSTD_JOB_SIZE: u32 = 1 << 20;
/// The zstd frame magic.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Bounds on what reading an archive may produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest single entry.
    pub max_entry: u64,
    /// Largest total of all entries.
    pub max_total: u64,
    /// Most entries.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entry: 64 << 30,
            max_total: 1 << 40,
            max_entries: 1_000_000,
        }
    }
}

/// Why an archive cannot be written or read.
// Variant fields are named in the messages; documenting each again adds nothing.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("failed to write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{archive} is truncated or corrupt: {reason}")]
    Corrupt { archive: PathBuf, reason: String },
    #[error("{archive}: entry {entry:?} escapes the package (absolute path or '..')")]
    Escape { archive: PathBuf, entry: String },
    #[error("{archive}: entry {entry:?} is a {kind}: a package may hold only regular files and directories")]
    Special {
        archive: PathBuf,
        entry: String,
        kind: &'static str,
    },
    #[error("{archive}: entry {entry:?} appears twice")]
    Duplicate { archive: PathBuf, entry: String },
    #[error("{archive}: entry {entry:?} is both a file and a directory")]
    Conflict { archive: PathBuf, entry: String },
    #[error("{archive}: entry {entry:?} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        archive: PathBuf,
        entry: String,
        size: u64,
        limit: u64,
    },
    #[error("{archive}: more than {limit} {what}")]
    TooMuch {
        archive: PathBuf,
        what: &'static str,
        limit: u64,
    },
    #[error("{0} already exists: the package is unpacked into a new directory")]
    Exists(PathBuf),
}

impl crate::registry::Categorize for ArchiveError {
    fn category(&self) -> crate::registry::ErrorCategory {
        use crate::registry::ErrorCategory;
        match self {
            Self::Read { .. } | Self::Write { .. } => ErrorCategory::Io,
            Self::Exists(_) => ErrorCategory::Invalid,
            // A truncated, hostile or oversized archive: its content is not what it should be.
            _ => ErrorCategory::Integrity,
        }
    }
}

/// Writes the package directory `source` to `output` (via a `.partial` file renamed at the end).
pub fn write(source: &Path, output: &Path, compress: bool) -> Result<u64, ArchiveError> {
    let files = ordered_files(source)?;
    let partial = output.with_extension("partial");
    let write_error = |error: io::Error| ArchiveError::Write {
        path: partial.clone(),
        source: error,
    };
    let file = File::create(&partial).map_err(write_error)?;
    let result = (|| -> io::Result<()> {
        let buffered = BufWriter::with_capacity(1 << 20, file);
        let mut sink: Box<dyn Write> = if compress {
            let mut encoder = zstd::stream::write::Encoder::new(buffered, ZSTD_LEVEL)?;
            encoder.multithread(ZSTD_WORKERS)?;
            encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
            Box::new(encoder.auto_finish())
        } else {
            Box::new(buffered)
        };
        {
            let mut builder = tar::Builder::new(&mut sink);
            for relative in &files {
                let path = source.join(relative);
                let mut file = File::open(&path)?;
                let metadata = file.metadata()?;
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(metadata.len());
                header.set_mode(0o644);
                header.set_mtime(0);
                header.set_uid(0);
                header.set_gid(0);
                builder.append_data(&mut header, relative, &mut file)?;
            }
            builder.finish()?;
        }
        sink.flush()
    })();
    if let Err(error) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(write_error(error));
    }
    std::fs::rename(&partial, output).map_err(|source| ArchiveError::Write {
        path: output.to_owned(),
        source,
    })?;
    std::fs::metadata(output)
        .map(|metadata| metadata.len())
        .map_err(|source| ArchiveError::Read {
            path: output.to_owned(),
            source,
        })
}

/// Every file under `root`, relative, in archive order: definition, signature, checksums, then
/// the rest sorted.
fn ordered_files(root: &Path) -> Result<Vec<String>, ArchiveError> {
    let mut files = Vec::new();
    collect(root, root, &mut files)?;
    files.sort();
    let first = [DEFINITION, SIGNATURE, CHECKSUMS];
    let mut ordered: Vec<String> = first
        .iter()
        .filter(|name| files.iter().any(|file| file == *name))
        .map(|name| (*name).to_owned())
        .collect();
    ordered.extend(files.into_iter().filter(|file| !first.contains(&file.as_str())));
    Ok(ordered)
}

/// Lists the regular files under `directory`, relative to `root`, with `/` separators.
pub(crate) fn collect(root: &Path, directory: &Path, files: &mut Vec<String>) -> Result<(), ArchiveError> {
    let read_error = |source| ArchiveError::Read {
        path: directory.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(directory).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let kind = entry.file_type().map_err(read_error)?;
        let path = entry.path();
        if kind.is_dir() {
            collect(root, &path, files)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            files.push(
                relative
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
    Ok(())
}

/// Opens an archive for reading, decompressing it if it is zstd.
fn open(archive: &Path) -> Result<Box<dyn Read>, ArchiveError> {
    let read_error = |source| ArchiveError::Read {
        path: archive.to_owned(),
        source,
    };
    let mut file = BufReader::with_capacity(1 << 20, File::open(archive).map_err(read_error)?);
    let mut magic = [0u8; 4];
    let peeked = {
        use std::io::BufRead;
        let available = file.fill_buf().map_err(read_error)?;
        let length = available.len().min(4);
        magic[..length].copy_from_slice(&available[..length]);
        length
    };
    if peeked == 4 && magic == ZSTD_MAGIC {
        let decoder = zstd::stream::read::Decoder::with_buffer(file).map_err(read_error)?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(file))
    }
}

fn corrupt(archive: &Path, error: &io::Error) -> ArchiveError {
    ArchiveError::Corrupt {
        archive: archive.to_owned(),
        reason: error.to_string(),
    }
}

/// A safe relative path for an entry, or why it is refused.
fn entry_path(archive: &Path, name: &Path) -> Result<PathBuf, ArchiveError> {
    let mut clean = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::Escape {
                    archive: archive.to_owned(),
                    entry: name.display().to_string(),
                });
            }
        }
    }
    Ok(clean)
}

fn special_kind(kind: tar::EntryType) -> Option<&'static str> {
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => None,
        tar::EntryType::Symlink => Some("symbolic link"),
        tar::EntryType::Link => Some("hard link"),
        tar::EntryType::Char => Some("character device"),
        tar::EntryType::Block => Some("block device"),
        tar::EntryType::Fifo => Some("FIFO"),
        _ => Some("special entry"),
    }
}

/// Unpacks `archive` into `destination` (which must not exist), within `limits`. Nothing is left
/// behind if the archive is refused.
pub fn extract(archive: &Path, destination: &Path, limits: &Limits) -> Result<Vec<String>, ArchiveError> {
    extract_inner(archive, destination, limits, false)
}

/// Like [`extract`], but links are skipped (neither created nor followed) instead of refused:
/// for image archives, whose legacy compatibility entries are symlinks the image never needs.
pub fn extract_skipping_links(
    archive: &Path,
    destination: &Path,
    limits: &Limits,
) -> Result<Vec<String>, ArchiveError> {
    extract_inner(archive, destination, limits, true)
}

fn extract_inner(
    archive: &Path,
    destination: &Path,
    limits: &Limits,
    skip_links: bool,
) -> Result<Vec<String>, ArchiveError> {
    if destination.exists() {
        return Err(ArchiveError::Exists(destination.to_owned()));
    }
    std::fs::create_dir_all(destination).map_err(|source| ArchiveError::Write {
        path: destination.to_owned(),
        source,
    })?;
    let result = unpack(archive, destination, limits, skip_links);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(destination);
    }
    result
}

fn unpack(
    archive: &Path,
    destination: &Path,
    limits: &Limits,
    skip_links: bool,
) -> Result<Vec<String>, ArchiveError> {
    let mut files = Vec::new();
    visit(archive, limits, skip_links, |entry| match entry {
        Entry::Directory(relative) => {
            let target = destination.join(relative);
            std::fs::create_dir_all(&target).map_err(|source| ArchiveError::Write { path: target, source })
        }
        Entry::File { path, content, .. } => {
            let target = destination.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|source| ArchiveError::Write {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            let write_error = |source| ArchiveError::Write {
                path: target.clone(),
                source,
            };
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .map_err(write_error)?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            io::copy(content, &mut out).map_err(|error| read_failed(archive, path, &error))?;
            out.flush().map_err(write_error)?;
            files.push(path.to_owned());
            Ok(())
        }
    })?;
    Ok(files)
}

/// One checked entry of an archive being read.
pub enum Entry<'a> {
    /// A directory, by its relative path.
    Directory(&'a Path),
    /// A regular file.
    File {
        /// Relative path with `/` separators.
        path: &'a str,
        /// Size from the header.
        size: u64,
        /// Exactly `size` bytes; reading fails with `UnexpectedEof` if the archive ends first.
        content: &'a mut dyn Read,
    },
}

/// Why reading an entry's content failed, naming the archive and the entry.
pub fn read_failed(archive: &Path, entry: &str, error: &io::Error) -> ArchiveError {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        ArchiveError::Corrupt {
            archive: archive.to_owned(),
            reason: format!("entry {entry:?} is cut short"),
        }
    } else {
        corrupt(archive, error)
    }
}

/// Reads `archive` entry by entry, refusing everything [`extract`] refuses (before the entry is
/// handed over), and gives each directory and regular file to `visitor` in archive order.
/// Content the visitor does not read is skipped.
pub fn visit<E: From<ArchiveError>>(
    archive: &Path,
    limits: &Limits,
    skip_links: bool,
    mut visitor: impl FnMut(Entry<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut tar = tar::Archive::new(open(archive)?);
    // Regular files seen, and directories made (explicitly or as a file's parents).
    let mut seen = HashSet::new();
    let mut directories: HashSet<PathBuf> = HashSet::new();
    let mut total = 0u64;
    for (count, entry) in tar
        .entries()
        .map_err(|error| corrupt(archive, &error))?
        .enumerate()
    {
        if count >= limits.max_entries {
            return Err(ArchiveError::TooMuch {
                archive: archive.to_owned(),
                what: "entries",
                limit: limits.max_entries as u64,
            }
            .into());
        }
        let mut entry = entry.map_err(|error| corrupt(archive, &error))?;
        let name = entry
            .path()
            .map_err(|error| corrupt(archive, &error))?
            .into_owned();
        let relative = entry_path(archive, &name)?;
        let display = relative.display().to_string();
        let entry_type = entry.header().entry_type();
        if skip_links && matches!(entry_type, tar::EntryType::Symlink | tar::EntryType::Link) {
            continue;
        }
        if let Some(kind) = special_kind(entry_type) {
            return Err(ArchiveError::Special {
                archive: archive.to_owned(),
                entry: name.display().to_string(),
                kind,
            }
            .into());
        }
        if relative.as_os_str().is_empty() {
            continue;
        }
        // A path is a file or a directory, never both, whatever order the entries come in.
        let conflict = || ArchiveError::Conflict {
            archive: archive.to_owned(),
            entry: display.clone(),
        };
        if relative
            .ancestors()
            .skip(1)
            .any(|ancestor| seen.contains(ancestor))
        {
            return Err(conflict().into());
        }
        if entry_type == tar::EntryType::Directory {
            if seen.contains(&relative) {
                return Err(conflict().into());
            }
            visitor(Entry::Directory(&relative))?;
            directories.extend(relative.ancestors().map(Path::to_owned));
            continue;
        }
        if directories.contains(&relative) {
            return Err(conflict().into());
        }
        if !seen.insert(relative.clone()) {
            return Err(ArchiveError::Duplicate {
                archive: archive.to_owned(),
                entry: display,
            }
            .into());
        }
        directories.extend(relative.ancestors().skip(1).map(Path::to_owned));
        let size = entry.header().size().map_err(|error| corrupt(archive, &error))?;
        if size > limits.max_entry {
            return Err(ArchiveError::TooLarge {
                archive: archive.to_owned(),
                entry: display,
                size,
                limit: limits.max_entry,
            }
            .into());
        }
        total += size;
        if total > limits.max_total {
            return Err(ArchiveError::TooMuch {
                archive: archive.to_owned(),
                what: "bytes in total",
                limit: limits.max_total,
            }
            .into());
        }
        let path = relative
            .components()
            .map(|part| part.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let mut content = Exact {
            inner: &mut entry,
            remaining: size,
        };
        visitor(Entry::File {
            path: &path,
            size,
            content: &mut content,
        })?;
    }
    Ok(())
}

/// A reader of exactly `remaining` bytes: an early end is an error, not a short file.
struct Exact<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buffer.is_empty() {
            return Ok(0);
        }
        let wanted = buffer
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buffer[..wanted])?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside the entry",
            ));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// The leading entries of `archive` named in `names` (each at most `max` bytes), read until the
/// first entry not among them: the metadata a package keeps first, without reading the rest.
pub fn read_leading(
    archive: &Path,
    names: &[&str],
    max: u64,
) -> Result<BTreeMap<String, Vec<u8>>, ArchiveError> {
    let mut found = BTreeMap::new();
    let mut tar = tar::Archive::new(open(archive)?);
    for entry in tar.entries().map_err(|error| corrupt(archive, &error))? {
        let mut entry = entry.map_err(|error| corrupt(archive, &error))?;
        let name = entry
            .path()
            .map_err(|error| corrupt(archive, &error))?
            .into_owned();
        let relative = entry_path(archive, &name)?;
        let Some(wanted) = names.iter().find(|wanted| relative == Path::new(wanted)) else {
            break;
        };
        let size = entry.header().size().map_err(|error| corrupt(archive, &error))?;
        if size > max {
            return Err(ArchiveError::TooLarge {
                archive: archive.to_owned(),
                entry: (*wanted).to_owned(),
                size,
                limit: max,
            });
        }
        if found.contains_key(*wanted) {
            return Err(ArchiveError::Duplicate {
                archive: archive.to_owned(),
                entry: (*wanted).to_owned(),
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry
            .read_to_end(&mut bytes)
            .map_err(|error| corrupt(archive, &error))?;
        found.insert((*wanted).to_owned(), bytes);
    }
    Ok(found)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
