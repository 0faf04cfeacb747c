//! Bootstrap: a cluster with no registry gets one, out of ConfigMaps and an image already on a
//! node (ADR 0009). The same steps serve `kubectl jackal init` and the operator's `JackalInit`
//! controller. This module holds the planning, pure and tested without a cluster:
//! - [`seed`]: which node and borrowed image the injector runs in;
//! - [`credentials`]: the registry's generated passwords and htpasswd file;
//! - [`objects`]: every object bootstrap applies (payload and injector ConfigMaps, injector pod
//!   and Service, the registry's Secret, Deployment and Service);
//! - [`operator`]: the operator's RBAC (from `config/rbac`), Deployment and webhook Service;
//! - [`steps`]: the steps that apply them, each idempotent;
//! - [`package`]: the init package (injector binary, registry image, the rest);
//! - [`lease`]: who is seeding the registry, so two never do and a stopped one is taken over.

pub mod credentials;
pub mod lease;
pub mod objects;
pub mod operator;
pub mod package;
pub mod seed;
pub mod steps;
