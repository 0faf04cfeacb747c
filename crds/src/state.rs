//! The cluster state Jackal keeps in the `jackal/jackal-state` Secret (key `state`, JSON): where the
//! registry and git server are and the credentials to use them. Written by the bootstrap, read by
//! the operator (webhook rules, pull Secrets, image relocation) and the plugin.

use serde::{Deserialize, Serialize};

/// Everything the operator needs to point workloads at the cluster's own services.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JackalState {
    /// The registry workloads pull from.
    pub registry: RegistryState,
    /// The git server repositories are mirrored to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitState>,
}

/// Registry endpoint and credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryState {
    /// Address container runtimes pull from (`127.0.0.1:31999`).
    pub address: String,
    /// Read-only account for pulls.
    pub pull_username: String,
    /// Password of [`Self::pull_username`].
    pub pull_password: Password,
    /// Account the operator pushes with.
    #[serde(default)]
    pub push_username: String,
    /// Password of [`Self::push_username`].
    #[serde(default)]
    pub push_password: Password,
}

/// Git server endpoint and credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitState {
    /// Base URL, as workloads reach it.
    pub url: String,
    /// Account owning the mirrors.
    pub push_username: String,
    /// Read-only account for clones.
    pub pull_username: String,
    /// Password of [`Self::pull_username`].
    pub pull_password: Password,
}

/// A credential: serialised as given, but never printed by `Debug`, so it cannot reach a log.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

impl Password {
    /// The secret text, for the few places that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_debug_output() {
        let state = JackalState {
            registry: RegistryState {
                address: "127.0.0.1:31999".into(),
                pull_username: "jackal-pull".into(),
                pull_password: Password("hunter2-pull".into()),
                push_username: "jackal-push".into(),
                push_password: Password("hunter2-push".into()),
            },
            git: None,
        };
        let printed = format!("{state:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("<redacted>") && printed.contains("jackal-pull"));
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.contains(r#""pullPassword":"hunter2-pull""#), "{json}");
        assert_eq!(serde_json::from_str::<JackalState>(&json).unwrap(), state);
    }
}
