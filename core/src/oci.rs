//! The OCI vocabulary every other module speaks: digests, media types, `oci://` URLs, and the
//! descriptors and documents of manifests and indexes. Parsed and validated here, once.

pub mod digest;
pub mod document;
pub mod media_type;
pub mod url;

pub use digest::{Digest, DigestError};
pub use document::{Descriptor, Document};
pub use url::{OciUrl, OciUrlError};
