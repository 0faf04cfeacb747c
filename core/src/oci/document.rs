//! Content descriptors and the documents that hold them (OCI and Docker manifests and indexes, a
//! layout's `index.json`): one pair of types for every reader and writer of OCI content.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::media_type::{self, OCI_INDEX, OCI_MANIFEST};

/// A content descriptor, as in `index.json`, indexes and manifests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform of a manifest inside an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    /// Foreign-layer URLs (such blobs are not stored with the image).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// A descriptor of `size` bytes of `media_type` content with `digest`.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
            urls: Vec::new(),
        }
    }

    /// The descriptor of `bytes` as `media_type` content.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// `(os, architecture)` of a manifest inside an index (empty strings when unset).
    pub fn os_and_architecture(&self) -> (&str, &str) {
        let field = |name: &str| {
            self.platform
                .as_ref()
                .and_then(|platform| platform.get(name))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
        };
        (field("os"), field("architecture"))
    }

    /// Whether the content lives elsewhere (a foreign layer), not with the image.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
    }
}

/// Any manifest, index or `index.json`: the fields that reference content.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// The declared media type (absent in some documents; see [`Self::kind`]).
    #[serde(default)]
    pub media_type: Option<String>,
    /// A manifest's config.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// A manifest's layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// An index's manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    #[serde(default)]
    pub subject: Option<Descriptor>,
}

impl Document {
    /// Parses a document from JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The media type, inferred from the content when the document does not declare one.
    pub fn kind(&self) -> &str {
        match &self.media_type {
            Some(declared) => declared,
            None if !self.manifests.is_empty() => OCI_INDEX,
            None => OCI_MANIFEST,
        }
    }

    /// Whether this is an index (its children are manifests).
    pub fn is_index(&self) -> bool {
        media_type::is_index(self.kind())
    }

    /// The config and layers of a manifest that are stored with the image (no foreign layers).
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(&self.layers)
            .filter(|blob| !blob.is_foreign())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_infer_their_kind_and_list_their_blobs() {
        let layer = Descriptor::of(media_type::OCI_LAYER, b"layer");
        let foreign = Descriptor {
            urls: vec!["https://example.com/layer".into()],
            ..Descriptor::of(media_type::OCI_LAYER, b"foreign")
        };
        let config = Descriptor::of(media_type::OCI_CONFIG, b"{}");
        let manifest = serde_json::json!({"schemaVersion": 2, "config": config, "layers": [layer, foreign]});
        let document = Document::parse(&serde_json::to_vec(&manifest).unwrap()).unwrap();
        assert_eq!(document.kind(), OCI_MANIFEST);
        assert!(!document.is_index());
        let blobs: Vec<_> = document.blobs().map(|blob| blob.digest.clone()).collect();
        assert_eq!(blobs, [config.digest, layer.digest]);

        let index = serde_json::json!({"manifests": [{"mediaType": OCI_MANIFEST, "digest": Digest::of(b"m"), "size": 1, "platform": {"os": "linux", "architecture": "arm64"}}]});
        let document = Document::parse(&serde_json::to_vec(&index).unwrap()).unwrap();
        assert!(document.is_index());
        assert_eq!(document.manifests[0].os_and_architecture(), ("linux", "arm64"));
        assert!(Document::parse(br#"{"layers": [{"digest": "md5:0", "size": 1}]}"#).is_err());
    }
}
