//! The bootstrap steps that talk to the cluster, each idempotent: it reads what exists, makes what
//! is missing or wrong, and can be run again after a crash anywhere. In order: the state
//! ([`Bootstrap::ensure_state`]), the payload ConfigMaps ([`Bootstrap::write_payload`]), the
//! injector ([`Bootstrap::start_injector`]), the registry from the seed
//! ([`Bootstrap::start_registry`]), the seed images pushed into it ([`Bootstrap::push_images`]),
//! the registry pulling its own image ([`Bootstrap::self_host_registry`]), and cleanup
//! ([`Bootstrap::clean_up`]).

mod external;
mod handover;
mod wait;

use std::path::PathBuf;

use jackal_crds::init::JackalInitSpec;
use jackal_crds::names::{DEFAULT_REGISTRY_NODE_PORT, REGISTRY_PULL_SECRET, STATE_KEY, STATE_SECRET};
use jackal_crds::state::{JackalState, Password, RegistryState};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::credentials::{self, PULL_USER, PUSH_USER};
use super::objects::{self, INJECTOR, INJECTOR_LABEL, INJECTOR_VALUE, REGISTRY};
use super::seed::{self, Placement};
use crate::oci::Digest;
use crate::payload::{self, DEFAULT_CHUNK_SIZE, SourceImage};
use crate::registry::copy::{Copied, copy_image, push_from_layout};
use crate::registry::error::retry;
use crate::registry::{Access, Categorize, DockerConfig, ErrorCategory};
use crate::transform::image::{from_internal, to_internal};

pub use external::{credentials_for, credentials_secret, registry_host};
use wait::wait_serving;
pub use wait::{container_image, describe_pod, rollout_pending, unschedulable};

/// Field manager of everything bootstrap applies.
pub const FIELD_MANAGER: &str = "jackal-bootstrap";

/// Why a step failed. Each variant names the operation; [`Self::category`] says whether waiting
/// helps.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// An API request failed.
    #[error("failed to {action}: {source}")]
    Api {
        /// What was attempted.
        action: String,
        /// Why.
        source: kube::Error,
    },
    /// Building the payload failed.
    #[error("failed to build the seed payload: {0}")]
    Payload(#[from] payload::PayloadError),
    /// Reading the injector binary failed.
    #[error("failed to read the injector binary {path}: {source}")]
    Injector {
        /// Where it was looked for.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No node and image can run the injector.
    #[error(transparent)]
    Placement(#[from] seed::PlacementError),
    /// Something did not become ready in time.
    #[error("{what} did not become ready within {seconds} s: {detail}")]
    NotReady {
        /// The object.
        what: String,
        /// The timeout.
        seconds: u64,
        /// Its last status.
        detail: String,
    },
    /// Credentials could not be made.
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    /// An image could not be copied.
    #[error(transparent)]
    Copy(#[from] crate::registry::copy::CopyError),
    /// A stored object holds something unusable.
    #[error("{0}")]
    Invalid(String),
    /// A payload chunk in the cluster is not what was written: the seed cannot start from it.
    #[error(
        "ConfigMap {chunk} does not hold the payload chunk that was written (it hashes to {found}, written {expected}); payload {payload}"
    )]
    CorruptChunk {
        /// The chunk's ConfigMap.
        chunk: String,
        /// sha256 of what was written.
        expected: Digest,
        /// sha256 of what it holds now.
        found: Digest,
        /// The payload's digest.
        payload: Digest,
    },
}

impl Categorize for StepError {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Api { source, .. } => match source {
                kube::Error::Api(status) => crate::registry::error::status_category(status.code),
                _ => ErrorCategory::Transient,
            },
            Self::Payload(_) | Self::Injector { .. } => ErrorCategory::Io,
            Self::Placement(_) | Self::Invalid(_) => ErrorCategory::Invalid,
            Self::CorruptChunk { .. } => ErrorCategory::Integrity,
            Self::NotReady { .. } | Self::Credentials(_) => ErrorCategory::Transient,
            Self::Copy(error) => error.category(),
        }
    }
}

fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> StepError {
    let action = action.into();
    move |source| StepError::Api { action, source }
}

/// How the process running bootstrap reaches the injector and the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// `127.0.0.1:<nodePort>`: the process runs on a node (the plugin on the test cluster's
    /// machine, or on a node of a real one).
    NodePort,
    /// The Service's cluster IP: the process runs in a pod (the operator) on the node `node_ip`
    /// (through which it reaches a registry the node knows as `127.0.0.1:<port>`).
    InPod {
        /// The node's IP (`status.hostIP`), when known.
        node_ip: Option<std::net::IpAddr>,
    },
}

/// Everything bootstrap needs.
pub struct Bootstrap {
    /// The API client.
    pub client: Client,
    /// Where Jackal lives (`jackal`; tests use their own).
    pub namespace: String,
    /// The `JackalInit`'s spec.
    pub spec: JackalInitSpec,
    /// The images that travel through ConfigMaps (the registry's own image).
    pub seed_images: Vec<SourceImage>,
    /// The registry image among them (`docker.io/library/registry:3.1.2`).
    pub registry_image: String,
    /// The static injector binary.
    pub injector_binary: PathBuf,
    /// How NodePorts are reached.
    pub reach: Reach,
}

/// The running seed registry (the injector).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    /// Where nodes pull from it (`127.0.0.1:<nodePort>`): the host of the registry's first image.
    pub node_address: String,
    /// Where this process reaches it.
    pub endpoint: String,
}

impl Seed {
    /// `image` as nodes pull it from the seed.
    pub fn image(&self, image: &str) -> String {
        format!("{}/{image}", self.node_address)
    }
}

/// What the payload step wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// sha256 of the payload.
    pub digest: Digest,
    /// The chunk ConfigMaps, in order.
    pub chunks: Vec<String>,
    /// sha256 of each chunk as written, in order.
    pub chunk_digests: Vec<Digest>,
}

/// A namespaced Kubernetes object type the steps read and apply.
pub(crate) trait Namespaced:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
{
}

impl Bootstrap {
    fn api<K: Namespaced>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn apply<K: Namespaced + Serialize>(&self, object: &K, name: &str) -> Result<K, StepError> {
        apply_with(
            self.api::<K>(),
            object,
            &format!("{}/{name}", self.namespace),
            name,
        )
        .await
    }

    /// The registry's NodePort.
    pub fn registry_node_port(&self) -> i32 {
        self.spec
            .registry
            .internal
            .as_ref()
            .and_then(|internal| internal.node_port)
            .unwrap_or(DEFAULT_REGISTRY_NODE_PORT)
    }

    /// The state Secret holding `state`.
    fn state_secret(&self, state: &JackalState) -> Result<Secret, StepError> {
        let json = serde_json::to_vec(state).map_err(|error| StepError::Invalid(error.to_string()))?;
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(STATE_SECRET.to_owned()),
                namespace: Some(self.namespace.clone()),
                labels: Some(
                    [(
                        jackal_crds::names::MANAGED_BY_LABEL.to_owned(),
                        jackal_crds::names::MANAGED_BY_VALUE.to_owned(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            data: Some([(STATE_KEY.to_owned(), ByteString(json))].into()),
            ..Secret::default()
        })
    }

    /// The cluster state: read from its Secret, or generated (new passwords) and stored once.
    pub async fn ensure_state(&self) -> Result<JackalState, StepError> {
        if let Some(external) = self.external_registry() {
            return self.ensure_external_state(external).await;
        }
        let secrets = self.api::<Secret>();
        if let Some(existing) = secrets
            .get_opt(STATE_SECRET)
            .await
            .map_err(api("read the state Secret"))?
        {
            return read_state(&existing);
        }
        let state = JackalState {
            registry: RegistryState {
                address: format!("127.0.0.1:{}", self.registry_node_port()),
                pull_username: PULL_USER.to_owned(),
                pull_password: Password(credentials::generate_password()?),
                push_username: PUSH_USER.to_owned(),
                push_password: Password(credentials::generate_password()?),
            },
            git: None,
        };
        let secret = self.state_secret(&state)?;
        // Create, never overwrite: a concurrent bootstrap that won the race has the passwords.
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(state),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = secrets
                    .get(STATE_SECRET)
                    .await
                    .map_err(api("read the state Secret"))?;
                read_state(&existing)
            }
            Err(error) => Err(api("create the state Secret")(error)),
        }
    }

    /// Writes the seed images as immutable chunk ConfigMaps, one chunk in memory at a time;
    /// chunks already there with the same bytes are kept, others replaced, extra ones removed.
    pub async fn write_payload(&self) -> Result<Payload, StepError> {
        let chunk_size = self
            .spec
            .injector
            .chunk_size
            .and_then(|size| usize::try_from(size).ok())
            .unwrap_or(DEFAULT_CHUNK_SIZE);
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<(usize, Vec<u8>)>(1);
        let images = self.seed_images.clone();
        let builder = tokio::task::spawn_blocking(move || {
            payload::build(&images, chunk_size, |index, bytes| {
                sender
                    .blocking_send((index, bytes.to_vec()))
                    .map_err(|_| std::io::Error::other("the ConfigMap writer stopped"))
            })
        });
        let mut chunks = Vec::new();
        let mut chunk_digests = Vec::new();
        let mut failure = None;
        while let Some((index, bytes)) = receiver.recv().await {
            let name = payload::chunk_name(index);
            chunk_digests.push(Digest::of(&bytes));
            if failure.is_none()
                && let Err(error) = self.put_binary(&name, bytes).await
            {
                failure = Some(error);
                // Dropping the receiver stops the builder at its next chunk.
                break;
            }
            chunks.push(name);
        }
        drop(receiver);
        let built = builder
            .await
            .map_err(|error| StepError::Invalid(format!("the payload builder panicked: {error}")));
        if let Some(error) = failure {
            return Err(error);
        }
        let summary = built??;
        // Chunks of an earlier, longer payload would confuse nobody (the pod names its chunks) but
        // would leak: remove them.
        let config_maps = self.api::<ConfigMap>();
        let listed = config_maps
            .list(&ListParams::default().labels(&format!("{INJECTOR_LABEL}={INJECTOR_VALUE}")))
            .await
            .map_err(api("list the payload ConfigMaps"))?;
        for stale in listed.items {
            let name = stale.metadata.name.unwrap_or_default();
            if name.starts_with(payload::CHUNK_PREFIX) && !chunks.contains(&name) {
                config_maps
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map_err(api(format!("delete the stale ConfigMap {name}")))?;
            }
        }
        Ok(Payload {
            digest: summary.digest,
            chunks,
            chunk_digests,
        })
    }

    /// Makes the immutable ConfigMap `name` hold exactly `bytes`.
    async fn put_binary(&self, name: &str, bytes: Vec<u8>) -> Result<(), StepError> {
        let config_maps = self.api::<ConfigMap>();
        if let Some(existing) = config_maps
            .get_opt(name)
            .await
            .map_err(api(format!("read ConfigMap {name}")))?
        {
            let same = existing
                .binary_data
                .as_ref()
                .and_then(|data| data.get(name))
                .is_some_and(|stored| stored.0 == bytes);
            if same {
                return Ok(());
            }
            config_maps
                .delete(name, &DeleteParams::default())
                .await
                .map_err(api(format!("replace ConfigMap {name}")))?;
        }
        let config_map = objects::binary_config_map(&self.namespace, name, bytes);
        config_maps
            .create(&PostParams::default(), &config_map)
            .await
            .map_err(api(format!("create ConfigMap {name}")))?;
        Ok(())
    }

    /// Starts the injector on the best placement that works and returns where the seed
    /// registry answers.
    pub async fn start_injector(&self, payload: &Payload) -> Result<Seed, StepError> {
        let binary = tokio::fs::read(&self.injector_binary)
            .await
            .map_err(|source| StepError::Injector {
                path: self.injector_binary.clone(),
                source,
            })?;
        self.put_binary(INJECTOR, binary).await?;
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(api("list nodes"))?;
        let architecture = self.spec.architecture.map(|architecture| architecture.as_str());
        let placements = seed::placements(&nodes.items, architecture, self.spec.injector.image.as_deref())?;
        let service = objects::node_port_service(
            &self.namespace,
            INJECTOR,
            INJECTOR,
            self.spec.injector.node_port,
            true,
        )
        .map_err(|error| StepError::Invalid(error.to_string()))?;
        let applied = self.apply(&service, INJECTOR).await?;
        let node_port = applied
            .spec
            .and_then(|spec| spec.ports)
            .and_then(|ports| ports.first().and_then(|port| port.node_port))
            .ok_or_else(|| StepError::Invalid(format!("Service {INJECTOR} has no NodePort")))?;
        let address = self.endpoint(INJECTOR, node_port).await?;
        let mut last = None;
        for placement in &placements {
            let started = self.run_injector(placement, payload).await;
            let serving = match started {
                Ok(()) => wait_serving(&address, "/v2/", &format!("the seed registry at {address}")).await,
                Err(error) => {
                    // The injector refuses a payload that is not exactly what was written: name the
                    // chunk (no other node will do better).
                    self.check_chunks(payload).await?;
                    Err(error)
                }
            };
            match serving {
                Ok(()) => {
                    return Ok(Seed {
                        node_address: format!("127.0.0.1:{node_port}"),
                        endpoint: address,
                    });
                }
                Err(error) => {
                    tracing::warn!(node = %placement.node, image = %placement.image, %error, "the injector did not start here");
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| StepError::Invalid("no placement for the injector".to_owned())))
    }

    /// Fails naming the first chunk ConfigMap that no longer holds what was written (read one at
    /// a time).
    async fn check_chunks(&self, payload: &Payload) -> Result<(), StepError> {
        let config_maps = self.api::<ConfigMap>();
        for (name, expected) in payload.chunks.iter().zip(&payload.chunk_digests) {
            let held = config_maps
                .get_opt(name)
                .await
                .map_err(api(format!("read ConfigMap {name}")))?
                .and_then(|config_map| config_map.binary_data?.remove(name))
                .map(|bytes| Digest::of(&bytes.0));
            let found = held.unwrap_or_else(|| Digest::of(b""));
            if &found != expected {
                return Err(StepError::CorruptChunk {
                    chunk: name.clone(),
                    expected: expected.clone(),
                    found,
                    payload: payload.digest.clone(),
                });
            }
        }
        Ok(())
    }

    /// Runs the injector pod at `placement` (replacing one that runs elsewhere or on another
    /// payload) and waits until it serves.
    async fn run_injector(&self, placement: &Placement, payload: &Payload) -> Result<(), StepError> {
        let pods = self.api::<Pod>();
        let wanted = objects::injector_pod(
            &self.namespace,
            placement,
            &payload.chunks,
            payload.digest.as_str(),
        )
        .map_err(|error| StepError::Invalid(error.to_string()))?;
        if let Some(existing) = pods
            .get_opt(INJECTOR)
            .await
            .map_err(api("read the injector pod"))?
        {
            let same = existing.spec.as_ref().map(|spec| {
                (
                    &spec.node_name,
                    &spec.containers[0].image,
                    &spec.containers[0].command,
                )
            }) == wanted.spec.as_ref().map(|spec| {
                (
                    &spec.node_name,
                    &spec.containers[0].image,
                    &spec.containers[0].command,
                )
            });
            let failed = existing
                .status
                .as_ref()
                .and_then(|status| status.phase.as_deref())
                == Some("Failed");
            if same && !failed {
                return self.wait_pod_ready(INJECTOR).await;
            }
            pods.delete(INJECTOR, &DeleteParams::default().grace_period(0))
                .await
                .map_err(api("delete the injector pod"))?;
            self.wait_gone::<Pod>(INJECTOR).await?;
        }
        pods.create(&PostParams::default(), &wanted)
            .await
            .map_err(api("create the injector pod"))?;
        let ready = self.wait_pod_ready(INJECTOR).await;
        if ready.is_err() {
            let _ = pods
                .delete(INJECTOR, &DeleteParams::default().grace_period(0))
                .await;
            let _ = self.wait_gone::<Pod>(INJECTOR).await;
        }
        ready
    }

    /// Where this process reaches the Service `name` (NodePort `node_port`).
    async fn endpoint(&self, name: &str, node_port: i32) -> Result<String, StepError> {
        match self.reach {
            Reach::NodePort => Ok(format!("127.0.0.1:{node_port}")),
            Reach::InPod { .. } => {
                let service = self
                    .api::<Service>()
                    .get(name)
                    .await
                    .map_err(api(format!("read Service {name}")))?;
                let ip = service
                    .spec
                    .and_then(|spec| spec.cluster_ip)
                    .filter(|ip| !ip.is_empty() && ip != "None")
                    .ok_or_else(|| StepError::Invalid(format!("Service {name} has no cluster IP")))?;
                Ok(if ip.contains(':') {
                    format!("[{ip}]:{}", objects::REGISTRY_PORT)
                } else {
                    format!("{ip}:{}", objects::REGISTRY_PORT)
                })
            }
        }
    }

    /// Where this process reaches the registry.
    pub async fn registry_endpoint(&self) -> Result<String, StepError> {
        if let Some(external) = self.external_registry() {
            return Ok(self.reach_address(&external.address));
        }
        self.endpoint(REGISTRY, self.registry_node_port()).await
    }

    /// Runs the registry Deployment (from `image`) behind its NodePort, with the state's accounts,
    /// and waits until it is available.
    pub async fn start_registry(&self, state: &JackalState, image: &str) -> Result<(), StepError> {
        let registry = &state.registry;
        let secrets = self.api::<Secret>();
        // bcrypt salts every hash: keep the stored file while it still matches the passwords, so
        // a re-run does not roll the registry.
        let existing = secrets
            .get_opt(REGISTRY)
            .await
            .map_err(api("read the registry Secret"))?;
        let kept = existing.as_ref().and_then(|secret| {
            let data = secret.data.as_ref()?;
            let htpasswd = String::from_utf8(data.get("htpasswd")?.0.clone()).ok()?;
            let config = String::from_utf8(data.get("config.yml")?.0.clone()).ok()?;
            let matches = |user: &str, password: &str| {
                htpasswd.lines().any(|line| {
                    line.split_once(':').is_some_and(|(name, hash)| {
                        name == user && bcrypt::verify(password, hash).unwrap_or(false)
                    })
                })
            };
            (matches(&registry.push_username, registry.push_password.expose())
                && matches(&registry.pull_username, registry.pull_password.expose()))
            .then_some((config, htpasswd))
        });
        let (config, htpasswd) = match kept {
            Some(kept) => kept,
            None => (
                objects::registry_config(&credentials::generate_password()?),
                credentials::htpasswd(&[
                    (&registry.push_username, registry.push_password.expose()),
                    (&registry.pull_username, registry.pull_password.expose()),
                ])?,
            ),
        };
        let checksum = Digest::of(format!("{config}{htpasswd}").as_bytes());
        self.apply(
            &objects::registry_secret(&self.namespace, &config, &htpasswd),
            REGISTRY,
        )
        .await?;
        // The registry pulls its own image from itself once self-hosted: it needs the pull Secret
        // in this namespace too (the pull-Secret controller never writes here).
        let pull = objects::registry_pull_secret(&self.namespace, state);
        self.apply(&pull, REGISTRY_PULL_SECRET).await?;
        let internal = self.spec.registry.internal.clone().unwrap_or_default();
        if let Some(storage) = &internal.storage {
            let claim = objects::registry_claim(&self.namespace, storage)
                .map_err(|error| StepError::Invalid(error.to_string()))?;
            self.apply(&claim, REGISTRY).await?;
        }
        let deployment = objects::registry_deployment(
            &self.namespace,
            image,
            internal.replicas.unwrap_or(1),
            internal.storage.as_ref().map(|_| REGISTRY),
            checksum.hex(),
        )
        .map_err(|error| StepError::Invalid(error.to_string()))?;
        self.apply(&deployment, REGISTRY).await?;
        let service = objects::node_port_service(
            &self.namespace,
            REGISTRY,
            REGISTRY,
            Some(self.registry_node_port()),
            false,
        )
        .map_err(|error| StepError::Invalid(error.to_string()))?;
        self.apply(&service, REGISTRY).await?;
        self.wait_deployment_available(REGISTRY).await?;
        let address = self.registry_endpoint().await?;
        wait_serving(&address, "/", &format!("the registry at {address}")).await
    }

    /// The registry image's reference in the registry once self-hosted.
    pub fn self_hosted_image(&self, state: &JackalState) -> Result<String, StepError> {
        to_internal(&self.registry_image, &state.registry.address)
            .map_err(|error| StepError::Invalid(error.to_string()))
    }

    /// Copies every seed image from the seed registry into the registry.
    pub async fn push_images(&self, state: &JackalState, seed: &str) -> Result<Vec<Copied>, StepError> {
        let endpoint = self.registry_endpoint().await?;
        let access = push_access(state, &endpoint, &[&endpoint, seed]);
        let mut copied = Vec::new();
        for image in &self.seed_images {
            let source = format!("{seed}/{}", image.reference);
            let target = to_internal(&image.reference, &endpoint)
                .map_err(|error| StepError::Invalid(error.to_string()))?;
            let parse = |text: &str| {
                text.parse::<oci_client::Reference>()
                    .map_err(|error| StepError::Invalid(format!("{text}: {error}")))
            };
            copied.push(copy_image(&parse(&source)?, &parse(&target)?, &access).await?);
        }
        Ok(copied)
    }

    /// Pushes the images of the init package's layout that did not travel through ConfigMaps
    /// (the operator's among them) into the registry.
    pub async fn push_package_images(
        &self,
        state: &JackalState,
        layout: &crate::layout::Layout,
        images: &[String],
    ) -> Result<Vec<Copied>, StepError> {
        let endpoint = self.registry_endpoint().await?;
        let plain: &[&str] = if self.registry_is_plain() {
            &[&endpoint]
        } else {
            &[]
        };
        let access = push_access(state, &endpoint, plain);
        let seeded: Vec<&str> = self
            .seed_images
            .iter()
            .map(|image| image.reference.as_str())
            .collect();
        let mut pushed = Vec::new();
        for image in images.iter().filter(|image| !seeded.contains(&image.as_str())) {
            let target =
                to_internal(image, &endpoint).map_err(|error| StepError::Invalid(error.to_string()))?;
            let target: oci_client::Reference = target
                .parse()
                .map_err(|error| StepError::Invalid(format!("{target}: {error}")))?;
            // Right after the registry's rollout the NodePort may still reach the old pod as it
            // stops: a reset connection is retried (blobs already sent are skipped).
            let copied = retry(&format!("pushing {image}"), 5, || {
                push_from_layout(layout, image, &target, &access)
            })
            .await?;
            pushed.push(copied);
        }
        Ok(pushed)
    }

    /// Points the registry at its own copy of its image and waits for the rollout (the new pod
    /// pulls the image from the old one). With the seed still running, its images are copied
    /// again: a registry on an emptyDir starts its new pod empty.
    pub async fn self_host_registry(&self, state: &JackalState, seed: Option<&str>) -> Result<(), StepError> {
        let image = self.self_hosted_image(state)?;
        self.start_registry(state, &image).await?;
        if let Some(seed) = seed {
            // What the old pod (still answering as it stops) would receive is lost with it: push
            // once it is gone, then check that the registry serves its own image.
            let replicas = self
                .spec
                .registry
                .internal
                .as_ref()
                .and_then(|internal| internal.replicas)
                .unwrap_or(1);
            self.wait_only_current_pods(REGISTRY, usize::try_from(replicas).unwrap_or(1))
                .await?;
            retry("copying the seed images into the new registry pod", 5, || {
                self.push_images(state, seed)
            })
            .await?;
            wait::poll_until(
                "the registry serving its own image",
                std::time::Duration::from_millis(500),
                || async {
                    Ok(if self.registry_serves(state, &image).await? {
                        wait::Poll::Ready
                    } else {
                        wait::Poll::Waiting("its manifest is not served yet".to_owned())
                    })
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Whether bootstrap is done but for cleanup: the registry Deployment runs its own image,
    /// is rolled out, and serves that image. Then there is nothing to seed.
    pub async fn registry_is_self_hosted(&self, state: &JackalState) -> Result<bool, StepError> {
        let image = self.self_hosted_image(state)?;
        let Some(deployment) = self
            .api::<Deployment>()
            .get_opt(REGISTRY)
            .await
            .map_err(api("read the registry Deployment"))?
        else {
            return Ok(false);
        };
        let running = container_image(&deployment);
        let available = deployment
            .status
            .as_ref()
            .and_then(|status| status.available_replicas)
            .unwrap_or(0)
            > 0;
        if running.as_deref() != Some(image.as_str()) || !available {
            return Ok(false);
        }
        self.registry_serves(state, &image).await
    }

    /// Whether the registry serves the manifest of `image` (a reference in it, as pods name it)
    /// to its pull account.
    pub async fn registry_serves(&self, state: &JackalState, image: &str) -> Result<bool, StepError> {
        let registry = &state.registry;
        let endpoint = self.registry_endpoint().await?;
        let original = from_internal(image, &registry.address).ok_or_else(|| {
            StepError::Invalid(format!("{image} is not in the registry {}", registry.address))
        })?;
        let served =
            to_internal(&original, &endpoint).map_err(|error| StepError::Invalid(error.to_string()))?;
        let access = Access {
            credentials: DockerConfig::with_basic(
                &endpoint,
                &registry.pull_username,
                registry.pull_password.expose(),
            ),
            insecure: if self.registry_is_plain() {
                vec![endpoint.clone()]
            } else {
                Vec::new()
            },
        };
        let reference: oci_client::Reference = served
            .parse()
            .map_err(|error| StepError::Invalid(format!("{served}: {error}")))?;
        let client = access.client(std::slice::from_ref(&endpoint));
        let found = client
            .pull_manifest_raw(
                &reference,
                &access.auth(&endpoint),
                &crate::oci::media_type::IMAGE_MANIFESTS,
            )
            .await;
        Ok(found.is_ok())
    }

    /// How many injector objects (pod, Service, payload and binary ConfigMaps) are left.
    pub async fn seed_objects(&self) -> Result<usize, StepError> {
        let selector = ListParams::default().labels(&format!("{INJECTOR_LABEL}={INJECTOR_VALUE}"));
        let pods = self
            .api::<Pod>()
            .list_metadata(&selector)
            .await
            .map_err(api("list the injector pods"))?;
        let config_maps = self
            .api::<ConfigMap>()
            .list_metadata(&selector)
            .await
            .map_err(api("list the payload ConfigMaps"))?;
        let service = self
            .api::<Service>()
            .get_opt(INJECTOR)
            .await
            .map_err(api("read the injector Service"))?;
        Ok(pods.items.len() + config_maps.items.len() + usize::from(service.is_some()))
    }

    /// Deletes every injector object (pod, Service, payload and binary ConfigMaps) by label.
    pub async fn clean_up(&self) -> Result<(), StepError> {
        let selector = ListParams::default().labels(&format!("{INJECTOR_LABEL}={INJECTOR_VALUE}"));
        let params = DeleteParams::default();
        self.api::<Pod>()
            .delete_collection(&params, &selector)
            .await
            .map_err(api("delete the injector pod"))?;
        // Services have no deletecollection: delete by name.
        match self.api::<Service>().delete(INJECTOR, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(api("delete the injector Service")(error)),
        }
        self.api::<ConfigMap>()
            .delete_collection(&params, &selector)
            .await
            .map_err(api("delete the payload ConfigMaps"))?;
        Ok(())
    }
}

/// Server-side applies `object` named `name` through `objects` (field manager [`FIELD_MANAGER`]);
/// errors name it as `shown`.
async fn apply_with<K>(objects: Api<K>, object: &K, shown: &str, name: &str) -> Result<K, StepError>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    objects
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(api(format!("apply {kind} {shown}")))
}

/// Registry access with the push account to the registry reached at `endpoint`. The registry and
/// the seed serve plain HTTP inside the cluster (`plain` names them: loopback NodePorts are plain
/// anyway, cluster IPs are not loopback).
fn push_access(state: &JackalState, endpoint: &str, plain: &[&str]) -> Access {
    let registry = &state.registry;
    Access {
        credentials: DockerConfig::with_basic(
            endpoint,
            &registry.push_username,
            registry.push_password.expose(),
        ),
        insecure: plain.iter().map(|host| (*host).to_owned()).collect(),
    }
}

/// The state held in the state Secret.
pub fn read_state(secret: &Secret) -> Result<JackalState, StepError> {
    let data = secret
        .data
        .as_ref()
        .and_then(|data| data.get(STATE_KEY))
        .ok_or_else(|| StepError::Invalid(format!("Secret {STATE_SECRET} has no {STATE_KEY} key")))?;
    serde_json::from_slice(&data.0).map_err(|error| {
        StepError::Invalid(format!(
            "Secret {STATE_SECRET} key {STATE_KEY} is not a valid state: {error}"
        ))
    })
}
