//! The payload's chunks: finding them, putting them in order, holding them open, and reading any
//! byte range of the payload they make up together.
//!
//! Chunks are files named `payload-<number>`, ordered by the number's value (the zero padding is
//! only for people: `payload-1000` comes after `payload-999` whatever the width). Numbers must run
//! from 0 without a gap. Other files in the directory (such as a ConfigMap volume's `..data`) are
//! ignored.
//!
//! Each chunk is opened once, before it is hashed, and every byte served later is read through
//! that same descriptor: a file swapped in at the chunk's path afterwards (the kubelet updates a
//! ConfigMap volume by an atomic rename) is never seen, so only verified bytes are served. A chunk
//! changed in place (its size or modification time differs from when it was opened) is refused.

use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::Error;

/// File-name prefix of every chunk.
pub const PREFIX: &str = "payload-";

/// One chunk file, open from before verification until the injector exits.
#[derive(Debug)]
struct Chunk {
    path: PathBuf,
    file: File,
    /// Size and modification time when opened.
    stamp: (u64, Option<SystemTime>),
}

impl Chunk {
    fn open(path: PathBuf) -> Result<Self, Error> {
        let read_error = |source| Error::ReadChunk {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(read_error)?;
        let stamp = stamp(&file).map_err(read_error)?;
        Ok(Self { path, file, stamp })
    }

    /// Fails if the file was written to since it was opened (and so since it was verified).
    fn unchanged(&self) -> io::Result<&File> {
        if stamp(&self.file)? == self.stamp {
            return Ok(&self.file);
        }
        Err(io::Error::other(format!(
            "chunk {} changed after it was verified",
            self.path.display()
        )))
    }
}

fn stamp(file: &File) -> io::Result<(u64, Option<SystemTime>)> {
    let metadata = file.metadata()?;
    Ok((metadata.len(), metadata.modified().ok()))
}

/// The ordered chunks of one payload.
#[derive(Debug)]
pub struct Chunks {
    chunks: Vec<Chunk>,
    /// Offset of each chunk's first byte in the payload, plus the total size at the end.
    starts: Vec<u64>,
}

impl Chunks {
    /// Finds, orders and opens the chunks in `directory`.
    pub fn discover(directory: &Path, expected: Option<usize>) -> Result<Self, Error> {
        let read_error = |source| Error::ReadDirectory {
            directory: directory.to_owned(),
            source,
        };
        let mut numbered = Vec::new();
        for entry in std::fs::read_dir(directory).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(number) = chunk_number(&name) {
                numbered.push((number, name));
            }
        }
        if numbered.is_empty() {
            return Err(Error::NoChunks(directory.to_owned()));
        }
        let names = order(numbered)?;
        if let Some(expected) = expected.filter(|expected| *expected != names.len()) {
            return Err(Error::ChunkCount {
                expected,
                found: names.len(),
            });
        }
        raise_open_file_limit();
        let mut chunks = Vec::with_capacity(names.len());
        let mut starts = Vec::with_capacity(names.len() + 1);
        let mut total = 0;
        let count = names.len();
        for name in names {
            let chunk = Chunk::open(directory.join(name)).map_err(|error| match error {
                Error::ReadChunk { path, source }
                    if source.raw_os_error() == Some(rustix::io::Errno::MFILE.raw_os_error()) =>
                {
                    Error::TooManyChunks { path, chunks: count }
                }
                other => other,
            })?;
            starts.push(total);
            total += chunk.stamp.0;
            chunks.push(chunk);
        }
        starts.push(total);
        Ok(Self { chunks, starts })
    }

    /// Number of chunks.
    pub fn count(&self) -> usize {
        self.chunks.len()
    }

    /// Size of the whole payload.
    pub fn total_size(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Reads the whole payload in order, calling `consume` with successive pieces.
    pub fn read_all(&self, mut consume: impl FnMut(&[u8])) -> Result<(), Error> {
        let mut buffer = vec![0; 1 << 20];
        for chunk in &self.chunks {
            let read_error = |source| Error::ReadChunk {
                path: chunk.path.clone(),
                source,
            };
            let mut offset = 0;
            while offset < chunk.stamp.0 {
                let read = chunk.file.read_at(&mut buffer, offset).map_err(read_error)?;
                if read == 0 {
                    return Err(read_error(io::ErrorKind::UnexpectedEof.into()));
                }
                consume(&buffer[..read]);
                offset += read as u64;
            }
        }
        Ok(())
    }

    /// Sends `length` bytes of the payload starting at `offset` to a socket with `sendfile`, chunk
    /// by chunk: the bytes never pass through userspace, and memory stays flat whatever the size.
    /// (std's `io::copy` will not use `sendfile` from a file to a socket, in case the file changes
    /// while its pages sit in the send buffer; the chunks are held open and checked unchanged.)
    pub fn send_range(&self, offset: u64, length: u64, socket: &TcpStream) -> io::Result<u64> {
        self.each_piece(offset, length, |file, mut position, mut remaining| {
            while remaining > 0 {
                let count = usize::try_from(remaining).unwrap_or(usize::MAX).min(1 << 30);
                let sent = rustix::fs::sendfile(socket, file, Some(&mut position), count)?;
                if sent == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "a chunk shrank while serving",
                    ));
                }
                remaining -= sent as u64;
            }
            Ok(())
        })?;
        Ok(length)
    }

    /// Fails if a chunk holding part of the range changed since it was verified.
    pub fn check_range(&self, offset: u64, length: u64) -> io::Result<()> {
        self.each_piece(offset, length, |_, _, _| Ok(()))
    }

    /// Calls `piece(file, offset in file, length)` for each chunk the range touches, in order,
    /// after checking that the chunk is unchanged.
    fn each_piece(
        &self,
        offset: u64,
        length: u64,
        mut piece: impl FnMut(&File, u64, u64) -> io::Result<()>,
    ) -> io::Result<()> {
        let end = offset
            .checked_add(length)
            .filter(|end| *end <= self.total_size())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range outside the payload"))?;
        let mut position = offset;
        // The chunk holding `offset`: the last start at or before it.
        let mut chunk = self
            .starts
            .partition_point(|start| *start <= offset)
            .saturating_sub(1);
        while position < end {
            let take = self.starts[chunk + 1].min(end) - position;
            if take > 0 {
                let file = self.chunks[chunk].unchanged()?;
                piece(file, position - self.starts[chunk], take)?;
            }
            position += take;
            chunk += 1;
        }
        Ok(())
    }

    /// Reads a small range of the payload into memory (manifests, configs, `index.json`).
    pub fn read_range(&self, offset: u64, length: u64) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0; usize::try_from(length).map_err(io::Error::other)?];
        let mut filled = 0;
        self.each_piece(offset, length, |file, position, take| {
            let take = usize::try_from(take).map_err(io::Error::other)?;
            file.read_exact_at(&mut bytes[filled..filled + take], position)?;
            filled += take;
            Ok(())
        })?;
        Ok(bytes)
    }
}

/// Every chunk stays open while the injector runs (1,366 for a 1 GiB payload in 768 KiB chunks),
/// more than the usual soft limit of 1,024 descriptors: raise it to the hard limit. If that fails,
/// opening a chunk fails and names it.
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

/// The chunk number in a file name, if it is a chunk.
fn chunk_number(name: &str) -> Option<usize> {
    let digits = name.strip_prefix(PREFIX)?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Orders chunk names by number, refusing duplicates and gaps.
fn order(mut numbered: Vec<(usize, String)>) -> Result<Vec<String>, Error> {
    numbered.sort();
    let found = numbered.len();
    let highest = numbered.last().map_or(0, |(number, _)| *number);
    let mut names = Vec::with_capacity(found);
    for (expected, (number, name)) in numbered.into_iter().enumerate() {
        if number != expected {
            if number < expected {
                let first = names.pop().unwrap_or_default();
                return Err(Error::DuplicateChunk { first, second: name });
            }
            return Err(Error::MissingChunk {
                missing: expected,
                found,
                highest,
            });
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn names(list: &[(usize, &str)]) -> Vec<(usize, String)> {
        list.iter()
            .map(|(number, name)| (*number, name.to_string()))
            .collect()
    }

    #[test]
    fn chunk_numbers_are_parsed_from_names() {
        assert_eq!(chunk_number("payload-00000"), Some(0));
        assert_eq!(chunk_number("payload-1000"), Some(1000));
        assert_eq!(chunk_number("payload-"), None);
        assert_eq!(chunk_number("payload-12a"), None);
        assert_eq!(chunk_number("..data"), None);
        assert_eq!(chunk_number("other-00001"), None);
    }

    #[test]
    fn chunks_are_ordered_by_number_not_by_name() {
        // Byte-wise, "payload-1000" sorts before "payload-999": the original injector's bug.
        let mut list: Vec<(usize, String)> = (0..1001).map(|n| (n, format!("payload-{n:03}"))).collect();
        list.reverse();
        let ordered = order(list).unwrap();
        assert_eq!(ordered[999], "payload-999");
        assert_eq!(ordered[1000], "payload-1000");
    }

    #[test]
    fn gaps_and_duplicates_are_refused() {
        let gap = order(names(&[(0, "payload-0"), (1, "payload-1"), (3, "payload-3")])).unwrap_err();
        assert_eq!(
            gap.to_string(),
            "chunk payload-00002 is missing: found 3 chunks numbered up to 3"
        );
        let late_start = order(names(&[(1, "payload-1")])).unwrap_err();
        assert!(
            late_start
                .to_string()
                .starts_with("chunk payload-00000 is missing")
        );
        let duplicate = order(names(&[(0, "payload-0"), (1, "payload-01"), (1, "payload-1")])).unwrap_err();
        assert_eq!(
            duplicate.to_string(),
            "chunks payload-01 and payload-1 have the same number"
        );
    }

    #[test]
    fn ranges_span_chunk_boundaries() {
        let directory = std::env::temp_dir().join(format!("injector-chunks-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        for (number, content) in ["abc", "defg", "", "hij"].iter().enumerate() {
            std::fs::write(directory.join(format!("payload-{number}")), content).unwrap();
        }
        std::fs::write(directory.join("..data"), "ignored").unwrap();
        let chunks = Chunks::discover(&directory, Some(4)).unwrap();
        assert_eq!(chunks.total_size(), 10);
        assert_eq!(chunks.read_range(0, 10).unwrap(), b"abcdefghij");
        assert_eq!(chunks.read_range(2, 6).unwrap(), b"cdefgh");
        assert_eq!(chunks.read_range(7, 3).unwrap(), b"hij");
        assert_eq!(chunks.read_range(10, 0).unwrap(), b"");
        assert!(chunks.read_range(8, 3).is_err());
        let mut all = Vec::new();
        chunks.read_all(|piece| all.extend_from_slice(piece)).unwrap();
        assert_eq!(all, b"abcdefghij");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sender = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut receiver, _) = listener.accept().unwrap();
        assert_eq!(chunks.send_range(1, 8, &sender).unwrap(), 8);
        drop(sender);
        let mut received = Vec::new();
        receiver.read_to_end(&mut received).unwrap();
        assert_eq!(received, b"bcdefghi");
        let miscounted = Chunks::discover(&directory, Some(5)).unwrap_err();
        assert_eq!(miscounted.to_string(), "expected 5 chunks, found 4");

        // A file renamed over a chunk (a ConfigMap update) is never read: the verified one is.
        std::fs::write(directory.join("..new"), "XYZ").unwrap();
        std::fs::rename(directory.join("..new"), directory.join("payload-0")).unwrap();
        assert_eq!(chunks.read_range(0, 10).unwrap(), b"abcdefghij");
        // A chunk changed in place is refused, for every range that touches it.
        let mut changed = std::fs::OpenOptions::new()
            .append(true)
            .open(directory.join("payload-1"))
            .unwrap();
        changed.write_all(b"!").unwrap();
        let error = chunks.read_range(2, 3).unwrap_err().to_string();
        assert!(
            error.contains("payload-1 changed after it was verified"),
            "{error}"
        );
        assert!(chunks.check_range(0, 10).is_err());
        assert_eq!(chunks.read_range(7, 3).unwrap(), b"hij");
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
