//! The in-process mutating admission webhook: decides how objects are rewritten so workloads use
//! the cluster's own registry and git server, and serves those decisions over TLS.
//!
//! ```text
//!  API server ──TLS──▶ server (warp over rustls, h2/http1) ──▶ review (decode, dispatch, encode)
//!                           ▲ certificate from tls::CertificateStore        └──▶ hooks::{pod, flux, argocd}
//!  certs (CA + leaf in a Secret, caBundle, rotation) ──┘          registration (MutatingWebhookConfiguration)
//! ```
//!
//! The hooks are pure functions of the object and the [`hooks::Rules`]; nothing on the request path
//! talks to the API server. The pull Secrets the rewritten pods need are created by the
//! `pull_secrets` controller, never by the hook (which must have no side effects).

pub mod certs;
pub mod hooks;
pub mod patch;
pub mod registration;
pub mod review;
pub mod server;
pub mod tls;
