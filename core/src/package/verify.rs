//! Verification of a package, unpacked or as a file read in one streaming pass, shared by
//! `package inspect`/`verify`/`pull`/`deploy` and the operator: the signature (when there is one, or when a key is given), the aggregate checksum in
//! the definition, every listed file, and no file that is not listed. Every failure names the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use jackal_crds::definition::{DefinitionError, PackageDefinition};

use super::archive::{self, ArchiveError, Entry, Limits, collect};
use super::checksums::{file_sha256, parse};
use super::signing::{self, SigningError};
use super::{CHECKSUMS, DEFINITION, SIGNATURE};
use crate::oci::Digest;
use crate::registry::{Categorize, ErrorCategory};

/// How strictly to verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// PEM public key the package must be signed with.
    pub public_key: Option<String>,
    /// Accept a signed package without checking its signature.
    pub skip_signature: bool,
    /// Accept listed files that are absent (a partial pull of some components).
    pub partial: bool,
}

/// What verification established.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The package definition.
    pub definition: PackageDefinition,
    /// Whether the signature was checked against a key.
    pub signature_checked: bool,
    /// Files whose checksum was checked.
    pub files: usize,
}

/// Why a package failed verification.
// Variant fields are named in the messages; documenting each again adds nothing.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the package has no {0}")]
    Missing(&'static str),
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error(
        "{DEFINITION} has no aggregate checksum (metadata.aggregateChecksum): was it written by package create?"
    )]
    NoAggregate,
    #[error(
        "{CHECKSUMS} does not match the aggregate checksum in {DEFINITION}: expected {expected}, got {actual}"
    )]
    Aggregate { expected: String, actual: String },
    #[error("{CHECKSUMS} is malformed: {0}")]
    Checksums(String),
    #[error("{0} is listed in {CHECKSUMS} but missing from the package")]
    FileMissing(String),
    #[error("{path} is corrupt: expected {expected}, got {actual}")]
    FileMismatch {
        path: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{0} is in the package but not in {CHECKSUMS}")]
    Unexpected(String),
    #[error(
        "the package is signed: give its public key to verify it (or skip the signature check explicitly)"
    )]
    SignedWithoutKey,
    #[error("a public key was given but the package is not signed ({SIGNATURE} is missing)")]
    NotSigned,
    #[error("signature check failed: {0}")]
    Signature(#[from] SigningError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl Categorize for VerifyError {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Read { .. } => ErrorCategory::Io,
            Self::Archive(error) => error.category(),
            Self::Definition(_) | Self::SignedWithoutKey | Self::NotSigned => ErrorCategory::Invalid,
            _ => ErrorCategory::Integrity,
        }
    }
}

/// A package's verified metadata.
pub struct Metadata {
    /// The definition.
    pub definition: PackageDefinition,
    /// Whether the signature was checked against a key.
    pub signature_checked: bool,
    /// Every other file and its sha256, from `checksums.txt`.
    pub listed: BTreeMap<String, Digest>,
}

/// Verifies the definition, its signature (as `options` say) and `checksums.txt` against the
/// aggregate checksum; the files themselves are the caller's to check against `listed`.
pub fn verify_metadata(
    definition_bytes: &[u8],
    signature: Option<&str>,
    checksums: &[u8],
    options: &VerifyOptions,
) -> Result<Metadata, VerifyError> {
    let signature_checked = match (signature, &options.public_key) {
        (Some(signature), Some(key)) => {
            signing::verify(key, definition_bytes, signature)?;
            true
        }
        (Some(_), None) if options.skip_signature => false,
        (Some(_), None) => return Err(VerifyError::SignedWithoutKey),
        (None, Some(_)) => return Err(VerifyError::NotSigned),
        (None, None) => false,
    };
    let text = String::from_utf8_lossy(definition_bytes);
    let definition = PackageDefinition::parse(&text, DEFINITION)?.validated(DEFINITION, &text)?;
    let expected = definition
        .metadata
        .aggregate_checksum
        .clone()
        .ok_or(VerifyError::NoAggregate)?;
    let actual = Digest::of(checksums).hex().to_owned();
    if expected != actual {
        return Err(VerifyError::Aggregate { expected, actual });
    }
    let listed = parse(&String::from_utf8_lossy(checksums)).map_err(VerifyError::Checksums)?;
    Ok(Metadata {
        definition,
        signature_checked,
        listed,
    })
}

/// Verifies the package unpacked in `root`.
pub fn verify_dir(root: &Path, options: &VerifyOptions) -> Result<Verified, VerifyError> {
    let read = |name: &str| {
        let path = root.join(name);
        std::fs::read(&path).map_err(|source| VerifyError::Read { path, source })
    };
    if !root.join(DEFINITION).exists() {
        return Err(VerifyError::Missing(DEFINITION));
    }
    let definition_bytes = read(DEFINITION)?;
    let signature = if root.join(SIGNATURE).exists() {
        Some(String::from_utf8_lossy(&read(SIGNATURE)?).into_owned())
    } else {
        None
    };
    if !root.join(CHECKSUMS).exists() {
        return Err(VerifyError::Missing(CHECKSUMS));
    }
    let checksums = read(CHECKSUMS)?;
    let Metadata {
        definition,
        signature_checked,
        listed,
    } = verify_metadata(&definition_bytes, signature.as_deref(), &checksums, options)?;
    let mut present = Vec::new();
    collect(root, root, &mut present).map_err(|error| VerifyError::Read {
        path: root.to_owned(),
        source: std::io::Error::other(error.to_string()),
    })?;
    for file in &present {
        if ![DEFINITION, SIGNATURE, CHECKSUMS].contains(&file.as_str()) && !listed.contains_key(file) {
            return Err(VerifyError::Unexpected(file.clone()));
        }
    }
    let mut files = 0;
    for (path, expected) in &listed {
        let file = root.join(path);
        if !file.exists() {
            if options.partial {
                continue;
            }
            return Err(VerifyError::FileMissing(path.clone()));
        }
        let actual = file_sha256(&file).map_err(|source| VerifyError::Read {
            path: file.clone(),
            source,
        })?;
        if &actual != expected {
            return Err(VerifyError::FileMismatch {
                path: path.clone(),
                expected: expected.clone(),
                actual,
            });
        }
        files += 1;
    }
    Ok(Verified {
        definition,
        signature_checked,
        files,
    })
}

/// Largest metadata file (definition, signature, checksums) read into memory.
const METADATA_LIMIT: u64 = 64 << 20;
/// Largest file kept in memory for the caller (image manifests and indexes).
const KEPT_LIMIT: u64 = 4 << 20;

/// A package file verified as a stream, with what the caller asked to keep.
pub struct VerifiedFile {
    /// What verification established.
    pub verified: Verified,
    /// Every file of the archive and its size (from the headers).
    pub sizes: BTreeMap<String, u64>,
    /// The bytes of the files `keep` chose (each at most 4 MiB; larger ones are not kept).
    pub kept: BTreeMap<String, Vec<u8>>,
}

/// Reads the metadata at the front of the package file at `path` (definition, signature,
/// checksums, as raw bytes by name) and verifies it, without reading the rest.
pub fn read_metadata(
    path: &Path,
    options: &VerifyOptions,
) -> Result<(BTreeMap<String, Vec<u8>>, Metadata), VerifyError> {
    let metadata = archive::read_leading(path, &[DEFINITION, SIGNATURE, CHECKSUMS], METADATA_LIMIT)?;
    let definition = metadata.get(DEFINITION).ok_or(VerifyError::Missing(DEFINITION))?;
    let checksums = metadata.get(CHECKSUMS).ok_or(VerifyError::Missing(CHECKSUMS))?;
    let signature = metadata
        .get(SIGNATURE)
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
    let verified = verify_metadata(definition, signature.as_deref(), checksums, options)?;
    Ok((metadata, verified))
}

/// Verifies the package file at `path` in one pass over the archive, never unpacking it: the
/// metadata at its front first, then every other file hashed as it streams by. The files `keep`
/// picks (by path, with their first bytes) are also returned in memory.
pub fn verify_file(
    path: &Path,
    options: &VerifyOptions,
    keep: impl Fn(&str, &[u8]) -> bool,
) -> Result<VerifiedFile, VerifyError> {
    let (
        _,
        Metadata {
            definition,
            signature_checked,
            listed,
        },
    ) = read_metadata(path, options)?;
    let mut sizes = BTreeMap::new();
    let mut kept = BTreeMap::new();
    let mut files = 0;
    archive::visit(path, &Limits::default(), false, |entry| {
        let Entry::File {
            path: name,
            size,
            content,
        } = entry
        else {
            return Ok::<(), VerifyError>(());
        };
        sizes.insert(name.to_owned(), size);
        if [DEFINITION, SIGNATURE, CHECKSUMS].contains(&name) {
            return Ok(());
        }
        let expected = listed
            .get(name)
            .ok_or_else(|| VerifyError::Unexpected(name.to_owned()))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut held: Option<Vec<u8>> = None;
        let mut first = true;
        loop {
            let read = content
                .read(&mut buffer)
                .map_err(|error| archive::read_failed(path, name, &error))?;
            if read == 0 {
                break;
            }
            let piece = &buffer[..read];
            hasher.update(piece);
            if first && size <= KEPT_LIMIT && keep(name, piece) {
                held = Some(Vec::with_capacity(usize::try_from(size).unwrap_or(0)));
            }
            first = false;
            if let Some(held) = held.as_mut() {
                held.extend_from_slice(piece);
            }
        }
        let actual = Digest::from_hasher(hasher);
        if &actual != expected {
            return Err(VerifyError::FileMismatch {
                path: name.to_owned(),
                expected: expected.clone(),
                actual,
            });
        }
        if let Some(held) = held {
            kept.insert(name.to_owned(), held);
        }
        files += 1;
        Ok(())
    })?;
    if !options.partial
        && let Some(missing) = listed.keys().find(|name| !sizes.contains_key(*name))
    {
        return Err(VerifyError::FileMissing(missing.clone()));
    }
    Ok(VerifiedFile {
        verified: Verified {
            definition,
            signature_checked,
            files,
        },
        sizes,
        kept,
    })
}
