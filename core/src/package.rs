//! Jackal packages: one verifiable archive holding everything a set of workloads needs.
//!
//! ```text
//! jackal.yaml          the definition, with the build record and the aggregate checksum
//! jackal.yaml.sig      optional ECDSA P-256 signature of jackal.yaml (cosign sign-blob format)
//! checksums.txt        "<sha256> <path>" for every other file, sorted
//! components/<c>.tar   per component: charts/, values/, manifests/, files/
//! images/              one OCI image layout shared by every component, blobs deduplicated
//! ```
//!
//! [`create`] builds it from a `jackal.yaml`, [`archive`] writes and safely reads the
//! `.tar.zst`, [`verify`] checks checksums and signature, [`inspect`] summarises it, [`oci`]
//! publishes it to and pulls it from OCI registries.

pub mod archive;
pub mod checksums;
pub mod create;
pub mod images;
pub mod inspect;
pub mod oci;
pub mod signing;
pub mod sources;
pub mod verify;

use jackal_crds::definition::{PackageDefinition, PackageKind};

/// The definition inside a package.
pub const DEFINITION: &str = "jackal.yaml";
/// The signature of the definition.
pub const SIGNATURE: &str = "jackal.yaml.sig";
/// The checksums of every other file.
pub const CHECKSUMS: &str = "checksums.txt";
/// The shared OCI image layout.
pub const IMAGES: &str = "images";
/// The per-component archives.
pub const COMPONENTS: &str = "components";

/// The file a package is written to: `jackal-package-<name>-<arch>-<version>.tar.zst`
/// (`jackal-init-<arch>-<version>.tar.zst` for the init package; `.tar` when uncompressed).
pub fn file_name(definition: &PackageDefinition, architecture: &str) -> String {
    let mut name = match definition.kind {
        PackageKind::Init => format!("jackal-init-{architecture}"),
        PackageKind::Package => format!("jackal-package-{}-{architecture}", definition.metadata.name),
    };
    if let Some(version) = &definition.metadata.version {
        name.push('-');
        name.push_str(version);
    }
    if let Some(flavor) = definition.build.as_ref().and_then(|build| build.flavor.as_ref()) {
        name.push('-');
        name.push_str(flavor);
    }
    name.push_str(if definition.metadata.uncompressed {
        ".tar"
    } else {
        ".tar.zst"
    });
    name
}
