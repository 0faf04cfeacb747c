//! A forwarding HTTP/1.1 proxy on loopback that answers chosen requests itself: `503 Service
//! Unavailable` to show that clients retry (and give up cleanly) when a registry falters, or
//! `401 Unauthorized` unless the request carries given Basic credentials, to stand in for a
//! registry that requires a login.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Decides, from the method, the path and how many requests came before, whether to fail.
pub type FailWhen = dyn Fn(&Method, &str, usize) -> bool + Send + Sync;

type Answer = Response<BoxBody<Bytes, hyper::Error>>;
/// Answers a request in the proxy's place (`Some`) or lets it through (`None`).
type Rule = dyn Fn(&Request<Incoming>, usize) -> Option<Answer> + Send + Sync;

/// A running proxy; stops when dropped.
pub struct FaultyProxy {
    /// `127.0.0.1:PORT`.
    pub address: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

/// What every connection of a proxy shares.
struct State {
    upstream: String,
    rule: Box<Rule>,
    /// Requests seen so far.
    seen: AtomicUsize,
    /// Requests the rule answered.
    answered: AtomicUsize,
}

/// Answers `request` by the rule, or forwards it upstream.
async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Answer, hyper::Error> {
    let number = state.seen.fetch_add(1, Ordering::SeqCst);
    if let Some(answer) = (state.rule)(&request, number) {
        state.answered.fetch_add(1, Ordering::SeqCst);
        return Ok(answer);
    }
    Ok(forward(&state.upstream, request)
        .await
        .unwrap_or_else(|_| unavailable()))
}

impl FaultyProxy {
    /// Forwards every request to `upstream` (`host:port`) except those `fail` picks, which get a
    /// 503. `fail` sees the method, the path and a count of the requests seen so far (from 0).
    pub async fn start(upstream: &str, fail: Box<FailWhen>) -> anyhow::Result<Self> {
        Self::with_rule(
            upstream,
            Box::new(move |request, number| {
                fail(request.method(), request.uri().path(), number).then(unavailable)
            }),
        )
        .await
    }

    /// Forwards to `upstream` only the requests that carry Basic credentials `user:password`;
    /// the others get a 401 with a Basic challenge, as a registry that requires a login does.
    pub async fn requiring_basic_auth(upstream: &str, user: &str, password: &str) -> anyhow::Result<Self> {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        Self::with_rule(
            upstream,
            Box::new(move |request, _| {
                let given = request.headers().get(hyper::header::AUTHORIZATION);
                (given.and_then(|value| value.to_str().ok()) != Some(expected.as_str())).then(unauthorized)
            }),
        )
        .await
    }

    async fn with_rule(upstream: &str, rule: Box<Rule>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            rule,
            seen: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
        });
        let task = {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let state = Arc::clone(&state);
                    let service = service_fn(move |request| handle(Arc::clone(&state), request));
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service),
                    );
                }
            })
        };
        Ok(Self { address, state, task })
    }

    /// How many requests the proxy answered itself (failed or refused on purpose).
    pub fn failed(&self) -> usize {
        self.state.answered.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(status: StatusCode, body: &'static str) -> Answer {
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

fn unavailable() -> Answer {
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"errors":[{"code":"UNAVAILABLE","message":"injected failure"}]}"#,
    )
}

fn unauthorized() -> Answer {
    let mut response = answer(
        StatusCode::UNAUTHORIZED,
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
    );
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static(r#"Basic realm="jackal-test""#),
    );
    response
}

/// Sends `request` to `upstream` over a fresh connection, headers (Host included) unchanged.
async fn forward(upstream: &str, request: Request<Incoming>) -> anyhow::Result<Answer> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    Ok(response.map(BodyExt::boxed))
}
