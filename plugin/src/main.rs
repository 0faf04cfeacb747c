//! `kubectl jackal`: the user's side of Jackal. kubectl finds this binary on the PATH by its name
//! (`kubectl-jackal`). Parsing lives in [`cli`], each command in [`commands`]; both are thin
//! over `jackal-core`.

mod cli;
mod commands;
mod progress;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", render(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: many messages already end with their cause.
fn render(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::render;
    use jackal_core::layout::LayoutError;

    #[test]
    fn causes_are_said_once() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let read = LayoutError::Read {
            path: "blob".into(),
            source,
        };
        let error = anyhow::Error::new(read).context("inspect failed");
        assert_eq!(
            render(&error),
            "inspect failed: failed to read blob: no such file"
        );
        let plain = anyhow::anyhow!("bottom").context("middle").context("top");
        assert_eq!(render(&plain), "top: middle: bottom");
    }
}
