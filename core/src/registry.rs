//! Talking to OCI registries: a client that uses plain HTTP for loopback registries (and those the
//! user marks insecure) and HTTPS otherwise, and credentials from the docker `config.json`
//! (`auths` entries and credential helpers), as every other registry tool finds them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

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

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Registry credentials from the docker configuration.
#[derive(Default)]
pub struct Credentials {
    config: DockerConfig,
}

impl Credentials {
    /// Loads `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` (none is fine: anonymous).
    pub fn load() -> Self {
        let directory = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")));
        let config = directory
            .and_then(|directory| std::fs::read(directory.join("config.json")).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self { config }
    }

    /// The credentials for `host`, anonymous when none are configured.
    pub fn for_host(&self, host: &str) -> RegistryAuth {
        let keys = [
            host.to_owned(),
            format!("https://{host}"),
            format!("http://{host}"),
            if host == "docker.io" {
                "https://index.docker.io/v1/".into()
            } else {
                String::new()
            },
        ];
        for key in keys.iter().filter(|key| !key.is_empty()) {
            if let Some(auth) = self.config.auths.get(key) {
                if let Some((user, password)) = auth
                    .auth
                    .as_deref()
                    .and_then(|encoded| BASE64.decode(encoded).ok())
                    .and_then(|decoded| String::from_utf8(decoded).ok())
                    .and_then(|text| text.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
                {
                    return RegistryAuth::Basic(user, password);
                }
                if let (Some(user), Some(password)) = (&auth.username, &auth.password) {
                    return RegistryAuth::Basic(user.clone(), password.clone());
                }
            }
        }
        let helper = self
            .config
            .cred_helpers
            .get(host)
            .or(self.config.creds_store.as_ref());
        helper
            .and_then(|helper| from_helper(helper, host))
            .unwrap_or(RegistryAuth::Anonymous)
    }
}

/// Asks `docker-credential-<helper>` for `host`'s credentials.
fn from_helper(helper: &str, host: &str) -> Option<RegistryAuth> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Reply {
        username: String,
        secret: String,
    }
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(host.as_bytes()).ok()?;
    let output = child.wait_with_output().ok()?;
    let reply: Reply = serde_json::from_slice(&output.stdout)
        .ok()
        .filter(|_| output.status.success())?;
    Some(RegistryAuth::Basic(reply.username, reply.secret))
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

    #[test]
    fn credentials_come_from_auths() {
        let config: DockerConfig = serde_json::from_str(
            r#"{"auths": {"ghcr.io": {"auth": "dXNlcjpzZWNyZXQ="}, "https://quay.io": {"username": "u", "password": "p"}}}"#,
        )
        .unwrap();
        let credentials = Credentials { config };
        assert!(
            matches!(credentials.for_host("ghcr.io"), RegistryAuth::Basic(user, pass) if user == "user" && pass == "secret")
        );
        assert!(matches!(credentials.for_host("quay.io"), RegistryAuth::Basic(user, _) if user == "u"));
        assert!(matches!(
            credentials.for_host("docker.io"),
            RegistryAuth::Anonymous
        ));
    }
}
