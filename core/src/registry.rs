//! Talking to OCI registries: a client that uses plain HTTP for loopback registries (and those the
//! user marks insecure) and HTTPS otherwise, the credentials to present ([`auth`]), and what a
//! failure means to the caller ([`error`]).

pub mod auth;
pub mod copy;
pub mod error;

use std::time::Duration;

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};

pub use auth::{AuthError, DockerConfig};
pub use error::{Categorize, ErrorCategory, RegistryError};
pub use oci_client::secrets::RegistryAuth;

/// How to reach registries: the credentials to present and the hosts that speak plain HTTP besides
/// loopback ones. The plugin builds it from the user's docker config and flags, a controller from
/// Secrets and its resource's spec.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Credentials by registry.
    pub credentials: DockerConfig,
    /// Registries (`HOST[:PORT]`) reached over plain HTTP although not on loopback.
    pub insecure: Vec<String>,
}

impl Access {
    /// A client for talking to `hosts`.
    pub fn client(&self, hosts: &[String]) -> Client {
        client(hosts, &self.insecure)
    }

    /// The credentials for `host`.
    pub fn auth(&self, host: &str) -> RegistryAuth {
        self.credentials.for_host(host)
    }
}

/// Installs ring as rustls's crypto provider (once); every TLS client here needs one.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether `host` (`HOST[:PORT]`) is on this machine, where registries speak plain HTTP.
pub fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

/// A registry client; `hosts` are every registry it will talk to (to decide HTTP or HTTPS).
pub fn client(hosts: &[String], insecure: &[String]) -> Client {
    ensure_crypto_provider();
    let plain: Vec<String> = hosts
        .iter()
        .filter(|host| is_loopback(host) || insecure.contains(host))
        .cloned()
        .collect();
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain),
        accept_invalid_certificates: false,
        max_concurrent_download: 4,
        max_concurrent_upload: 4,
        use_monolithic_push: true,
        read_timeout: Some(Duration::from_secs(300)),
        connect_timeout: Some(Duration::from_secs(30)),
        user_agent: concat!("jackal/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_recognised() {
        for host in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:31999",
            "127.1.2.3",
            "[::1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "docker.io",
            "ghcr.io",
            "10.0.0.1:5000",
            "registry.example.com:443",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
