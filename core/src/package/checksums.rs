//! `checksums.txt`: the sha256 of every file of a package except the definition, the signature
//! and itself, one `"<hex> <path>"` line per file, sorted by path. Its own sha256 is the
//! aggregate checksum recorded in the definition, so signing the definition covers everything.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::archive::{ArchiveError, collect};
use super::{CHECKSUMS, DEFINITION, SIGNATURE};
use crate::oci::Digest;

/// sha256 of a file, streamed.
pub fn file_sha256(path: &Path) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(Digest::from_hasher(hasher))
}

/// Why checksums cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    /// Listing the files failed.
    #[error(transparent)]
    List(#[from] ArchiveError),
    /// Hashing a file failed.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The `checksums.txt` content for the package directory `root`.
pub fn compute(root: &Path) -> Result<String, ChecksumError> {
    let mut files = Vec::new();
    collect(root, root, &mut files)?;
    files.sort();
    let mut text = String::new();
    for file in files
        .iter()
        .filter(|file| ![DEFINITION, SIGNATURE, CHECKSUMS].contains(&file.as_str()))
    {
        let path = root.join(file);
        let hash = file_sha256(&path).map_err(|source| ChecksumError::Read { path, source })?;
        text.push_str(&format!("{} {file}\n", hash.hex()));
    }
    Ok(text)
}

/// Parses `checksums.txt` into path → digest; the error names the first malformed line.
pub fn parse(text: &str) -> Result<BTreeMap<String, Digest>, String> {
    let mut entries = BTreeMap::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
    {
        let (digest, path) = line
            .split_once(' ')
            .and_then(|(hash, path)| Some((Digest::from_hex(&hash.to_ascii_lowercase()).ok()?, path)))
            .filter(|(_, path)| !path.is_empty())
            .ok_or_else(|| format!("line {} is not \"<sha256> <path>\"", number + 1))?;
        if entries.insert(path.to_owned(), digest).is_some() {
            return Err(format!("{path} is listed twice"));
        }
    }
    Ok(entries)
}
