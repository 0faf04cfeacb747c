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
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
