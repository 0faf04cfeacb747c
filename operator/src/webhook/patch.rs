//! JSON-patch building blocks shared by the hooks.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
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

/// Sets one annotation, creating `metadata.annotations` if the object has none.
pub fn annotate(has_annotations: bool, key: &str, value: String) -> PatchOperation {
    if has_annotations {
        add(["metadata", "annotations", key], Value::String(value))
    } else {
        add(["metadata", "annotations"], serde_json::json!({ key: value }))
    }
}

/// Applies `operations` to `document` (for tests and for checking what a patch does).
pub fn apply(document: &mut Value, operations: &[PatchOperation]) -> Result<(), json_patch::PatchError> {
    json_patch::patch(document, operations)
}
