//! JSON-patch building blocks shared by the hooks.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use kube::core::ObjectMeta;
use serde_json::Value;

/// A JSON pointer from path segments (escaped as RFC 6901 requires).
pub fn pointer<'a>(segments: impl IntoIterator<Item = &'a str>) -> PointerBuf {
    PointerBuf::from_tokens(segments)
}

/// `replace` at `path`.
pub fn replace<'a>(path: impl IntoIterator<Item = &'a str>, value: Value) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation {
        path: pointer(path),
        value,
    })
}

/// `add` at `path` (creates or overwrites a member; `-` appends to an array).
pub fn add<'a>(path: impl IntoIterator<Item = &'a str>, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(path),
        value,
    })
}

/// Sets one annotation, creating `metadata.annotations`, and `metadata` itself, when the object
/// has none (a JSON patch cannot add a member under a parent that does not exist). Metadata that
/// deserialises to nothing is absent, `null` or `{}`, so replacing it loses nothing.
pub fn annotate(metadata: &ObjectMeta, key: &str, value: String) -> PatchOperation {
    if metadata.annotations.is_some() {
        add(["metadata", "annotations", key], Value::String(value))
    } else if *metadata == ObjectMeta::default() {
        add(["metadata"], serde_json::json!({ "annotations": { key: value } }))
    } else {
        add(["metadata", "annotations"], serde_json::json!({ key: value }))
    }
}

/// Applies `operations` to `document` (for tests and for checking what a patch does).
pub fn apply(document: &mut Value, operations: &[PatchOperation]) -> Result<(), json_patch::PatchError> {
    json_patch::patch(document, operations)
}
