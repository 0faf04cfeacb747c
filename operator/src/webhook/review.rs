//! One admission review, from request body to response body: decode, dispatch to the hook for the
//! kind, turn the outcome into an allow (with or without a patch) or a deny, count and log it.
//! Malformed reviews get HTTP 400 with an `AdmissionReview` explaining why; nothing here panics.
//!
//! The response is written through its own wire type because kube's `AdmissionResponse`
//! serialises the patch as a JSON array of numbers, while the documented format is a base64
//! string (`response.patch` with `patchType: JSONPatch`).

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use kube::core::{DynamicObject, Status};
use serde::Serialize;

use super::hooks::{self, Rules};
use crate::metrics::{AdmissionLabels, KindLabels, Metrics};

/// Largest review body accepted (the API server's own request limit is 3 MiB).
pub const MAX_BODY: u64 = 3 * 1024 * 1024 + 64 * 1024;

/// The HTTP status and JSON body answering one review.
pub struct Answer {
    /// 200, or 400 for a body that is not an admission review.
    pub status: u16,
    /// A serialised `AdmissionReview`.
    pub body: Vec<u8>,
}

/// An `admission.k8s.io/v1` `AdmissionReview` response as it goes on the wire.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReview {
    api_version: &'static str,
    kind: &'static str,
    response: WireResponse,
}

/// The `response` of a [`WireReview`].
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    /// The JSON patch, base64-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

impl WireResponse {
    fn allow(uid: String) -> Self {
        Self {
            uid,
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
        }
    }

    fn deny(mut self, message: String) -> Self {
        self.allowed = false;
        self.patch = None;
        self.patch_type = None;
        self.status = Some(Status::failure(&message, "Forbidden").with_code(403));
        self
    }
}

/// Decides one review.
pub fn answer(body: &[u8], rules: &Rules, metrics: &Metrics) -> Answer {
    let started = Instant::now();
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(error) => return invalid(&format!("the body is not an AdmissionReview: {error}"), metrics),
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(_) => return invalid("the AdmissionReview has no request", metrics),
    };
    let kind = request.kind.kind.clone();
    let operation = format!("{:?}", request.operation).to_uppercase();
    let target = format!(
        "{}/{}",
        request.namespace.as_deref().unwrap_or("-"),
        display_name(&request)
    );
    let mut response = WireResponse::allow(request.uid.clone());
    let outcome = match &request.object {
        None => "unchanged",
        Some(object) => match hooks::mutate(&request.kind, &request.operation, object, rules) {
            Ok(operations) if operations.is_empty() => "unchanged",
            Ok(operations) => {
                let count = operations.len();
                match serde_json::to_vec(&json_patch::Patch(operations)) {
                    Ok(patch) => {
                        response.patch = Some(BASE64.encode(patch));
                        response.patch_type = Some("JSONPatch");
                        tracing::info!(%kind, %operation, object = %target, operations = count, "rewritten");
                        "mutated"
                    }
                    Err(error) => {
                        response = response.deny(format!("jackal: failed to encode the patch: {error}"));
                        "denied"
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%kind, %operation, object = %target, %error, "denied");
                response = response.deny(format!("jackal: {error}"));
                "denied"
            }
        },
    };
    metrics
        .admissions
        .get_or_create(&AdmissionLabels {
            kind: kind.clone(),
            operation,
            outcome,
        })
        .inc();
    metrics
        .admission_duration
        .get_or_create(&KindLabels { kind })
        .observe(started.elapsed().as_secs_f64());
    encode(200, response)
}

fn display_name(request: &AdmissionRequest<DynamicObject>) -> String {
    if !request.name.is_empty() {
        return request.name.clone();
    }
    let generate = request
        .object
        .as_ref()
        .and_then(|object| object.metadata.generate_name.clone());
    generate.map_or_else(|| "<unnamed>".to_owned(), |prefix| format!("{prefix}*"))
}

fn invalid(reason: &str, metrics: &Metrics) -> Answer {
    tracing::warn!(reason, "invalid admission review");
    let labels = AdmissionLabels {
        kind: "unknown".into(),
        operation: "unknown".into(),
        outcome: "invalid",
    };
    metrics.admissions.get_or_create(&labels).inc();
    let mut response = WireResponse::allow(String::new());
    response.allowed = false;
    response.status = Some(Status::failure(reason, "InvalidRequest").with_code(400));
    encode(400, response)
}

fn encode(status: u16, response: WireResponse) -> Answer {
    let review = WireReview {
        api_version: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response,
    };
    match serde_json::to_vec(&review) {
        Ok(body) => Answer { status, body },
        Err(_) => Answer {
            status: 500,
            body: br#"{"error":"failed to encode the AdmissionReview"}"#.to_vec(),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::webhook::hooks::tests::rules;

    fn review(object: Value, kind: (&str, &str, &str)) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "b9e1c2f0-0000-4000-8000-000000000001",
                "kind": {"group": kind.0, "version": kind.1, "kind": kind.2},
                "resource": {"group": kind.0, "version": kind.1, "resource": "pods"},
                "name": "web",
                "namespace": "shop",
                "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": object,
                "dryRun": false,
            }
        }))
        .unwrap()
    }

    fn response(answer: &Answer) -> Value {
        serde_json::from_slice::<Value>(&answer.body).unwrap()["response"].clone()
    }

    /// The patch of a response, which must be a base64 string holding a JSON patch.
    fn patch_of(response: &Value) -> json_patch::Patch {
        let Value::String(encoded) = &response["patch"] else {
            panic!("the patch is not a base64 string: {response}");
        };
        assert_eq!(response["patchType"], "JSONPatch", "{response}");
        serde_json::from_slice(&BASE64.decode(encoded).unwrap()).unwrap()
    }

    /// The object after the response's patch (none: unchanged), which must apply.
    fn patched(object: &Value, response: &Value) -> Value {
        let mut patched = object.clone();
        if !response["patch"].is_null() {
            json_patch::patch(&mut patched, &patch_of(response))
                .unwrap_or_else(|error| panic!("the patch does not apply to {object}: {error}; {response}"));
        }
        patched
    }

    #[test]
    fn a_pod_review_is_answered_with_a_base64_json_patch() {
        let metrics = Metrics::default();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
        let answer = answer(&review(pod.clone(), ("", "v1", "Pod")), &rules(), &metrics);
        assert_eq!(answer.status, 200);
        let wire: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            (&wire["apiVersion"], &wire["kind"]),
            (&json!("admission.k8s.io/v1"), &json!("AdmissionReview"))
        );
        let response = response(&answer);
        assert_eq!(response["uid"], "b9e1c2f0-0000-4000-8000-000000000001");
        assert_eq!(response["allowed"], true);
        assert!(
            response["patch"].is_string(),
            "the documented wire format: {response}"
        );
        let patch = serde_json::to_value(patch_of(&response)).unwrap();
        assert_eq!(
            patch[0],
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": "127.0.0.1:31999/docker.io/library/nginx"})
        );
        assert_eq!(
            patched(&pod, &response)["spec"]["containers"][0]["image"],
            "127.0.0.1:31999/docker.io/library/nginx"
        );
        let exported = metrics.encode();
        assert!(
            exported
                .contains(r#"jackal_admissions_total{kind="Pod",operation="CREATE",outcome="mutated"} 1"#),
            "{exported}"
        );
        assert!(
            exported.contains("jackal_admission_duration_seconds_count{kind=\"Pod\"} 1"),
            "{exported}"
        );
    }

    #[test]
    fn bad_input_is_answered_never_crashes() {
        let metrics = Metrics::default();
        for body in [
            &b"not json"[..],
            b"{}",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            b"[1,2,3]",
        ] {
            let answer = answer(body, &rules(), &metrics);
            assert_eq!(answer.status, 400, "{}", String::from_utf8_lossy(body));
            let response = response(&answer);
            assert_eq!(response["allowed"], false);
            assert!(
                response["status"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("AdmissionReview"),
                "{response}"
            );
        }
        // A kind without a rule, or an invalid image: a clear denial, HTTP 200.
        let unknown = answer(
            &review(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
                ("", "v1", "ConfigMap"),
            ),
            &rules(),
            &metrics,
        );
        let denied = response(&unknown);
        assert_eq!((unknown.status, &denied["allowed"]), (200, &json!(false)));
        assert_eq!(
            denied["status"]["message"],
            "jackal: the jackal webhook has no rewrite rule for /v1 ConfigMap"
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "UPPER"}]}});
        let invalid_image = response(&answer(&review(pod, ("", "v1", "Pod")), &rules(), &metrics));
        assert!(
            invalid_image["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with("jackal: container \"app\""),
            "{invalid_image}"
        );
    }
}
