//! Logic both Jackal binaries need and neither owns: package archive read/write, OCI push, pull and
//! blob mounts, image-reference rewriting, injector payload chunking and the bootstrap steps.
//!
//! It depends on the API types in `jackal-crds` and never on the webhook server or the controller
//! runtime, so the kubectl plugin can link it without dragging those in. Modules arrive with the
//! issues that need them; see `ARCHITECTURE.md`.
//!
//! - [`layout`]: reading and writing OCI image layouts on disk.
//! - [`oci`]: digests, media types, `oci://` URLs, descriptors and documents.
//! - [`package`]: creating, archiving, verifying and inspecting Jackal packages.
//! - [`payload`]: packing images into the injector payload and cutting it into ConfigMap chunks.
//! - [`progress`]: how long operations report steps and bytes moved.
//! - [`registry`]: registry clients (plain HTTP on loopback), docker credentials from files or
//!   Secrets, and error categories (retry, or give up until something changes).
//! - [`transform`]: pure rewrite rules for image references, OCI and git URLs.

pub mod bootstrap;
pub mod layout;
pub mod oci;
pub mod package;
pub mod payload;
pub mod progress;
pub mod registry;
pub mod transform;

pub use jackal_crds as crds;

/// Lowercase hex of `bytes` (digests).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// Runs blocking work (file systems, hashing, compression) on tokio's blocking pool, so async
/// callers never stall the runtime they share with others (the operator's webhook, for one).
/// A panic in `work` is resumed here, as if `work` had run inline.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled: the runtime is shutting down, and nothing awaits this any more.
        Err(_) => std::future::pending().await,
    }
}
