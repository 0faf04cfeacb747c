//! An external registry instead of the internal one (`spec.registry.external`): the state comes
//! from the push and pull Secrets the user named, nothing is seeded, the init images are pushed
//! straight into that registry and workloads pull from it with the pull Secret.

use jackal_crds::init::ExternalRegistry;
use jackal_crds::names::{REGISTRY_PULL_SECRET, STATE_SECRET};
use jackal_crds::state::{JackalState, Password, RegistryState};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

use super::{Bootstrap, Reach, StepError, api};
use crate::bootstrap::objects;
use crate::registry::{DockerConfig, RegistryAuth};

/// The key of a `kubernetes.io/dockerconfigjson` Secret.
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

impl Bootstrap {
    /// The external registry, when the spec names one.
    pub fn external_registry(&self) -> Option<&ExternalRegistry> {
        self.spec.registry.external.as_ref()
    }

    /// Whether the registry speaks plain HTTP: the internal one does (it is reached on loopback
    /// NodePorts or cluster IPs), an external one when marked `insecure` or on loopback.
    pub fn registry_is_plain(&self) -> bool {
        self.external_registry()
            .is_none_or(|external| external.insecure || is_loopback(registry_host(&external.address)))
    }

    /// The state for an external registry, from the Secrets the spec names; stored in the state
    /// Secret when it differs from what is there (credentials rotated).
    pub(super) async fn ensure_external_state(
        &self,
        external: &ExternalRegistry,
    ) -> Result<JackalState, StepError> {
        let host = registry_host(&external.address);
        let (push_username, push_password) = self.credentials(&external.push_secret_ref.name, host).await?;
        let (pull_username, pull_password) = match &external.pull_secret_ref {
            Some(pull) => self.credentials(&pull.name, host).await?,
            None => (push_username.clone(), push_password.clone()),
        };
        let state = JackalState {
            registry: RegistryState {
                address: external.address.clone(),
                pull_username,
                pull_password,
                push_username,
                push_password,
            },
            git: None,
        };
        let stored = self
            .api::<Secret>()
            .get_opt(STATE_SECRET)
            .await
            .map_err(api("read the state Secret"))?;
        if let Some(stored) = stored
            && super::read_state(&stored).is_ok_and(|stored| stored == state)
        {
            return Ok(state);
        }
        let secret = self.state_secret(&state)?;
        self.apply(&secret, STATE_SECRET).await?;
        Ok(state)
    }

    /// User name and password for `host` in the dockerconfigjson Secret `name`.
    async fn credentials(&self, name: &str, host: &str) -> Result<(String, Password), StepError> {
        let secret = self
            .api::<Secret>()
            .get_opt(name)
            .await
            .map_err(api(format!("read the registry credentials Secret {name}")))?
            .ok_or_else(|| {
                StepError::Invalid(format!(
                    "Secret {}/{name} (registry credentials named by the JackalInit) does not exist",
                    self.namespace
                ))
            })?;
        credentials_for(&secret, host)
            .map_err(|why| StepError::Invalid(format!("Secret {}/{name}: {why}", self.namespace)))
    }

    /// Applies the registry pull Secret to this namespace (the operator's pods pull with it).
    pub async fn ensure_pull_secret(&self, state: &JackalState) -> Result<(), StepError> {
        let pull = objects::registry_pull_secret(&self.namespace, state);
        self.apply(&pull, REGISTRY_PULL_SECRET).await.map(drop)
    }

    /// `address` as this process reaches it: in a pod, a loopback address (which names the node
    /// to the container runtime) is reached through the node's IP.
    pub(super) fn reach_address(&self, address: &str) -> String {
        match self.reach {
            Reach::InPod {
                node_ip: Some(node_ip),
            } if is_loopback(registry_host(address)) => {
                let rest = &address[address.find(':').unwrap_or(address.len())..];
                let ip = match node_ip {
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    std::net::IpAddr::V4(ip) => ip.to_string(),
                };
                format!("{ip}{rest}")
            }
            _ => address.to_owned(),
        }
    }
}

/// `HOST[:PORT]` of `HOST[:PORT][/PATH]`.
pub fn registry_host(address: &str) -> &str {
    address.split('/').next().unwrap_or(address)
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

/// The user name and password a dockerconfigjson Secret holds for `host`.
pub fn credentials_for(secret: &Secret, host: &str) -> Result<(String, Password), String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(DOCKER_CONFIG_KEY))
        .ok_or_else(|| format!("has no {DOCKER_CONFIG_KEY} key (a kubernetes.io/dockerconfigjson Secret)"))?;
    let config = DockerConfig::from_bytes(&bytes.0, DOCKER_CONFIG_KEY).map_err(|error| error.to_string())?;
    match config.for_host(host) {
        RegistryAuth::Basic(user, password) => Ok((user, Password(password))),
        _ => Err(format!("holds no user name and password for {host}")),
    }
}

/// A `kubernetes.io/dockerconfigjson` Secret `name` in `namespace` with one login for `host`.
pub fn credentials_secret(namespace: &str, name: &str, host: &str, username: &str, password: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(
                [(
                    jackal_crds::names::MANAGED_BY_LABEL.to_owned(),
                    jackal_crds::names::MANAGED_BY_VALUE.to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
        data: Some(
            [(
                DOCKER_CONFIG_KEY.to_owned(),
                ByteString(DockerConfig::with_basic(host, username, password).to_json()),
            )]
            .into(),
        ),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_for_the_registry_host_only() {
        let secret = credentials_secret("jackal", "push", "registry.example:5000", "ci", "s3cret");
        let (user, password) = credentials_for(&secret, "registry.example:5000").unwrap();
        assert_eq!((user.as_str(), password.expose()), ("ci", "s3cret"));
        let other = credentials_for(&secret, "elsewhere.example").unwrap_err();
        assert_eq!(other, "holds no user name and password for elsewhere.example");
        let empty = Secret::default();
        assert!(
            credentials_for(&empty, "x")
                .unwrap_err()
                .contains(".dockerconfigjson")
        );
    }

    #[test]
    fn the_host_of_an_address_with_a_path_is_its_first_part() {
        assert_eq!(
            registry_host("registry.example:5000/team/jackal"),
            "registry.example:5000"
        );
        assert!(is_loopback("127.0.0.1:31996") && is_loopback("localhost") && !is_loopback("10.0.0.1:80"));
    }
}
