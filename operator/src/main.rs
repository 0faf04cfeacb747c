//! Entry point of `jackal-operator`; everything lives in the library.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    jackal_operator::cli::Cli::parse().run()
}
