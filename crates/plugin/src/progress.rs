//! Progress for long commands: a spinner with the current step on a terminal, plain lines
//! otherwise (CI logs, pipes).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Reports steps of a long command.
pub struct Progress {
    spinner: Option<ProgressBar>,
}

impl Progress {
    /// A reporter suited to where stderr goes.
    pub fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { spinner: None };
        }
        let spinner = ProgressBar::new_spinner();
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.enable_steady_tick(Duration::from_millis(120));
        Self {
            spinner: Some(spinner),
        }
    }

    /// Reports the current step.
    pub fn step(&self, message: &str) {
        match &self.spinner {
            Some(spinner) => {
                spinner.println(format!("  {message}"));
                spinner.set_message(message.to_owned());
            }
            None => eprintln!("{message}"),
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}
