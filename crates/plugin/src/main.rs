//! `kubectl jackal`: the user's side of Jackal. kubectl finds this binary on the PATH by its name
//! (`kubectl-jackal`). The commands (`init`, `package create|inspect|publish|pull|deploy|list|remove`,
//! `status`) arrive with the issues that build them; today it reports the version and API it speaks.

use clap::{Parser, Subcommand};

/// Deliver software into air-gapped Kubernetes clusters.
#[derive(Debug, Parser)]
#[command(name = "kubectl jackal", bin_name = "kubectl jackal", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the plugin version and the Jackal API version it speaks.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Version => {
            println!(
                "kubectl-jackal {} (API {}/{})",
                env!("CARGO_PKG_VERSION"),
                jackal_crds::GROUP,
                jackal_crds::VERSION
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
