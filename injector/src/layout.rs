//! The OCI image layout inside the payload: which repositories and tags it holds, which blobs
//! belong to each repository, and the media type of every manifest. Built once at start-up from
//! `index.json` (each image annotated with its full original reference in
//! `org.opencontainers.image.ref.name`), walking every manifest and index it reaches, so a missing
//! blob is found before anything is served.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;

use crate::archive::{Index, Span};
use crate::chunks::Chunks;
use crate::error::Error;

/// Annotation holding an image's full reference (`docker.io/library/registry:3.1.2`).
pub const REFERENCE_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Manifests and indexes larger than this are refused (they are read into memory).
const MAX_DOCUMENT: u64 = 4 << 20;

const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// One repository of the seed registry.
#[derive(Debug, Default)]
pub struct Repository {
    /// Tag → manifest digest.
    pub tags: BTreeMap<String, String>,
    /// Every blob (manifests included) reachable from this repository's images.
    pub blobs: HashSet<String>,
}

/// The images of the payload.
#[derive(Debug)]
pub struct Payload {
    repositories: BTreeMap<String, Repository>,
    /// Manifest digest → media type.
    manifests: HashMap<String, String>,
    index: Index,
    images: usize,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    urls: Vec<String>,
}

/// Any of `index.json`, an image index or an image manifest.
#[derive(Deserialize)]
struct Document {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

impl Payload {
    /// Reads the layout out of the payload and checks that every referenced blob is present.
    pub fn load(chunks: &Chunks, index: &Index) -> Result<Self, Error> {
        if !index.contains_key("oci-layout") {
            return Err(Error::Layout("the oci-layout file is missing".into()));
        }
        let mut payload = Self {
            repositories: BTreeMap::new(),
            manifests: HashMap::new(),
            index: index.clone(),
            images: 0,
        };
        let root: Document = payload.document(chunks, "index.json")?;
        for descriptor in root.manifests {
            let Some(reference) = descriptor.annotations.get(REFERENCE_ANNOTATION) else {
                eprintln!(
                    "jackal-injector: skipping image {} without a {REFERENCE_ANNOTATION} annotation",
                    descriptor.digest
                );
                continue;
            };
            let (names, tag) = split_reference(reference).ok_or_else(|| {
                Error::Layout(format!(
                    "image {} has an unusable reference {reference:?}",
                    descriptor.digest
                ))
            })?;
            let mut blobs = HashSet::new();
            payload.walk(chunks, &descriptor, &mut blobs, reference)?;
            for name in names {
                let repository = payload.repositories.entry(name).or_default();
                if let Some(tag) = &tag {
                    repository.tags.insert(tag.clone(), descriptor.digest.clone());
                }
                repository.blobs.extend(blobs.iter().cloned());
            }
            payload.images += 1;
        }
        if payload.images == 0 {
            return Err(Error::Layout(
                "index.json lists no image with a reference annotation".into(),
            ));
        }
        Ok(payload)
    }

    /// Number of images (tagged references) served.
    pub fn image_count(&self) -> usize {
        self.images
    }

    /// Number of repository names served (an image answers under its path and under host/path).
    pub fn repository_count(&self) -> usize {
        self.repositories.len()
    }

    /// A repository by name.
    pub fn repository(&self, name: &str) -> Option<&Repository> {
        self.repositories.get(name)
    }

    /// Every repository name, sorted.
    pub fn repository_names(&self) -> impl Iterator<Item = &str> {
        self.repositories.keys().map(String::as_str)
    }

    /// The media type of a manifest or index, if `digest` is one.
    pub fn manifest_media_type(&self, digest: &str) -> Option<&str> {
        self.manifests.get(digest).map(String::as_str)
    }

    /// Where a blob's bytes are.
    pub fn blob(&self, digest: &str) -> Option<Span> {
        let hex = digest.strip_prefix("sha256:")?;
        self.index.get(&format!("blobs/sha256/{hex}")).copied()
    }

    /// Records `descriptor` and everything it references as blobs of one image.
    fn walk(
        &mut self,
        chunks: &Chunks,
        descriptor: &Descriptor,
        blobs: &mut HashSet<String>,
        image: &str,
    ) -> Result<(), Error> {
        if !descriptor.urls.is_empty() || !blobs.insert(descriptor.digest.clone()) {
            return Ok(()); // a foreign layer, or already seen
        }
        if self.blob(&descriptor.digest).is_none() {
            return Err(Error::Layout(format!(
                "image {image} references blob {} which the payload lacks",
                descriptor.digest
            )));
        }
        let is_manifest = descriptor.media_type.contains("manifest")
            || INDEX_MEDIA_TYPES.contains(&descriptor.media_type.as_str());
        if !is_manifest {
            return Ok(());
        }
        let path = format!("blobs/sha256/{}", descriptor.digest.trim_start_matches("sha256:"));
        let document: Document = self.document(chunks, &path)?;
        let media_type = if descriptor.media_type.is_empty() {
            document.media_type.clone()
        } else {
            descriptor.media_type.clone()
        };
        self.manifests.insert(descriptor.digest.clone(), media_type);
        for child in document
            .config
            .iter()
            .chain(&document.layers)
            .chain(&document.manifests)
        {
            self.walk(chunks, child, blobs, image)?;
        }
        Ok(())
    }

    fn document(&self, chunks: &Chunks, path: &str) -> Result<Document, Error> {
        let span = self
            .index
            .get(path)
            .ok_or_else(|| Error::Layout(format!("{path} is missing")))?;
        if span.length > MAX_DOCUMENT {
            return Err(Error::Layout(format!(
                "{path} is {} bytes, larger than a manifest can be",
                span.length
            )));
        }
        let bytes = chunks
            .read_range(span.offset, span.length)
            .map_err(|error| Error::Layout(format!("failed to read {path}: {error}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|error| Error::Layout(format!("{path} is not valid JSON: {error}")))
    }
}

/// Splits `docker.io/library/registry:3.1.2` into the names it is served under
/// (`library/registry`, `docker.io/library/registry`) and its tag (none for a digest reference).
fn split_reference(reference: &str) -> Option<(Vec<String>, Option<String>)> {
    let (name, tag) = match reference.split_once('@') {
        Some((name, _digest)) => (name, None),
        None => match reference.rfind(':') {
            Some(colon) if !reference[colon + 1..].contains('/') => {
                (&reference[..colon], Some(&reference[colon + 1..]))
            }
            _ => (reference, Some("latest")),
        },
    };
    let (host, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (first, rest.to_owned())
        }
        _ if name.contains('/') => ("docker.io", name.to_owned()),
        _ => ("docker.io", format!("library/{name}")),
    };
    if path.is_empty() || tag.is_some_and(str::is_empty) {
        return None;
    }
    Some((
        vec![path.clone(), format!("{host}/{path}")],
        tag.map(str::to_owned),
    ))
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_are_served_under_their_path_and_host_path() {
        let cases = [
            (
                "docker.io/library/registry:3.1.2",
                "library/registry",
                "docker.io/library/registry",
                Some("3.1.2"),
            ),
            (
                "registry:3",
                "library/registry",
                "docker.io/library/registry",
                Some("3"),
            ),
            ("ghcr.io/a/b/c:v1", "a/b/c", "ghcr.io/a/b/c", Some("v1")),
            ("127.0.0.1:5000/demo:1", "demo", "127.0.0.1:5000/demo", Some("1")),
            ("localhost/pause", "pause", "localhost/pause", Some("latest")),
            (
                "jackaldev/web@sha256:abc",
                "jackaldev/web",
                "docker.io/jackaldev/web",
                None,
            ),
        ];
        for (reference, path, full, tag) in cases {
            let (names, parsed_tag) = split_reference(reference).unwrap();
            assert_eq!(names, [path, full], "{reference}");
            assert_eq!(parsed_tag.as_deref(), tag, "{reference}");
        }
        assert!(split_reference("registry:").is_none());
    }
}
