//! Pure rewrite rules that point workloads at the air-gapped cluster's own services: image
//! references and OCI URLs to the in-cluster registry, git URLs to the git server. No I/O: the
//! webhook and the image relocation both call these, and they are tested by tables alone.
//!
//! The registry mapping puts the source host in the first path segment, so it is deterministic,
//! reversible, idempotent and keeps tags and digests untouched (digest-pinned images still
//! verify): `ghcr.io/org/app:1.2@sha256:…` ⇄ `127.0.0.1:31999/ghcr.io/org/app:1.2@sha256:…`.
//! A port in the source host becomes `_PORT` (hostnames cannot contain `_`, repository paths can);
//! a bracketed IPv6 host becomes `ip6__` plus its groups joined by `-`, `x` standing for each empty
//! group of a `::` (`[::1]:5000` → `ip6__x-x-1_5000`), so the mapped reference is itself valid.

pub mod git;
pub mod image;

pub use git::{GitServer, git_url};
pub use image::{ImageReference, ReferenceError, from_internal, oci_url, to_internal};
