//! The injector: rebuilds the bootstrap payload from ConfigMap chunks, verifies its sha256 and
//! serves it as a read-only OCI registry (the seed registry the permanent registry pulls from).
//!
//! ```text
//!   payload-00000 … payload-NNNNN ──▶ chunks (order, gaps, held open) ──▶ archive (one pass:
//!        │                            sha256, tar index, each blob's sha256)
//!        │                                                          │ digest checked, layout validated
//!        └──── blob bytes are served straight from the open chunk files ◀── registry ◀── server
//! ```
//!
//! Nothing is unpacked: the tar archive is indexed in place while it is hashed (the payload, and
//! each blob against its name), and every blob is served with `sendfile` from the chunk files it
//! lies in, through the descriptors opened before hashing, so memory stays flat, no disk is used,
//! no archive path is ever written anywhere and only verified bytes are served.
//! Exit codes: 0 after `--verify-only` succeeded, 1 on a payload or serving error, 2 on bad usage.

mod archive;
mod chunks;
mod config;
mod error;
mod http;
mod layout;
mod registry;
mod server;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::error::Error;

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{}", config::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("jackal-injector: {error}\n\n{}", config::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("jackal-injector: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &Config) -> Result<(), Error> {
    exit_on_termination()?;
    let started = Instant::now();
    let chunks = chunks::Chunks::discover(&config.directory, config.expected_chunks)?;
    let index = archive::verify(&chunks, &config.digest)?;
    let payload = layout::Payload::load(&chunks, &index)?;
    eprintln!(
        "jackal-injector: payload {} verified ({} bytes in {} chunks, {} images in {} repositories) in {:.2?}",
        config.digest,
        chunks.total_size(),
        chunks.count(),
        payload.image_count(),
        payload.repository_count(),
        started.elapsed()
    );
    if config.verify_only {
        return Ok(());
    }
    let registry = Arc::new(registry::Registry::new(chunks, payload));
    server::serve(&config.listen, registry)
}

/// Exits soon after SIGTERM or SIGINT (within a tenth of a second). The injector holds no state
/// worth a graceful shutdown, and as PID 1 in a container it would otherwise ignore SIGTERM and be
/// killed only after the pod's grace period. A flag and a watching thread keep this safe code and
/// small (the signal-hook iterator adds 20 KB to a binary with a size budget).
fn exit_on_termination() -> Result<(), Error> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use signal_hook::consts::{SIGINT, SIGTERM};
    let terminated = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&terminated)).map_err(Error::Signals)?;
    }
    std::thread::spawn(move || {
        while !terminated.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("jackal-injector: terminated, exiting");
        std::process::exit(0);
    });
    Ok(())
}
