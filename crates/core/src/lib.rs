//! Logic both Jackal binaries need and neither owns: package archive read/write, OCI push, pull and
//! blob mounts, image-reference rewriting, injector payload chunking and the bootstrap steps.
//!
//! It depends on the API types in `jackal-crds` and never on the webhook server or the controller
//! runtime, so the kubectl plugin can link it without dragging those in. The modules arrive with the
//! issues that need them (packages, injector payload, admission); see `ARCHITECTURE.md`.

pub use jackal_crds as crds;
