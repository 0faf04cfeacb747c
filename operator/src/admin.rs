//! The admin endpoints on a plain-HTTP port of their own: `/metrics` (Prometheus text format),
//! `/healthz` (the process is up) and `/readyz` (the webhook has a serving certificate).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::metrics::Metrics;
use crate::webhook::tls::CertificateStore;

/// The admin routes.
pub fn routes(
    metrics: Arc<Metrics>,
    certificates: Arc<CertificateStore>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let metrics = warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || {
            warp::reply::with_header(
                metrics.encode(),
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        });
    metrics
        .or(probes(certificates))
        .recover(|_| async {
            Ok::<_, Infallible>(warp::reply::with_status("not found", StatusCode::NOT_FOUND))
        })
        .map(Reply::into_response)
}

/// `/healthz` (the process is up) and `/readyz` (a serving certificate is loaded), on the admin
/// port and on the webhook's.
pub fn probes(
    certificates: Arc<CertificateStore>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let healthz = warp::path("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| "ok".into_response());
    let readyz = warp::path("readyz")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || {
            if certificates.is_loaded() {
                warp::reply::with_status("ok", StatusCode::OK).into_response()
            } else {
                warp::reply::with_status(
                    "no serving certificate loaded yet",
                    StatusCode::SERVICE_UNAVAILABLE,
                )
                .into_response()
            }
        });
    healthz.or(readyz).unify()
}

/// Serves `routes` on `listener` until `shutdown` completes.
pub async fn serve<F>(listener: TcpListener, routes: F, shutdown: impl Future<Output = ()> + Send + 'static)
where
    F: Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
