//! Command-line surface of `jackal-operator`. Parsing only: each subcommand hands over to the module
//! that owns the work.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::run::RunConfig;
use crate::webhook::certs::Validity;

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
    /// Run the operator: the admission webhook, its certificates and registration, the pull-Secret
    /// controller and the admin endpoints. Waits for the cluster state Secret written by `init`.
    Run(RunArgs),
    /// Print Jackal's CustomResourceDefinitions as YAML (apply them with `kubectl apply -f -`).
    Crd {
        /// Write one `<name>.yaml` file per definition into each of these directories instead of
        /// printing them.
        #[arg(long = "output-dir", value_name = "DIR")]
        output_dirs: Vec<PathBuf>,
    },
}

/// Settings of `run`; every flag can also come from the environment.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Namespace of the operator, its Secrets and its Service.
    #[arg(long, env = "JACKAL_NAMESPACE", default_value = jackal_crds::names::NAMESPACE)]
    pub namespace: String,
    /// Address the webhook listens on (TLS).
    #[arg(long, env = "JACKAL_WEBHOOK_ADDRESS", default_value = "0.0.0.0:8443")]
    pub webhook_address: SocketAddr,
    /// Address of /metrics, /healthz and /readyz (plain HTTP).
    #[arg(long, env = "JACKAL_ADMIN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub admin_address: SocketAddr,
    /// The Service in front of the webhook.
    #[arg(long, env = "JACKAL_WEBHOOK_SERVICE", default_value = jackal_crds::names::WEBHOOK_SERVICE)]
    pub webhook_service: String,
    /// Have the API server call this URL instead of the Service (an operator running outside the
    /// cluster, e.g. https://127.0.0.1:8443/mutate).
    #[arg(long, env = "JACKAL_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// An extra IP address the webhook certificate is valid for (repeatable).
    #[arg(long = "webhook-ip", env = "JACKAL_WEBHOOK_IPS", value_delimiter = ',')]
    pub webhook_ips: Vec<IpAddr>,
    /// Lifetime of the webhook's serving certificate, in hours (renewed with a third left).
    #[arg(long, env = "JACKAL_WEBHOOK_CERTIFICATE_HOURS", default_value_t = 90 * 24)]
    pub webhook_certificate_hours: u64,
    /// Where the operator keeps what it caches: the copy of the registry's own image it seeds
    /// the registry again from when the registry cannot pull it (a writable volume in the pod).
    #[arg(long, env = "JACKAL_CACHE_DIR", default_value = jackal_core::bootstrap::operator::CACHE_DIRECTORY)]
    pub cache_dir: PathBuf,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "JACKAL_LOG_JSON")]
    pub log_json: bool,
}

impl RunArgs {
    /// The validated configuration.
    pub fn config(&self) -> anyhow::Result<RunConfig> {
        anyhow::ensure!(
            self.webhook_certificate_hours >= 1,
            "--webhook-certificate-hours must be at least 1"
        );
        if let Some(url) = &self.webhook_url {
            anyhow::ensure!(
                url.starts_with("https://"),
                "--webhook-url must be an https:// URL, not {url:?}"
            );
        }
        Ok(RunConfig {
            namespace: self.namespace.clone(),
            cache_dir: self.cache_dir.clone(),
            webhook_address: self.webhook_address,
            admin_address: self.admin_address,
            service: self.webhook_service.clone(),
            webhook_url: self.webhook_url.clone(),
            webhook_ips: self.webhook_ips.clone(),
            validity: Validity {
                leaf: Duration::from_secs(self.webhook_certificate_hours * 3600),
                ..Validity::default()
            },
        })
    }
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Run(args) => {
                crate::telemetry::init(args.log_json);
                let config = args.config()?;
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?
                    .block_on(crate::run::run(config))
            }
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

    #[test]
    fn run_arguments_are_validated() {
        use clap::Parser;

        let parse = |args: &[&str]| super::Cli::try_parse_from(args.iter().copied());
        let cli = parse(&[
            "jackal-operator",
            "run",
            "--webhook-url",
            "https://127.0.0.1:8443/mutate",
            "--webhook-ip",
            "127.0.0.1",
        ])
        .unwrap();
        let super::Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let config = args.config().unwrap();
        assert_eq!(
            config.webhook_ips,
            ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(config.namespace, "jackal");
        let cli = parse(&["jackal-operator", "run", "--webhook-url", "http://insecure"]).unwrap();
        let super::Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(
            args.config()
                .unwrap_err()
                .to_string()
                .contains("must be an https:// URL")
        );
        assert!(parse(&["jackal-operator", "run", "--webhook-address", "nowhere"]).is_err());
    }
}
