//! The webhook's TLS endpoint speaks both protocols it offers: HTTP/2 (what the API server uses)
//! and HTTP/1.1, each chosen by ALPN, answering the same review the same way.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jackal_operator::metrics::Metrics;
use jackal_operator::webhook::certs::{Bundle, Validity};
use jackal_operator::webhook::server::{self, WebhookState};
use jackal_operator::webhook::tls::{CertificateStore, server_config};
use jackal_tests::webhook::{REGISTRY, loopback_identity, test_rules};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

fn review() -> Bytes {
    Bytes::from(
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "00000000-0000-4000-8000-000000000007",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop",
                "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                           "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}},
            }
        })
        .to_string(),
    )
}

#[tokio::test]
async fn reviews_are_answered_over_http2_and_http1() -> anyhow::Result<()> {
    let bundle = Bundle::generate(
        &loopback_identity()?,
        &Validity::default(),
        time::OffsetDateTime::now_utc(),
    )?;
    let certificates = Arc::new(CertificateStore::default());
    certificates.load(&bundle.leaf.certificate, &bundle.leaf.key)?;
    let state = WebhookState::new(
        test_rules(),
        Arc::new(Metrics::default()),
        Arc::clone(&certificates),
    );
    let (listener, address) = server::bind("127.0.0.1:0".parse()?).await?;
    let server = tokio::spawn(server::serve(
        listener,
        server_config(certificates)?,
        server::routes(state),
        std::future::pending(),
    ));

    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(bundle.ca_bundle().as_bytes()) {
        roots.add(certificate?)?;
    }
    for protocol in ["h2", "http/1.1"] {
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
        config.alpn_protocols = vec![protocol.as_bytes().to_vec()];
        let tcp = tokio::net::TcpStream::connect(address).await?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp)
            .await?;
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(protocol.as_bytes()),
            "ALPN chose {protocol}"
        );
        let request = Request::post(format!("https://{address}/mutate"))
            .header("content-type", "application/json")
            .body(Full::new(review()))?;
        let response = if protocol == "h2" {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
            tokio::spawn(connection);
            sender.send_request(request).await?
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(connection);
            sender.send_request(request).await?
        };
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        assert_eq!(status, 200, "{protocol}: {answer}");
        assert_eq!(answer["response"]["allowed"], true, "{protocol}: {answer}");
        // The documented wire format: the JSON patch as a base64 string.
        let encoded = answer["response"]["patch"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("{protocol}: the patch is not a base64 string: {answer}"))?;
        let patch = String::from_utf8(BASE64.decode(encoded)?)?;
        assert!(
            patch.contains(REGISTRY),
            "{protocol}: the image is rewritten: {patch} in {answer}"
        );
    }
    server.abort();
    Ok(())
}
