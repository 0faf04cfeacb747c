//! Media types Jackal reads and writes, each spelled once: OCI and Docker manifests and indexes,
//! image configs and layers, Helm charts, and the package artifact's own types (ADR 0007).

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, uncompressed tar.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker layer, gzip-compressed tar.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The layer of a Helm chart pushed to an OCI registry.
pub const HELM_CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// Every layer of a Jackal package artifact (one per file of the package).
pub const JACKAL_LAYER: &str = "application/vnd.jackal.layer.v1.blob";
/// The config of a Jackal package artifact.
pub const JACKAL_CONFIG: &str = "application/vnd.jackal.config.v1+json";
/// The artifact type of a Jackal package.
pub const JACKAL_PACKAGE: &str = "application/vnd.jackal.package.v1";

/// The manifest types accepted when pulling an image: both kinds of manifest and of index.
pub const IMAGE_MANIFESTS: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// True for image indexes (OCI index, Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_LIST)
}

/// True for image manifests and indexes (OCI and Docker): content that references other blobs.
pub fn is_manifest(media_type: &str) -> bool {
    IMAGE_MANIFESTS.contains(&media_type)
}
