//! Everything that stops the injector before it serves, each naming what is at fault.

use std::path::PathBuf;

/// A fatal error: the payload cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),

    /// The termination signal handler cannot be installed.
    #[error("failed to install the SIGTERM handler: {0}")]
    Signals(std::io::Error),

    /// The chunk directory cannot be read.
    #[error("failed to read chunk directory {directory}: {source}")]
    ReadDirectory {
        directory: PathBuf,
        source: std::io::Error,
    },

    /// No chunk was found.
    #[error("no payload chunks (files named payload-<number>) in {0}")]
    NoChunks(PathBuf),

    /// Two files claim the same chunk number.
    #[error("chunks {first} and {second} have the same number")]
    DuplicateChunk { first: String, second: String },

    /// A chunk number is missing from the sequence.
    #[error("chunk payload-{missing:05} is missing: found {found} chunks numbered up to {highest}")]
    MissingChunk {
        missing: usize,
        found: usize,
        highest: usize,
    },

    /// Fewer or more chunks than the caller said to expect.
    #[error("expected {expected} chunks, found {found}")]
    ChunkCount { expected: usize, found: usize },

    /// A chunk cannot be read.
    #[error("failed to read chunk {path}: {source}")]
    ReadChunk { path: PathBuf, source: std::io::Error },

    /// The open-file limit is below the number of chunks, which all stay open.
    #[error(
        "failed to open chunk {path}: the hard open-file limit (RLIMIT_NOFILE) is below the {chunks} chunks, which all stay open while the payload is served"
    )]
    TooManyChunks { path: PathBuf, chunks: usize },

    /// The reassembled payload is not the one expected.
    #[error("payload digest mismatch: expected {expected}, got {actual} ({chunks} chunks, {bytes} bytes)")]
    DigestMismatch {
        expected: String,
        actual: String,
        chunks: usize,
        bytes: u64,
    },

    /// The payload's archive is malformed or hostile.
    #[error("invalid payload archive: {0}")]
    Archive(#[from] crate::archive::ArchiveError),

    /// The payload's OCI layout is incomplete or malformed.
    #[error("invalid OCI layout in the payload: {0}")]
    Layout(String),

    /// The listening socket cannot be opened.
    #[error("failed to listen on {address}: {source}")]
    Listen { address: String, source: std::io::Error },
}
