//! The operator's controllers. Each is a kube-runtime `Controller` whose reconcile is a short
//! pipeline around pure functions; requeue intervals are named constants.
//!
//! - [`init`]: the `JackalInit`: the bootstrap once the operator runs in the cluster.
//! - [`pull_secrets`]: the registry (and git) pull Secrets in every namespace the webhook rewrites.

pub mod init;
pub mod pull_secrets;
