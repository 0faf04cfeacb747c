//! The Jackal operator process: the controllers reconciling `JackalInit` and `JackalPackage`, the
//! in-process mutating admission webhook, and the admin endpoints (`/metrics`, `/healthz`,
//! `/readyz`). It is deployed in the cluster and also runs in-process inside the plugin during the
//! first bootstrap.
//!
//! Module map (grows with the issues that add each part; see `ARCHITECTURE.md`):
//! - [`cli`]: command-line surface (`crd`, and `run` once the controllers land).
//! - [`crd`]: printing and writing the generated CustomResourceDefinitions.

pub mod cli;
pub mod crd;
