//! The webhook's transport, and only that: warp routes served over rustls (HTTP/2 and HTTP/1.1)
//! through hyper-util, because warp 0.4 has no TLS of its own. `POST /mutate` answers reviews,
//! `/healthz` says the process is up, `/readyz` says a serving certificate is loaded.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::hooks::Rules;
use super::review::{self, MAX_BODY};
use super::tls::CertificateStore;
use crate::metrics::Metrics;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the routes share: the current rules (swapped when the cluster state changes), metrics
/// and the certificate store (for readiness).
pub struct WebhookState {
    rules: RwLock<Arc<Rules>>,
    /// Admission metrics.
    pub metrics: Arc<Metrics>,
    /// The serving certificate.
    pub certificates: Arc<CertificateStore>,
}

impl WebhookState {
    /// Shared state for the routes.
    pub fn new(rules: Rules, metrics: Arc<Metrics>, certificates: Arc<CertificateStore>) -> Arc<Self> {
        Arc::new(Self {
            rules: RwLock::new(Arc::new(rules)),
            metrics,
            certificates,
        })
    }

    /// Replaces the rules; requests already being answered finish with the old ones.
    pub fn set_rules(&self, rules: Rules) {
        if let Ok(mut current) = self.rules.write() {
            *current = Arc::new(rules);
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<Rules> {
        self.rules
            .read()
            .map(|rules| Arc::clone(&rules))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()))
    }
}

#[derive(Debug)]
struct TooLarge;

impl warp::reject::Reject for TooLarge {}

/// The request body, refused past [`MAX_BODY`] whether or not a length was announced.
fn limited_body() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(|length: Option<u64>| async move {
            if length.is_some_and(|length| length > MAX_BODY) {
                Err(warp::reject::custom(TooLarge))
            } else {
                Ok(())
            }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(collect_body)
}

async fn collect_body<S, B>(stream: S) -> Result<Bytes, Rejection>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(piece) = stream.next().await {
        let mut piece = piece.map_err(|_| warp::reject::custom(TooLarge))?;
        if (body.len() + piece.remaining()) as u64 > MAX_BODY {
            return Err(warp::reject::custom(TooLarge));
        }
        while piece.has_remaining() {
            let chunk = piece.chunk();
            body.extend_from_slice(chunk);
            let advanced = chunk.len();
            piece.advance(advanced);
        }
    }
    Ok(body.freeze())
}

/// The webhook's routes.
pub fn routes(
    state: Arc<WebhookState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let answering = Arc::clone(&state);
    let mutate = warp::path("mutate")
        .and(warp::path::end())
        .and(warp::post())
        .and(limited_body())
        .map(move |body: Bytes| {
            let answer = review::answer(&body, &answering.rules(), &answering.metrics);
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            warp::reply::with_status(
                warp::reply::with_header(answer.body, "content-type", "application/json"),
                status,
            )
        });
    mutate
        .or(crate::admin::probes(Arc::clone(&state.certificates)))
        .recover(rejection)
        .map(Reply::into_response)
}

async fn rejection(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (status, message) = if rejection.find::<TooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than an admission review can be",
        )
    } else if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else {
        (StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(warp::reply::with_status(message, status).into_response())
}

/// Serves `routes` over TLS on `listener` until `shutdown` completes.
pub async fn serve<F>(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    routes: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let acceptor = TlsAcceptor::from(tls);
    let service = warp::service(routes);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "failed to accept a webhook connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, service) = (acceptor.clone(), service.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let connection = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .await;
            if let Err(error) = connection {
                tracing::debug!(%peer, %error, "webhook connection ended with an error");
            }
        });
    }
}

/// Binds `address` (use port 0 for any), returning the listener and the address bound.
pub async fn bind(address: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}
