//! The command line of `kubectl jackal`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Deliver software into air-gapped Kubernetes clusters.
#[derive(Debug, Parser)]
#[command(name = "kubectl jackal", bin_name = "kubectl jackal", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the plugin version and the Jackal API version it speaks.
    Version,
    /// Bootstrap Jackal into the current cluster (KUBECONFIG): install the CRDs, the namespace and
    /// the JackalInit, then seed a registry from ConfigMaps and an image already on a node, run
    /// the permanent registry (htpasswd accounts, NodePort 31999), copy the seed images into it,
    /// make it pull its own image, push the other init images, and remove every seed object; then
    /// start the operator from the registry (its RBAC, Deployment and webhook Service) and wait
    /// until it reports the JackalInit Ready. Safe to run again: it resumes a half-done bootstrap
    /// and changes nothing on a finished one. With --registry-url, an existing registry is used
    /// instead: nothing is seeded, the init images are pushed into it with the push account and
    /// workloads pull from it with the pull account.
    Init(InitArgs),
    /// Create, inspect, verify, publish and pull packages.
    #[command(subcommand)]
    Package(PackageCommand),
    /// Helpers.
    #[command(subcommand)]
    Tools(ToolsCommand),
}

/// `package` commands.
#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Create a package from a directory holding a jackal.yaml: pull its images (from
    /// registries, OCI layouts or docker archives), collect its charts, manifests and files,
    /// checksum, optionally sign, and write jackal-package-<name>-<arch>-<version>.tar.zst.
    Create(CreateArgs),
    /// Show what a package holds: definition, components, images with digests and sizes.
    Inspect(InspectArgs),
    /// Verify a package: checksums, aggregate checksum and (with --key) its signature.
    Verify(VerifyArgs),
    /// Push a package to a registry as an OCI artifact: oci://REGISTRY/NAMESPACE becomes
    /// REGISTRY/NAMESPACE/<name>:<version>. Blobs the registry has are skipped.
    Publish(PublishArgs),
    /// Pull a package from a registry and write the package file (identical to the one
    /// published), or with --components only what those components need.
    Pull(PullArgs),
}

/// `init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The init package (`kubectl jackal package create packages/init`). Default:
    /// jackal-init-<arch>-<version>.tar.zst next to this binary.
    #[arg(long, value_name = "FILE")]
    pub package: Option<PathBuf>,
    /// The NodePort the registry answers on, as 127.0.0.1:<port> on every node.
    #[arg(long, default_value_t = jackal_crds::names::DEFAULT_REGISTRY_NODE_PORT, value_parser = clap::value_parser!(i32).range(30000..=32767))]
    pub registry_node_port: i32,
    /// Keep the registry's blobs on a PersistentVolumeClaim of this size (`20Gi`) instead of an
    /// emptyDir, so images outlive the registry's pods. Set at the first init only.
    #[arg(long, value_name = "SIZE", conflicts_with = "registry_url")]
    pub registry_storage: Option<String>,
    /// The StorageClass of that claim (the cluster's default when unset).
    #[arg(long, value_name = "NAME", requires = "registry_storage")]
    pub registry_storage_class: Option<String>,
    /// The namespace Jackal lives in.
    #[arg(long, default_value = jackal_crds::names::NAMESPACE)]
    pub namespace: String,
    /// Give up after this many seconds (the whole run, waiting for Ready included).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Use this existing registry (HOST[:PORT][/PATH], no scheme) instead of running one: nodes
    /// must be able to pull from it. Chosen at the first init; switching later needs a new init.
    #[arg(long, value_name = "HOST[:PORT][/PATH]")]
    pub registry_url: Option<String>,
    /// Account that pushes to the external registry (stored in the Secret jackal-registry-push).
    #[arg(long, requires = "registry_url", env = "JACKAL_REGISTRY_PUSH_USERNAME")]
    pub registry_push_username: Option<String>,
    /// Its password (prefer the environment variable: a flag shows in the process list).
    #[arg(
        long,
        requires = "registry_url",
        env = "JACKAL_REGISTRY_PUSH_PASSWORD",
        hide_env_values = true
    )]
    pub registry_push_password: Option<String>,
    /// Read-only account nodes pull with (Secret jackal-registry-pull). The push account when unset.
    #[arg(long, requires = "registry_url", env = "JACKAL_REGISTRY_PULL_USERNAME")]
    pub registry_pull_username: Option<String>,
    /// Its password (prefer the environment variable).
    #[arg(
        long,
        requires = "registry_url",
        env = "JACKAL_REGISTRY_PULL_PASSWORD",
        hide_env_values = true
    )]
    pub registry_pull_password: Option<String>,
    /// Reach the external registry over plain HTTP or with an untrusted certificate (loopback
    /// addresses always are plain).
    #[arg(long, requires = "registry_url")]
    pub registry_insecure: bool,
}

/// `package publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The package file.
    pub package: PathBuf,
    /// Where to publish: oci://REGISTRY/NAMESPACE.
    pub target: String,
    /// A registry to reach over plain HTTP (loopback registries always are) (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

/// `package pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// The package: oci://REGISTRY/REPOSITORY:TAG.
    pub source: String,
    /// Where to write the package file.
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,
    /// Only pull what these components (and the required ones) need (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub components: Vec<String>,
    /// A registry to reach over plain HTTP (loopback registries always are) (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

/// `package create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Directory holding jackal.yaml.
    #[arg(default_value = ".")]
    pub directory: PathBuf,
    /// Where to write the package.
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,
    /// Only include components without a flavor or with this one.
    #[arg(short, long)]
    pub flavor: Option<String>,
    /// Value for a ###JACKAL_PKG_TMPL_KEY### marker (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
    pub set: Vec<(String, String)>,
    /// Target architecture; the package's metadata.architecture, else this machine's.
    #[arg(short, long)]
    pub architecture: Option<String>,
    /// PEM private key (PKCS#8 ECDSA P-256) to sign the package with.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Pull images of SOURCE from MIRROR instead, e.g. docker.io=127.0.0.1:5000 (repeatable).
    #[arg(long = "registry-override", value_name = "SOURCE=MIRROR", value_parser = key_value)]
    pub registry_overrides: Vec<(String, String)>,
    /// A registry to reach over plain HTTP (loopback registries always are) (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

/// `package inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The package file, or oci://REGISTRY/REPOSITORY:TAG.
    pub package: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Public key to check the signature with.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// A registry to reach over plain HTTP (loopback registries always are) (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

/// `package verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The package file.
    pub package: PathBuf,
    /// Public key the package must be signed with.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Accept a signed package without checking its signature.
    #[arg(long)]
    pub skip_signature: bool,
    /// Accept files missing from a partial pull (`package pull --components`).
    #[arg(long)]
    pub partial: bool,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// `tools` commands.
#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Generate a signing key pair: jackal.key (private, keep it safe) and jackal.pub.
    GenKey {
        /// Directory to write the keys to.
        #[arg(long, default_value = ".")]
        output_dir: PathBuf,
    },
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn key_values_are_parsed() {
        assert_eq!(key_value("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(key_value("novalue").is_err());
        assert!(key_value("=x").is_err());
    }
}
