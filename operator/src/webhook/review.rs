//! One admission review, from request body to response body: decode, dispatch to the hook for the
//! kind, turn the outcome into an allow (with or without a patch) or a deny, count and log it.
//! Malformed reviews get HTTP 400 with an `AdmissionReview` explaining why; nothing here panics.

use std::time::Instant;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};

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
    let mut response = AdmissionResponse::from(&request);
    let outcome = match &request.object {
        None => "unchanged",
        Some(object) => match hooks::mutate(&request.kind, &request.operation, object, rules) {
            Ok(operations) if operations.is_empty() => "unchanged",
            Ok(operations) => {
                let count = operations.len();
                match response.clone().with_patch(json_patch::Patch(operations)) {
                    Ok(patched) => {
                        response = patched;
                        tracing::info!(%kind, %operation, object = %target, operations = count, "rewritten");
                        "mutated"
                    }
                    Err(error) => {
                        response = response.deny(format!("failed to encode the patch: {error}"));
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
    encode(400, AdmissionResponse::invalid(reason))
}

fn encode(status: u16, response: AdmissionResponse) -> Answer {
    match serde_json::to_vec(&response.into_review()) {
        Ok(body) => Answer { status, body },
        Err(_) => Answer {
            status: 500,
            body: br#"{"error":"failed to encode the AdmissionReview"}"#.to_vec(),
        },
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
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

    #[test]
    fn a_pod_review_is_answered_with_a_json_patch() {
        let metrics = Metrics::default();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
        let answer = answer(&review(pod, ("", "v1", "Pod")), &rules(), &metrics);
        assert_eq!(answer.status, 200);
        let response = response(&answer);
        assert_eq!(response["uid"], "b9e1c2f0-0000-4000-8000-000000000001");
        assert_eq!(response["allowed"], true);
        assert_eq!(response["patchType"], "JSONPatch");
        // kube serialises the patch bytes as a JSON array (the API server accepts it like base64).
        let patch: Vec<u8> = match &response["patch"] {
            Value::String(encoded) => base64::engine::general_purpose::STANDARD.decode(encoded).unwrap(),
            other => serde_json::from_value(other.clone()).unwrap(),
        };
        let patch: Value = serde_json::from_slice(&patch).unwrap();
        assert_eq!(
            patch[0],
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": "127.0.0.1:31999/docker.io/library/nginx"})
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
