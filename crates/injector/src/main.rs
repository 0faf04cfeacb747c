//! The injector: rebuilds the bootstrap payload from ConfigMap chunks, verifies its sha256 and serves
//! it as a read-only OCI registry (the seed registry). Not built yet: this crate only reserves its
//! place and its size-optimised profile in the workspace. It exits with an error until then.

fn main() -> std::process::ExitCode {
    eprintln!("jackal-injector: not implemented yet (the injector issue builds it)");
    std::process::ExitCode::from(2)
}
