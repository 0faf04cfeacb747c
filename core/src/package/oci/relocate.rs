//! Relocation: a package's images, as they sit in its OCI artifact (every image blob and manifest
//! a layer of the artifact), made into images of a registry (`HOST[:PORT]/<original path>`). When
//! the artifact is in that registry, every blob is mounted from the artifact's repository and only
//! the manifests are written: no blob byte moves. Otherwise blobs stream from the artifact's
//! registry, skipped when the target has them.

use std::path::Path;

use super::pull::Artifact;
use super::{OciError, malformed};
use crate::layout::{REFERENCE_ANNOTATION, parse_index};
use crate::oci::OciUrl;
use crate::progress::Progress;
use crate::registry::Access;
use crate::registry::copy::{Copied, copy_from_blobs};
use crate::transform::image::to_internal;

/// The images' index in a package.
const IMAGE_INDEX: &str = "images/index.json";

/// One image relocated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relocated {
    /// The image as the package names it (`docker.io/library/nginx:1.27`).
    pub image: String,
    /// Where it is now (`127.0.0.1:31999/docker.io/library/nginx:1.27`, as reached here).
    pub target: String,
    /// What moved.
    pub copied: Copied,
}

/// Relocates `images` (every image of the package when empty) of the package artifact `source`
/// into `registry` (`HOST[:PORT]`, as this process reaches it). `scratch` must not exist; it is
/// removed afterwards.
pub async fn relocate(
    source: &OciUrl,
    images: &[String],
    registry: &str,
    access: &Access,
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<Vec<Relocated>, OciError> {
    let result = async {
        let artifact = Artifact::open(source, access, scratch, progress).await?;
        artifact.download(vec![IMAGE_INDEX.to_owned()]).await?;
        let path = scratch.join(IMAGE_INDEX);
        let bytes = std::fs::read(&path).map_err(|source| OciError::Io {
            path: path.clone(),
            source,
        })?;
        let index = parse_index(&bytes, &path).map_err(|error| malformed(IMAGE_INDEX, error))?;
        let named =
            |descriptor: &crate::oci::Descriptor| descriptor.annotations.get(REFERENCE_ANNOTATION).cloned();
        let wanted: Vec<String> = if images.is_empty() {
            index.iter().filter_map(named).collect()
        } else {
            images.to_vec()
        };
        let mut relocated = Vec::new();
        for (number, image) in wanted.iter().enumerate() {
            let top = index
                .iter()
                .find(|descriptor| named(descriptor).as_deref() == Some(image.as_str()))
                .ok_or_else(|| OciError::Malformed {
                    what: source.to_string(),
                    reason: format!("the package holds no image {image}"),
                })?;
            let target = to_internal(image, registry).map_err(|error| malformed(image, error))?;
            let reference: oci_client::Reference =
                target.parse().map_err(|error| malformed(&target, error))?;
            progress.step(&format!(
                "relocating {image} ({} of {})",
                number + 1,
                wanted.len()
            ));
            let copied =
                copy_from_blobs(artifact.reference(), &top.digest, image, &reference, access).await?;
            relocated.push(Relocated {
                image: image.clone(),
                target,
                copied,
            });
        }
        Ok(relocated)
    }
    .await;
    let _ = std::fs::remove_dir_all(scratch);
    result
}
