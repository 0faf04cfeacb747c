//! The payload's chunks: finding them, putting them in order, and reading any byte range of the
//! payload they make up together.
//!
//! Chunks are files named `payload-<number>`, ordered by the number's value (the zero padding is
//! only for people: `payload-1000` comes after `payload-999` whatever the width). Numbers must run
//! from 0 without a gap. Other files in the directory (such as a ConfigMap volume's `..data`) are
//! ignored.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// File-name prefix of every chunk.
pub const PREFIX: &str = "payload-";

/// The ordered chunks of one payload.
#[derive(Debug)]
pub struct Chunks {
    paths: Vec<PathBuf>,
    /// Offset of each chunk's first byte in the payload, plus the total size at the end.
    starts: Vec<u64>,
}

impl Chunks {
    /// Finds and orders the chunks in `directory`.
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
        let paths = order(numbered)?
            .into_iter()
            .map(|name| directory.join(name))
            .collect::<Vec<_>>();
        if let Some(expected) = expected.filter(|expected| *expected != paths.len()) {
            return Err(Error::ChunkCount {
                expected,
                found: paths.len(),
            });
        }
        let mut starts = Vec::with_capacity(paths.len() + 1);
        let mut total = 0;
        for path in &paths {
            starts.push(total);
            let metadata = std::fs::metadata(path).map_err(|source| Error::ReadChunk {
                path: path.clone(),
                source,
            })?;
            total += metadata.len();
        }
        starts.push(total);
        Ok(Self { paths, starts })
    }

    /// Number of chunks.
    pub fn count(&self) -> usize {
        self.paths.len()
    }

    /// Size of the whole payload.
    pub fn total_size(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Reads the whole payload in order, calling `consume` with successive pieces.
    pub fn read_all(&self, mut consume: impl FnMut(&[u8])) -> Result<(), Error> {
        let mut buffer = vec![0; 1 << 20];
        for path in &self.paths {
            let read_error = |source| Error::ReadChunk {
                path: path.clone(),
                source,
            };
            let mut file = File::open(path).map_err(read_error)?;
            loop {
                let read = file.read(&mut buffer).map_err(read_error)?;
                if read == 0 {
                    break;
                }
                consume(&buffer[..read]);
            }
        }
        Ok(())
    }

    /// Sends `length` bytes of the payload starting at `offset` to a socket with `sendfile`, chunk
    /// by chunk: the bytes never pass through userspace, and memory stays flat whatever the size.
    /// (std's `io::copy` will not use `sendfile` from a file to a socket, in case the file changes
    /// while its pages sit in the send buffer; chunks are read-only ConfigMap files.)
    pub fn send_range(&self, offset: u64, length: u64, socket: &TcpStream) -> io::Result<u64> {
        self.each_piece(offset, length, |file, mut position, mut remaining| {
            while remaining > 0 {
                let count = usize::try_from(remaining).unwrap_or(usize::MAX).min(1 << 30);
                let sent = rustix::fs::sendfile(socket, &file, Some(&mut position), count)?;
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

    /// Copies `length` bytes of the payload starting at `offset` to `out` (for small reads).
    pub fn copy_range<W: Write>(&self, offset: u64, length: u64, out: &mut W) -> io::Result<u64> {
        self.each_piece(offset, length, |mut file, position, take| {
            file.seek(SeekFrom::Start(position))?;
            let copied = io::copy(&mut file.take(take), out)?;
            if copied != take {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a chunk shrank while serving",
                ));
            }
            Ok(())
        })?;
        Ok(length)
    }

    /// Calls `piece(file, offset in file, length)` for each chunk the range touches, in order.
    fn each_piece(
        &self,
        offset: u64,
        length: u64,
        mut piece: impl FnMut(File, u64, u64) -> io::Result<()>,
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
                piece(
                    File::open(&self.paths[chunk])?,
                    position - self.starts[chunk],
                    take,
                )?;
            }
            position += take;
            chunk += 1;
        }
        Ok(())
    }

    /// Reads a small range of the payload into memory (manifests, configs, `index.json`).
    pub fn read_range(&self, offset: u64, length: u64) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
        self.copy_range(offset, length, &mut bytes)?;
        Ok(bytes)
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
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
