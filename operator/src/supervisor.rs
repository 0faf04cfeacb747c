//! The operator's long-running tasks under one supervisor: each runs until the shutdown signal;
//! one that ends before it (with an error, a panic or just returning) stops all the others and the
//! process exits with its error, so a dead webhook server or controller never goes unnoticed while
//! the rest of the process looks healthy.

use std::future::Future;
use std::time::Duration;

use anyhow::anyhow;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long tasks get to finish after the shutdown signal.
pub const GRACE: Duration = Duration::from_secs(20);

/// Tasks that must all keep running.
pub struct Supervisor {
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    shutdown: CancellationToken,
    grace: Duration,
}

impl Supervisor {
    /// A supervisor whose tasks stop when `shutdown` is cancelled (it cancels it too when a task
    /// fails).
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            tasks: JoinSet::new(),
            shutdown,
            grace: GRACE,
        }
    }

    /// Gives tasks `grace` to finish after shutdown instead of [`GRACE`].
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Starts `task`, which must run until the shutdown token is cancelled.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks.spawn(async move { (name, task.await) });
    }

    /// Waits until shutdown or the first task to end, then stops and waits for the others. Returns
    /// the first failure: the error of a task that failed, or that one ended before shutdown.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut failure = None;
        tokio::select! {
            // A task that ends because shutdown began is not a failure: look at the signal first.
            biased;
            () = self.shutdown.cancelled() => {}
            Some(ended) = self.tasks.join_next() => {
                let error = match ended {
                    Ok((_, Ok(()))) if self.shutdown.is_cancelled() => None,
                    Ok((name, Ok(()))) => Some(anyhow!("{name} stopped unexpectedly")),
                    Ok((name, Err(error))) => Some(error.context(format!("{name} failed"))),
                    Err(error) => Some(anyhow!("a task panicked: {error}")),
                };
                if let Some(error) = error {
                    tracing::error!(error = format!("{error:#}"), "stopping the operator");
                    failure = Some(error);
                }
                self.shutdown.cancel();
            }
        }
        let draining = async {
            while let Some(ended) = self.tasks.join_next().await {
                let error = match ended {
                    Ok((_, Ok(()))) => continue,
                    Ok((name, Err(error))) => error.context(format!("{name} failed while stopping")),
                    Err(error) => anyhow!("a task panicked while stopping: {error}"),
                };
                tracing::warn!(error = format!("{error:#}"), "while stopping");
                failure.get_or_insert(error);
            }
        };
        if tokio::time::timeout(self.grace, draining).await.is_err() {
            self.tasks.abort_all();
            failure.get_or_insert_with(|| {
                anyhow!(
                    "tasks did not stop within {:?} of the shutdown signal",
                    self.grace
                )
            });
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM: the operator's only signal handler.
pub async fn cancel_on_signal(shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
        () = shutdown.cancelled() => return Ok(()),
    }
    tracing::info!("shutdown signal received");
    shutdown.cancel();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A task that runs until shutdown, then records that it stopped.
    fn well_behaved(
        shutdown: &CancellationToken,
        stopped: &Arc<AtomicBool>,
    ) -> impl Future<Output = anyhow::Result<()>> + use<> {
        let (shutdown, stopped) = (shutdown.clone(), Arc::clone(stopped));
        async move {
            shutdown.cancelled().await;
            stopped.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_task_stops_the_others_and_its_error_is_returned() {
        let shutdown = CancellationToken::new();
        let stopped = Arc::new(AtomicBool::new(false));
        let mut supervisor = Supervisor::new(shutdown.clone());
        supervisor.spawn("webhook server", well_behaved(&shutdown, &stopped));
        supervisor.spawn("admin server", async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err(anyhow!("address in use"))
        });
        let error = supervisor.wait().await.unwrap_err();
        assert_eq!(format!("{error:#}"), "admin server failed: address in use");
        assert!(shutdown.is_cancelled());
        assert!(stopped.load(Ordering::SeqCst), "the other task was told to stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_returns_early_is_a_failure_too() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(shutdown.clone());
        supervisor.spawn("pull secrets", async { Ok(()) });
        let error = supervisor.wait().await.unwrap_err();
        assert_eq!(error.to_string(), "pull secrets stopped unexpectedly");
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_reported() {
        let mut supervisor = Supervisor::new(CancellationToken::new());
        supervisor.spawn("controller", async { panic!("boom") });
        let error = supervisor.wait().await.unwrap_err();
        assert!(error.to_string().contains("panicked"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_every_task_and_succeeds() {
        let shutdown = CancellationToken::new();
        let stopped = [Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false))];
        let mut supervisor = Supervisor::new(shutdown.clone());
        for flag in &stopped {
            supervisor.spawn("task", well_behaved(&shutdown, flag));
        }
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            trigger.cancel();
        });
        supervisor.wait().await.unwrap();
        assert!(stopped.iter().all(|flag| flag.load(Ordering::SeqCst)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_ignoring_shutdown_is_abandoned_after_the_grace_period() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(shutdown.clone()).with_grace(Duration::from_secs(3));
        supervisor.spawn("stubborn", std::future::pending());
        shutdown.cancel();
        let error = supervisor.wait().await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "tasks did not stop within 3s of the shutdown signal"
        );
    }
}
