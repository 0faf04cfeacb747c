//! Hand-written OpenAPI fragments for the few fields the derive cannot express structurally.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// Free-form Helm values: an object the API server stores as given.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct FreeFormObject(pub serde_json::Map<String, serde_json::Value>);

impl JsonSchema for FreeFormObject {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FreeFormObject".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}
