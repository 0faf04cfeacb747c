//! `kubectl jackal tools`.

use anyhow::Context;
use jackal_core::package::signing;

use crate::cli::ToolsCommand;

/// Runs a `tools` command.
pub fn run(command: ToolsCommand) -> anyhow::Result<()> {
    match command {
        ToolsCommand::GenKey { output_dir } => {
            let (private, public) = signing::generate_key()?;
            std::fs::create_dir_all(&output_dir)
                .with_context(|| format!("failed to create {}", output_dir.display()))?;
            for (name, content) in [("jackal.key", private), ("jackal.pub", public)] {
                let path = output_dir.join(name);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(if name.ends_with(".key") { 0o600 } else { 0o644 });
                }
                let mut file = options
                    .open(&path)
                    .with_context(|| format!("refusing to overwrite {}", path.display()))?;
                std::io::Write::write_all(&mut file, content.as_bytes())?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}
