//! The webhook's routes in process, through warp's test client: real reviews in, real responses
//! out, no socket and no cluster. Table-driven, like the hooks.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jackal_crds::state::Password;
use jackal_operator::metrics::Metrics;
use jackal_operator::webhook::certs::{Bundle, Identity, Validity};
use jackal_operator::webhook::hooks::Rules;
use jackal_operator::webhook::server::{WebhookState, routes};
use jackal_operator::webhook::tls::CertificateStore;
use serde_json::{Value, json};

fn state() -> Arc<WebhookState> {
    let rules = Rules {
        registry: "127.0.0.1:31999".into(),
        registry_username: "jackal-pull".into(),
        registry_password: Password("password".into()),
        pull_secret: "private-registry".into(),
        git: None,
    };
    WebhookState::new(
        rules,
        Arc::new(Metrics::default()),
        Arc::new(CertificateStore::default()),
    )
}

fn pod_review(image: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-4000-8000-000000000042",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"},
                       "spec": {"containers": [{"name": "web", "image": image}]}},
        }
    })
}

#[tokio::test]
async fn reviews_and_probes_answer_over_http() {
    let state = state();
    let filter = routes(Arc::clone(&state));
    let large = vec![b' '; 4 * 1024 * 1024];
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/mutate",
            serde_json::to_vec(&pod_review("nginx")).unwrap(),
            200,
            r#""allowed":true"#,
        ),
        (
            "POST",
            "/mutate",
            serde_json::to_vec(&pod_review("NOT VALID")).unwrap(),
            200,
            r#""allowed":true,"warnings":["jackal: container \"web\" left unchanged: \"NOT VALID\" is not a valid image reference"#,
        ),
        (
            "POST",
            "/mutate",
            b"{\"apiVersion\": ".to_vec(),
            400,
            "the body is not an AdmissionReview",
        ),
        (
            "POST",
            "/mutate",
            large,
            413,
            "larger than an admission review can be",
        ),
        ("GET", "/mutate", Vec::new(), 405, "method not allowed"),
        ("GET", "/healthz", Vec::new(), 200, "ok"),
        (
            "GET",
            "/readyz",
            Vec::new(),
            503,
            "no serving certificate loaded yet",
        ),
        ("GET", "/nothing", Vec::new(), 404, "not found"),
    ];
    for (method, path, body, status, contains) in cases {
        let response = warp::test::request()
            .method(method)
            .path(path)
            .body(body)
            .reply(&filter)
            .await;
        let text = String::from_utf8_lossy(response.body());
        assert_eq!(response.status().as_u16(), status, "{method} {path}: {text}");
        assert!(text.contains(contains), "{method} {path}: {text}");
    }

    // Ready once a certificate is loaded.
    let bundle = Bundle::generate(
        &Identity::service("jackal-webhook", "jackal"),
        &Validity::default(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    state
        .certificates
        .load(&bundle.leaf.certificate, &bundle.leaf.key)
        .unwrap();
    let ready = warp::test::request().path("/readyz").reply(&filter).await;
    assert_eq!(ready.status().as_u16(), 200);
    let metrics = state.metrics.encode();
    assert!(
        metrics.contains(r#"jackal_admissions_total{kind="Pod",operation="CREATE",outcome="mutated"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"jackal_admissions_total{kind="Pod",operation="CREATE",outcome="warned"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn new_rules_apply_to_the_next_review() {
    let state = state();
    let filter = routes(Arc::clone(&state));
    let mut rules = (*state.rules()).clone();
    rules.registry = "127.0.0.1:32000".into();
    state.set_rules(rules);
    let response = warp::test::request()
        .method("POST")
        .path("/mutate")
        .json(&pod_review("nginx"))
        .reply(&filter)
        .await;
    let review: Value = serde_json::from_slice(response.body()).unwrap();
    // The documented wire format: a base64 string.
    let encoded = review["response"]["patch"].as_str().unwrap();
    let patch = BASE64.decode(encoded).unwrap();
    assert!(
        String::from_utf8(patch)
            .unwrap()
            .contains("127.0.0.1:32000/docker.io/library/nginx")
    );
}
