//! Running the real injector binary in tests: the shipped build (target
//! `x86_64-unknown-linux-musl`, profile `injector`), which `make injector` (and `make test`) builds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::http;

/// The injector binary under test (`JACKAL_INJECTOR_BINARY` overrides the default build path).
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("JACKAL_INJECTOR_BINARY") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::repository_root().join("target"))
            .join("x86_64-unknown-linux-musl/injector/jackal-injector"),
    };
    if !path.exists() {
        bail!(
            "the injector is not built at {}: run `make injector` (`make test` does it)",
            path.display()
        );
    }
    Ok(path)
}

/// A free TCP port on loopback (released before returning, so the caller can bind it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs the injector on `chunks` with `args` until it exits (for `--verify-only` and failures).
pub fn run(chunks: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(binary()?)
        .arg("--dir")
        .arg(chunks)
        .args(args)
        .output()?)
}

/// A running injector, killed when dropped.
pub struct Injector {
    child: Child,
    /// `127.0.0.1:<port>` it serves on.
    pub address: String,
    log: PathBuf,
}

impl Injector {
    /// Starts the injector on the chunks in `chunks` and waits until `/v2/` answers.
    pub async fn start(chunks: &Path, digest: &str) -> anyhow::Result<Self> {
        let address = format!("127.0.0.1:{}", free_port()?);
        let log = chunks.with_extension("log");
        let child = Command::new(binary()?)
            .args(["--dir", &chunks.to_string_lossy(), "--listen", &address, digest])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("failed to start the injector")?;
        let mut injector = Self { child, address, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = injector.child.try_wait()? {
                bail!(
                    "the injector exited ({status}) before serving:\n{}",
                    injector.log()
                );
            }
            if matches!(http::get(&injector.address, "/v2/", &[]).await, Ok(response) if response.status == 200)
            {
                return Ok(injector);
            }
            if Instant::now() > deadline {
                bail!("the injector did not serve /v2/ within 30 s:\n{}", injector.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM (what the kubelet sends first) and waits up to `timeout` for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the injector ignored SIGTERM for {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the injector logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
