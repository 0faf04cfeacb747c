//! The Jackal operator process: the controllers reconciling `JackalInit` and `JackalPackage`, the
//! in-process mutating admission webhook, and the admin endpoints (`/metrics`, `/healthz`,
//! `/readyz`). It is deployed in the cluster and also runs in-process inside the plugin during the
//! first bootstrap.
//!
//! Module map (grows with the issues that add each part; see `ARCHITECTURE.md`):
//! - [`cli`]: command-line surface (`crd`, `run`); [`run`] wires everything together under the
//!   [`supervisor`] (one shutdown signal; one failed task stops the process).
//! - [`context`]: what every task shares (client, settings, the cluster state channel fed by
//!   [`state`], metrics, Event recorder, shutdown token).
//! - [`selection`]: which namespaces Jackal acts in (the webhook's selector and the same decision
//!   in code).
//! - [`crd`]: printing and writing the generated CustomResourceDefinitions.
//! - [`webhook`]: the admission webhook (rules, review, TLS server, certificates, registration).
//! - [`controller`]: controllers (today: the pull Secrets the webhook's pods need).
//! - [`admin`], [`metrics`], [`telemetry`]: `/metrics`, probes, logging.

pub mod admin;
pub mod cli;
pub mod context;
pub mod controller;
pub mod crd;
pub mod metrics;
pub mod run;
pub mod selection;
pub mod state;
pub mod supervisor;
pub mod telemetry;
pub mod webhook;
