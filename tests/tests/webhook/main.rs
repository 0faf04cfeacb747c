//! The operator's admission webhook against the real API server of the test cluster: pods (bare and
//! from Deployments), Flux and Argo CD objects are rewritten; excluded namespaces and objects are
//! not; a webhook that is down is handled as its failure policy says; certificates rotate without
//! a failed admission; pull Secrets follow namespaces; and on the real node a Deployment naming
//! `docker.io/…` runs from an in-cluster registry (the injector, served through a NodePort).

mod end_to_end;
mod failure;
mod pods;
mod protocols;
mod pull_secrets;
mod rotation;
mod sources;
