//! The operator's controllers. Each is a kube-runtime `Controller` whose reconcile is a short
//! pipeline around pure functions; requeue intervals are named constants.
//!
//! - [`pull_secrets`]: the registry (and git) pull Secrets in every namespace the webhook rewrites.

pub mod pull_secrets;
