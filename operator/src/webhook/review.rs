//! One admission review, from request body to response body: decode, dispatch to the hook for the
//! kind, turn the outcome into an allow (with or without a patch, with or without warnings) or a
//! deny, count and log it. Only the webhook's own misconfiguration denies: a kind without a rule
//! or a reference that cannot be rewritten is allowed unchanged with a warning, so the API server
//! judges the object as its author wrote it. Malformed reviews get HTTP 400 with an
//! `AdmissionReview` explaining why; nothing here panics.
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

use super::hooks::{self, Admission, Rules};
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
        Some(object) => {
            let admission = Admission {
                kind: &request.kind,
                operation: &request.operation,
                object,
                old_object: request.old_object.as_ref(),
            };
            match hooks::mutate(&admission, rules) {
                Ok(mutation) => {
                    response.warnings = mutation.warnings;
                    for warning in &response.warnings {
                        tracing::info!(%kind, %operation, object = %target, %warning, "left unchanged");
                    }
                    let warned = !response.warnings.is_empty();
                    if mutation.operations.is_empty() {
                        if warned { "warned" } else { "unchanged" }
                    } else {
                        let count = mutation.operations.len();
                        match serde_json::to_vec(&json_patch::Patch(mutation.operations)) {
                            Ok(patch) => {
                                response.patch = Some(BASE64.encode(patch));
                                response.patch_type = Some("JSONPatch");
                                tracing::info!(%kind, %operation, object = %target, operations = count, "rewritten");
                                if warned { "warned" } else { "mutated" }
                            }
                            Err(error) => {
                                response =
                                    response.deny(format!("jackal: failed to encode the patch: {error}"));
                                "denied"
                            }
                        }
                    }
                }
                Err(error) if error.is_misconfiguration() => {
                    tracing::warn!(%kind, %operation, object = %target, %error, "denied");
                    response = response.deny(format!("jackal: {error}"));
                    "denied"
                }
                Err(error) => {
                    tracing::info!(%kind, %operation, object = %target, %error, "left unchanged");
                    response.warnings.push(format!("jackal: left unchanged: {error}"));
                    "warned"
                }
            }
        }
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
        review_of(object, kind, "CREATE", Value::Null)
    }

    fn review_of(object: Value, kind: (&str, &str, &str), operation: &str, old_object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "b9e1c2f0-0000-4000-8000-000000000001",
                "kind": {"group": kind.0, "version": kind.1, "kind": kind.2},
                "resource": {"group": kind.0, "version": kind.1, "resource": "pods"},
                "name": "web",
                "namespace": "shop",
                "operation": operation,
                "userInfo": {"username": "alice"},
                "object": object,
                "oldObject": old_object,
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

    fn warnings(response: &Value) -> Vec<String> {
        serde_json::from_value(response["warnings"].clone()).unwrap_or_default()
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
        assert!(response.get("warnings").is_none(), "{response}");
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
    }

    struct Case {
        name: &'static str,
        kind: (&'static str, &'static str, &'static str),
        operation: &'static str,
        object: Value,
        old_object: Value,
        /// `allowed`, and the object once the patch is applied.
        expected: (bool, Value),
        /// How each warning starts.
        warnings: &'static [&'static str],
        outcome: &'static str,
    }

    fn pod_with(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": containers}})
    }

    #[test]
    fn reviews_as_outside_callers_send_them() {
        let rewritten = |image: &str, original: &str| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "annotations": {"jackal.dev/original-images": format!(r#"{{"app":"{original}"}}"#)}},
                "spec": {"containers": [{"name": "app", "image": image}], "imagePullSecrets": [{"name": "private-registry"}]},
            })
        };
        let cases = [
            Case {
                name: "a kind without a rule is allowed unchanged, with a warning",
                kind: ("", "v1", "ConfigMap"),
                operation: "CREATE",
                object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
                old_object: Value::Null,
                expected: (
                    true,
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
                ),
                warnings: &[
                    "jackal: left unchanged: the jackal webhook has no rewrite rule for /v1 ConfigMap",
                ],
                outcome: "warned",
            },
            Case {
                name: "an IPv6 registry host is rewritten, not refused",
                kind: ("", "v1", "Pod"),
                operation: "CREATE",
                object: pod_with(json!([{"name": "app", "image": "[::1]:5000/app:1"}])),
                old_object: Value::Null,
                expected: (
                    true,
                    rewritten("127.0.0.1:31999/ip6__x-x-1_5000/app:1", "[::1]:5000/app:1"),
                ),
                warnings: &[],
                outcome: "mutated",
            },
            Case {
                name: "an invalid reference is left as written, with a warning",
                kind: ("", "v1", "Pod"),
                operation: "CREATE",
                object: pod_with(json!([{"name": "app", "image": "a_-b"}])),
                old_object: Value::Null,
                expected: (true, pod_with(json!([{"name": "app", "image": "a_-b"}]))),
                warnings: &[
                    r#"jackal: container "app" left unchanged: "a_-b" is not a valid image reference"#,
                ],
                outcome: "warned",
            },
            Case {
                name: "an uppercase image is left as written, with a warning",
                kind: ("", "v1", "Pod"),
                operation: "CREATE",
                object: pod_with(json!([{"name": "app", "image": "UPPER"}])),
                old_object: Value::Null,
                expected: (true, pod_with(json!([{"name": "app", "image": "UPPER"}]))),
                warnings: &[r#"jackal: container "app" left unchanged: "UPPER""#],
                outcome: "warned",
            },
            Case {
                name: "an update setting an image is rewritten",
                kind: ("", "v1", "Pod"),
                operation: "UPDATE",
                object: rewritten("nginx:1.28", "nginx:1.27"),
                old_object: rewritten("127.0.0.1:31999/docker.io/library/nginx:1.27", "nginx:1.27"),
                expected: (
                    true,
                    rewritten("127.0.0.1:31999/docker.io/library/nginx:1.28", "nginx:1.28"),
                ),
                warnings: &[],
                outcome: "mutated",
            },
            Case {
                name: "an object without metadata gets it, so the patch applies",
                kind: ("", "v1", "Pod"),
                operation: "CREATE",
                object: json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "app", "image": "nginx"}]}}),
                old_object: Value::Null,
                expected: (
                    true,
                    json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"annotations": {"jackal.dev/original-images": r#"{"app":"nginx"}"#}},
                        "spec": {"containers": [{"name": "app", "image": "127.0.0.1:31999/docker.io/library/nginx"}],
                                 "imagePullSecrets": [{"name": "private-registry"}]},
                    }),
                ),
                warnings: &[],
                outcome: "mutated",
            },
            Case {
                name: "a Flux source without metadata gets it too",
                kind: ("source.toolkit.fluxcd.io", "v1", "OCIRepository"),
                operation: "CREATE",
                object: json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository", "metadata": {}, "spec": {"url": "oci://ghcr.io/x/y"}}),
                old_object: Value::Null,
                expected: (
                    true,
                    json!({
                        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                        "metadata": {"annotations": {"jackal.dev/original-urls": r#"{"spec.url":"oci://ghcr.io/x/y"}"#}},
                        "spec": {"url": "oci://127.0.0.1:31999/ghcr.io/x/y", "secretRef": {"name": "private-registry"},
                                 "insecure": true, "provider": "generic"},
                    }),
                ),
                warnings: &[],
                outcome: "mutated",
            },
        ];
        for case in cases {
            let metrics = Metrics::default();
            let body = review_of(case.object.clone(), case.kind, case.operation, case.old_object);
            let answer = answer(&body, &rules(), &metrics);
            assert_eq!(answer.status, 200, "{}", case.name);
            let response = response(&answer);
            assert_eq!(response["allowed"], case.expected.0, "{}: {response}", case.name);
            assert_eq!(patched(&case.object, &response), case.expected.1, "{}", case.name);
            let warnings = warnings(&response);
            assert_eq!(warnings.len(), case.warnings.len(), "{}: {warnings:?}", case.name);
            for (warning, start) in warnings.iter().zip(case.warnings) {
                assert!(warning.starts_with(start), "{}: {warning}", case.name);
            }
            let counted = format!(
                r#"jackal_admissions_total{{kind="{}",operation="{}",outcome="{}"}} 1"#,
                case.kind.2, case.operation, case.outcome
            );
            assert!(
                metrics.encode().contains(&counted),
                "{}: {}",
                case.name,
                metrics.encode()
            );
        }
    }

    #[test]
    fn only_a_misconfigured_webhook_denies() {
        let metrics = Metrics::default();
        let mut misconfigured = rules();
        misconfigured.registry = "not a registry".into();
        let pod = pod_with(json!([{"name": "app", "image": "nginx"}]));
        let answer = answer(&review(pod, ("", "v1", "Pod")), &misconfigured, &metrics);
        let response = response(&answer);
        assert_eq!((answer.status, &response["allowed"]), (200, &json!(false)));
        assert_eq!(
            response["status"]["message"],
            r#"jackal: container "app": the in-cluster registry "not a registry" is not HOST[:PORT]"#
        );
        assert_eq!(response["status"]["code"], 403);
        assert!(response.get("patch").is_none(), "{response}");
        assert!(
            metrics
                .encode()
                .contains(r#"jackal_admissions_total{kind="Pod",operation="CREATE",outcome="denied"} 1"#)
        );
    }
}
