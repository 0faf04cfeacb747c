//! Command-line surface of `jackal-operator`. Parsing only: each subcommand hands over to the module
//! that owns the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The Jackal operator: air-gapped delivery for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "jackal-operator", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print Jackal's CustomResourceDefinitions as YAML (apply them with `kubectl apply -f -`).
    Crd {
        /// Write one `<name>.yaml` file per definition into each of these directories instead of
        /// printing them.
        #[arg(long = "output-dir", value_name = "DIR")]
        output_dirs: Vec<PathBuf>,
    },
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crd { output_dirs } if output_dirs.is_empty() => {
                print!("{}", crate::crd::render_all()?);
                Ok(())
            }
            Command::Crd { output_dirs } => {
                for dir in &output_dirs {
                    for path in crate::crd::write_all(dir)? {
                        eprintln!("wrote {}", path.display());
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
