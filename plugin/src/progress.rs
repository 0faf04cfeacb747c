//! Progress for long commands: on a terminal, a bar of the bytes moved with the current step
//! (steps scroll above it); otherwise (CI logs, pipes) plain lines: every step, and the bytes
//! moved at most every few seconds.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

/// How often plain output reports bytes.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// Reports the progress of a long command on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    expected: AtomicU64,
    moved: AtomicU64,
    last_plain: Mutex<Instant>,
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {elapsed:>4} {wide_msg}\n       [{bar:30}] {bytes:>10} / {total_bytes:<10} {bytes_per_sec:>12}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Progress {
    /// A reporter suited to where stderr goes.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(spinner_style());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            expected: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            last_plain: Mutex::new(Instant::now()),
        }
    }

    /// A line of its own: above the bar on a terminal, on stderr otherwise.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl jackal_core::progress::Progress for Progress {
    fn step(&self, message: &str) {
        // A finished transfer's bar gives way to the spinner until the next one starts.
        let expected = self.expected.load(Ordering::Relaxed);
        if expected > 0 && self.moved.load(Ordering::Relaxed) >= expected {
            self.expected.store(0, Ordering::Relaxed);
            self.moved.store(0, Ordering::Relaxed);
            if let Some(bar) = &self.bar {
                bar.set_style(spinner_style());
                bar.set_length(0);
                bar.set_position(0);
            }
        }
        match &self.bar {
            Some(bar) => {
                bar.println(format!("  {message}"));
                bar.set_message(message.to_owned());
            }
            None => eprintln!("{message}"),
        }
    }

    fn expect_bytes(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let before = self.expected.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            if before == 0 {
                bar.set_style(bar_style());
            }
            bar.inc_length(bytes);
        }
    }

    fn moved_bytes(&self, bytes: u64) {
        let moved = self.moved.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
            return;
        }
        let Ok(mut last) = self.last_plain.lock() else {
            return;
        };
        if last.elapsed() >= PLAIN_INTERVAL {
            *last = Instant::now();
            eprintln!(
                "  {} of {} moved",
                HumanBytes(moved),
                HumanBytes(self.expected.load(Ordering::Relaxed))
            );
        }
    }
}
