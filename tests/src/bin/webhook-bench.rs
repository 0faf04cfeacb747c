//! Load test of the admission webhook over TLS on loopback, for `scripts/bench-webhook`.
//!
//! ```text
//! webhook-bench serve [--baseline] --ca FILE      serve on 127.0.0.1 (port printed on stdout); with
//!                                                 --baseline, answer a fixed review without
//!                                                 decoding it (the floor the TLS/HTTP stack costs)
//! webhook-bench load --address ADDR --ca FILE --rate N --seconds S [--connections C]
//!     send pod AdmissionReviews at a fixed rate over HTTP/2, open loop: each request has a
//!     scheduled send time (start + index / rate) and its latency runs from that time, not from
//!     when its task got to run, so a stalled server or a sender falling behind shows up as
//!     latency instead of quietly lowering the rate (coordinated omission). Tokio's timer wakes up
//!     to ~1 ms late, so the figures include that much sender delay, printed on its own. A request
//!     that fails or takes over 10 s counts as failed, and as 10 s in the percentiles. Prints
//!     "p50_ms p99_ms max_ms answered failed achieved_per_s send_delay_p99_ms", achieved being the
//!     answered requests over the time from the first scheduled send to the last answer.
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jackal_crds::state::Password;
use jackal_operator::metrics::Metrics;
use jackal_operator::webhook::certs::{Bundle, Identity, Validity};
use jackal_operator::webhook::hooks::Rules;
use jackal_operator::webhook::server::{self, WebhookState};
use jackal_operator::webhook::tls::{CertificateStore, server_config};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use warp::Filter;

/// A request not answered within this long counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|index| args.get(index + 1))
            .cloned()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.first().map(String::as_str) {
        Some("serve") => runtime.block_on(serve(
            args.contains(&"--baseline".to_owned()),
            &value("--ca").context("--ca is required")?,
        )),
        Some("load") => runtime.block_on(load(
            &value("--address").context("--address is required")?,
            &value("--ca").context("--ca is required")?,
            value("--rate").context("--rate is required")?.parse()?,
            value("--seconds").context("--seconds is required")?.parse()?,
            value("--connections")
                .map(|c| c.parse())
                .transpose()?
                .unwrap_or(4),
        )),
        _ => bail!("usage: webhook-bench serve|load ... (see the source's header)"),
    }
}

fn review() -> Vec<u8> {
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "5f0c6a4e-0000-4000-8000-00000000beef",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "web-7d9c6b5f4-", "namespace": "shop", "labels": {"app": "web", "pod-template-hash": "7d9c6b5f4"}},
                "spec": {
                    "initContainers": [{"name": "migrate", "image": "ghcr.io/shop/migrate:2.3.1"}],
                    "containers": [
                        {"name": "web", "image": "docker.io/library/nginx:1.27", "ports": [{"containerPort": 80}],
                         "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                        {"name": "metrics", "image": "quay.io/prometheus/nginx-exporter:1.1.0"}],
                    "serviceAccountName": "default"}},
        }
    });
    serde_json::to_vec(&review).unwrap_or_default()
}

async fn serve(baseline: bool, ca_file: &str) -> anyhow::Result<()> {
    let certificates = Arc::new(CertificateStore::default());
    let identity = Identity {
        dns_names: vec!["localhost".into()],
        ip_addresses: vec!["127.0.0.1".parse()?],
    };
    let bundle = Bundle::generate(&identity, &Validity::default(), time::OffsetDateTime::now_utc())?;
    certificates.load(&bundle.leaf.certificate, &bundle.leaf.key)?;
    std::fs::write(ca_file, bundle.ca_bundle())?;
    let (listener, address) = server::bind("127.0.0.1:0".parse()?).await?;
    println!("{address}");
    let tls = server_config(Arc::clone(&certificates))?;
    if baseline {
        let canned = Bytes::from_static(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"5f0c6a4e-0000-4000-8000-00000000beef","allowed":true}}"#);
        let route = warp::path("mutate")
            .and(warp::body::bytes())
            .map(move |_body: Bytes| {
                warp::reply::with_header(canned.to_vec(), "content-type", "application/json")
            });
        let route = route.recover(|_| async {
            Ok::<_, Infallible>(warp::reply::with_status("", warp::http::StatusCode::NOT_FOUND))
        });
        server::serve(
            listener,
            tls,
            route.map(warp::Reply::into_response),
            std::future::pending(),
        )
        .await;
    } else {
        let rules = Rules {
            registry: "127.0.0.1:31999".into(),
            registry_username: "jackal-pull".into(),
            registry_password: Password("password".into()),
            pull_secret: "private-registry".into(),
            git: None,
        };
        let state = WebhookState::new(rules, Arc::new(Metrics::default()), certificates);
        server::serve(listener, tls, server::routes(state), std::future::pending()).await;
    }
    Ok(())
}

async fn connect(
    address: &str,
    config: Arc<rustls::ClientConfig>,
) -> anyhow::Result<http2::SendRequest<Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(address).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp)
        .await?;
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn load(
    address: &str,
    ca_file: &str,
    rate: u64,
    seconds: u64,
    connections: usize,
) -> anyhow::Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_file)? {
        roots.add(certificate?)?;
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let mut senders = Vec::new();
    for _ in 0..connections {
        senders.push(connect(address, Arc::clone(&config)).await?);
    }
    let body = Bytes::from(review());
    let total = rate * seconds;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    /// What became of one request: its latency from its scheduled send time (or `None` if it
    /// failed), when that was, and how late its task started after the scheduled time.
    struct Outcome {
        latency: Option<Duration>,
        finished: tokio::time::Instant,
        send_delay: Duration,
    }
    let (results, mut received) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    for index in 0..total {
        let scheduled = start + interval * u32::try_from(index)?;
        tokio::time::sleep_until(scheduled).await;
        let mut sender = senders[usize::try_from(index)? % connections].clone();
        let (body, results) = (body.clone(), results.clone());
        tokio::spawn(async move {
            let send_delay = scheduled.elapsed();
            let exchange = async {
                let request = Request::post("/mutate")
                    .header("content-type", "application/json")
                    .body(Full::new(body))
                    .map_err(|e| e.to_string())?;
                let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                if !status.is_success() || !bytes.windows(14).any(|w| w == br#""allowed":true"#) {
                    return Err(format!("status {status}"));
                }
                Ok(())
            };
            let answered = matches!(tokio::time::timeout(REQUEST_TIMEOUT, exchange).await, Ok(Ok(())));
            let finished = tokio::time::Instant::now();
            let latency = answered.then(|| finished - scheduled);
            let _ = results.send(Outcome {
                latency,
                finished,
                send_delay,
            });
        });
    }
    drop(results);
    let (mut latencies, mut send_delays, mut failed) = (Vec::new(), Vec::new(), 0u64);
    let mut last_answer = start;
    while let Some(outcome) = received.recv().await {
        send_delays.push(outcome.send_delay);
        match outcome.latency {
            Some(latency) => {
                latencies.push(latency);
                last_answer = last_answer.max(outcome.finished);
            }
            None => failed += 1,
        }
    }
    let answered = latencies.len();
    let achieved = answered as f64 / (last_answer - start).as_secs_f64().max(f64::EPSILON);
    // A failed request counts as the timeout: failures raise the percentiles, never hide.
    latencies.extend((0..failed).map(|_| REQUEST_TIMEOUT));
    latencies.sort();
    send_delays.sort();
    let percentile = |values: &[Duration], p: f64| {
        values
            .get(((values.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:.2} {:.2} {:.2} {answered} {failed} {achieved:.0} {:.2}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        ms(percentile(&send_delays, 0.99)),
    );
    Ok(())
}
