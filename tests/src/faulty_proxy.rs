//! A forwarding HTTP/1.1 proxy on loopback that fails chosen requests with `503 Service
//! Unavailable`, for showing that clients retry (and give up cleanly) when a registry falters.

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

/// Decides, from the method, the path and how many matching requests came before, whether to fail.
pub type FailWhen = dyn Fn(&Method, &str, usize) -> bool + Send + Sync;

/// A running proxy; stops when dropped.
pub struct FaultyProxy {
    /// `127.0.0.1:PORT`.
    pub address: String,
    failed: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FaultyProxy {
    /// Forwards every request to `upstream` (`host:port`) except those `fail` picks. `fail` sees
    /// the method, the path and a count of the requests seen so far (from 0).
    pub async fn start(upstream: &str, fail: Box<FailWhen>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let failed = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let (upstream, fail) = (upstream.to_owned(), Arc::new(fail));
        let task = {
            let failed = failed.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (upstream, fail, failed, seen) =
                        (upstream.clone(), fail.clone(), failed.clone(), seen.clone());
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let (upstream, fail, failed, seen) =
                                (upstream.clone(), fail.clone(), failed.clone(), seen.clone());
                            async move {
                                let number = seen.fetch_add(1, Ordering::SeqCst);
                                if fail(request.method(), request.uri().path(), number) {
                                    failed.fetch_add(1, Ordering::SeqCst);
                                    return Ok::<_, hyper::Error>(unavailable());
                                }
                                Ok(forward(&upstream, request)
                                    .await
                                    .unwrap_or_else(|_| unavailable()))
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Ok(Self {
            address,
            failed,
            task,
        })
    }

    /// How many requests were failed on purpose.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unavailable() -> Response<BoxBody<Bytes, hyper::Error>> {
    let body = r#"{"errors":[{"code":"UNAVAILABLE","message":"injected failure"}]}"#;
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}

/// Sends `request` to `upstream` over a fresh connection, headers (Host included) unchanged.
async fn forward(
    upstream: &str,
    request: Request<Incoming>,
) -> anyhow::Result<Response<BoxBody<Bytes, hyper::Error>>> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    Ok(response.map(BodyExt::boxed))
}
