//! The commands, each a thin layer over `jackal-core`.

mod init;
mod package;
mod tools;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!(
                "kubectl-jackal {} (API {}/{})",
                env!("CARGO_PKG_VERSION"),
                jackal_crds::GROUP,
                jackal_crds::VERSION
            );
            Ok(())
        }
        Command::Init(args) => init::run(args),
        Command::Package(command) => package::run(command),
        Command::Tools(command) => tools::run(command),
    }
}
