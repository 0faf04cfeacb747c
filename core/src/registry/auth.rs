//! Registry credentials in the docker `config.json` format, parsed in one place whether they come
//! from a file (the plugin: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`) or from bytes
//! (the operator: a `kubernetes.io/dockerconfigjson` Secret, the state Secret), and written in
//! the same format for the pull Secrets the operator keeps.
//!
//! Credential helpers (`credsStore`, `credHelpers`) run a program: they are honoured only for a
//! file the user owns, never for configuration that arrives in a Secret.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oci_client::secrets::RegistryAuth;
use serde::{Deserialize, Serialize};

/// A docker configuration: credentials per registry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerConfig {
    /// Credentials by registry (`ghcr.io`, `https://index.docker.io/v1/`, …).
    #[serde(default)]
    pub auths: BTreeMap<String, DockerAuth>,
    /// The credential helper for every registry (file configurations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds_store: Option<String>,
    /// Credential helpers by registry (file configurations only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cred_helpers: BTreeMap<String, String>,
    /// Whether the helpers above may be run.
    #[serde(skip)]
    helpers_allowed: bool,
}

/// One registry's credentials: `auth` (base64 `user:password`) or the two fields.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerAuth {
    /// Base64 of `username:password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for DockerAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DockerAuth")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Credentials that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file exists but cannot be read.
    #[error("failed to read docker config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The content is not a docker configuration.
    #[error("{origin} is not a docker config (a JSON object with \"auths\"): {source}")]
    Parse {
        /// The file or Secret it came from.
        origin: String,
        /// Why.
        source: serde_json::Error,
    },
}

impl DockerConfig {
    /// The user's configuration: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; an
    /// absent file means anonymous access. Credential helpers it names may run.
    pub fn load_default() -> Result<Self, AuthError> {
        let directory = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")));
        match directory {
            Some(directory) => Self::from_file(&directory.join("config.json")),
            None => Ok(Self::default()),
        }
    }

    /// The configuration in `path` (anonymous when the file does not exist). Credential helpers
    /// it names may run.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(AuthError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut config = Self::parse(&bytes, &path.display().to_string())?;
        config.helpers_allowed = true;
        Ok(config)
    }

    /// The configuration in `bytes` (a `.dockerconfigjson` Secret key, or the legacy `.dockercfg`
    /// map of registry to credentials); `origin` names it in errors. Helpers never run.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self, AuthError> {
        Self::parse(bytes, origin)
    }

    fn parse(bytes: &[u8], origin: &str) -> Result<Self, AuthError> {
        let parse_error = |source| AuthError::Parse {
            origin: origin.to_owned(),
            source,
        };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(parse_error)?;
        let is_modern = value.as_object().is_some_and(|object| {
            ["auths", "credsStore", "credHelpers"]
                .iter()
                .any(|key| object.contains_key(*key))
        });
        if is_modern || value.as_object().is_some_and(serde_json::Map::is_empty) {
            serde_json::from_value(value).map_err(parse_error)
        } else {
            // `.dockercfg`: the `auths` map on its own.
            let auths = serde_json::from_value(value).map_err(parse_error)?;
            Ok(Self {
                auths,
                ..Self::default()
            })
        }
    }

    /// A configuration holding one registry's user name and password.
    pub fn with_basic(registry: &str, username: &str, password: &str) -> Self {
        let mut config = Self::default();
        config.insert_basic(registry, username, password);
        config
    }

    /// Adds (or replaces) `registry`'s credentials.
    pub fn insert_basic(&mut self, registry: &str, username: &str, password: &str) {
        self.auths.insert(
            registry.to_owned(),
            DockerAuth {
                auth: Some(BASE64.encode(format!("{username}:{password}"))),
                username: Some(username.to_owned()),
                password: Some(password.to_owned()),
            },
        );
    }

    /// The configuration as `.dockerconfigjson` bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising maps of strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The credentials for `host` (`HOST[:PORT]`), anonymous when none are configured.
    pub fn for_host(&self, host: &str) -> RegistryAuth {
        let docker_hub = if host == "docker.io" {
            "https://index.docker.io/v1/"
        } else {
            ""
        };
        let keys = [
            host.to_owned(),
            format!("https://{host}"),
            format!("http://{host}"),
            docker_hub.to_owned(),
        ];
        for key in keys.iter().filter(|key| !key.is_empty()) {
            if let Some((user, password)) = self.auths.get(key).and_then(DockerAuth::basic) {
                return RegistryAuth::Basic(user, password);
            }
        }
        if !self.helpers_allowed {
            return RegistryAuth::Anonymous;
        }
        let helper = self.cred_helpers.get(host).or(self.creds_store.as_ref());
        helper
            .and_then(|helper| from_helper(helper, host))
            .unwrap_or(RegistryAuth::Anonymous)
    }
}

impl DockerAuth {
    /// User name and password, from `auth` or from the two fields.
    fn basic(&self) -> Option<(String, String)> {
        let decoded = self
            .auth
            .as_deref()
            .and_then(|encoded| BASE64.decode(encoded).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|text| text.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())));
        decoded.or_else(|| Some((self.username.clone()?, self.password.clone()?)))
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

    fn basic(auth: RegistryAuth) -> Option<(String, String)> {
        match auth {
            RegistryAuth::Basic(user, password) => Some((user, password)),
            _ => None,
        }
    }

    #[test]
    fn credentials_come_from_auths() {
        let config = DockerConfig::from_bytes(
            br#"{"auths": {"ghcr.io": {"auth": "dXNlcjpzZWNyZXQ="}, "https://quay.io": {"username": "u", "password": "p"}, "https://index.docker.io/v1/": {"auth": "aHViOnB3"}}}"#,
            "test",
        )
        .unwrap();
        assert_eq!(
            basic(config.for_host("ghcr.io")),
            Some(("user".into(), "secret".into()))
        );
        assert_eq!(basic(config.for_host("quay.io")), Some(("u".into(), "p".into())));
        assert_eq!(
            basic(config.for_host("docker.io")),
            Some(("hub".into(), "pw".into()))
        );
        assert!(matches!(config.for_host("gcr.io"), RegistryAuth::Anonymous));
    }

    #[test]
    fn written_configs_read_back_and_legacy_ones_parse() {
        let written = DockerConfig::with_basic("127.0.0.1:31999", "jackal-pull", "pull-password");
        let json: serde_json::Value = serde_json::from_slice(&written.to_json()).unwrap();
        let entry = &json["auths"]["127.0.0.1:31999"];
        assert_eq!(entry["username"], "jackal-pull");
        assert_eq!(
            BASE64.decode(entry["auth"].as_str().unwrap()).unwrap(),
            b"jackal-pull:pull-password"
        );
        let read = DockerConfig::from_bytes(&written.to_json(), "secret").unwrap();
        assert_eq!(read, written);
        let legacy =
            DockerConfig::from_bytes(br#"{"registry.example.com": {"auth": "YTpi"}}"#, "dockercfg").unwrap();
        assert_eq!(
            basic(legacy.for_host("registry.example.com")),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(
            DockerConfig::from_bytes(b"{}", "empty").unwrap(),
            DockerConfig::default()
        );
    }

    #[test]
    fn secrets_never_run_helpers_and_bad_input_is_named() {
        // A helper named in a Secret would run a program inside the operator: ignored.
        let config = DockerConfig::from_bytes(br#"{"credsStore": "evil", "auths": {}}"#, "secret").unwrap();
        assert!(matches!(config.for_host("ghcr.io"), RegistryAuth::Anonymous));
        for bytes in [&b"not json"[..], b"[1]", br#"{"auths": 3}"#] {
            let error = DockerConfig::from_bytes(bytes, "Secret shop/creds")
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with("Secret shop/creds is not a docker config"),
                "{error}"
            );
        }
        let missing = DockerConfig::from_file(Path::new("/nonexistent/config.json")).unwrap();
        assert_eq!(missing, DockerConfig::default());
        let printed = format!("{:?}", DockerConfig::with_basic("r", "user", "hunter2"));
        assert!(
            !printed.contains("hunter2") && !printed.contains("aHVudGVy"),
            "{printed}"
        );
    }
}
