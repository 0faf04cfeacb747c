//! The bootstrap steps that talk to the cluster, each idempotent: it reads what exists, makes what
//! is missing or wrong, and can be run again after a crash anywhere. In order: the state
//! ([`Bootstrap::ensure_state`]), the payload ConfigMaps ([`Bootstrap::write_payload`]), the
//! injector ([`Bootstrap::start_injector`]), the registry from the seed
//! ([`Bootstrap::start_registry`]), the seed images pushed into it ([`Bootstrap::push_images`]),
//! the registry pulling its own image ([`Bootstrap::self_host_registry`]), and cleanup
//! ([`Bootstrap::clean_up`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

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
use crate::registry::{Access, DockerConfig, ErrorCategory};
use crate::transform::image::to_internal;

/// Field manager of everything bootstrap applies.
pub const FIELD_MANAGER: &str = "jackal-bootstrap";
/// How long a pod or Deployment may take to become ready before the step fails.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

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
}

impl StepError {
    /// How a caller should react.
    pub fn category(&self) -> ErrorCategory {
        use crate::registry::Categorize as _;
        match self {
            Self::Api { source, .. } => match source {
                kube::Error::Api(status) => crate::registry::error::status_category(status.code),
                _ => ErrorCategory::Transient,
            },
            Self::Payload(_) | Self::Injector { .. } => ErrorCategory::Io,
            Self::Placement(_) | Self::Invalid(_) => ErrorCategory::Invalid,
            Self::NotReady { .. } | Self::Credentials(_) => ErrorCategory::Transient,
            Self::Copy(error) => error.category(),
        }
    }
}

fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> StepError {
    let action = action.into();
    move |source| StepError::Api { action, source }
}

/// How the process running bootstrap reaches NodePorts: on a node (the plugin on the test
/// cluster's machine) `127.0.0.1:<nodePort>` answers.
#[derive(Clone, Debug)]
pub enum Reach {
    /// `127.0.0.1:<nodePort>`.
    NodePort,
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

/// What the payload step wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// sha256 of the payload.
    pub digest: Digest,
    /// The chunk ConfigMaps, in order.
    pub chunks: Vec<String>,
}

impl Bootstrap {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn apply<K>(&self, object: &K, name: &str) -> Result<K, StepError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        self.api::<K>()
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(api(format!("apply {kind} {}/{name}", self.namespace)))
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

    /// The cluster state: read from its Secret, or generated (new passwords) and stored once.
    pub async fn ensure_state(&self) -> Result<JackalState, StepError> {
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
        let json = serde_json::to_vec(&state).map_err(|error| StepError::Invalid(error.to_string()))?;
        let secret = Secret {
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
        };
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
        let mut failure = None;
        while let Some((index, bytes)) = receiver.recv().await {
            let name = payload::chunk_name(index);
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

    /// Starts the injector on the best placement that works and returns the seed registry's
    /// address.
    pub async fn start_injector(&self, payload: &Payload) -> Result<String, StepError> {
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
        let mut last = None;
        for placement in &placements {
            let started = self.run_injector(placement, payload).await;
            let address = self.address(node_port);
            let serving = match started {
                Ok(()) => wait_serving(&address, "/v2/", &format!("the seed registry at {address}")).await,
                Err(error) => Err(error),
            };
            match serving {
                Ok(()) => return Ok(address),
                Err(error) => {
                    tracing::warn!(node = %placement.node, image = %placement.image, %error, "the injector did not start here");
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| StepError::Invalid("no placement for the injector".to_owned())))
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

    fn address(&self, node_port: i32) -> String {
        match self.reach {
            Reach::NodePort => format!("127.0.0.1:{node_port}"),
        }
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
        let deployment = objects::registry_deployment(
            &self.namespace,
            image,
            internal.replicas.unwrap_or(1),
            None,
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
        let address = self.address(self.registry_node_port());
        wait_serving(&address, "/", &format!("the registry at {address}")).await
    }

    /// The registry image's reference in the registry once self-hosted.
    pub fn self_hosted_image(&self, state: &JackalState) -> Result<String, StepError> {
        to_internal(&self.registry_image, &state.registry.address)
            .map_err(|error| StepError::Invalid(error.to_string()))
    }

    /// Copies every seed image from the seed registry into the registry.
    pub async fn push_images(&self, state: &JackalState, seed: &str) -> Result<Vec<Copied>, StepError> {
        let registry = &state.registry;
        let access = push_access(state);
        let mut copied = Vec::new();
        for image in &self.seed_images {
            let source = format!("{seed}/{}", image.reference);
            let target = to_internal(&image.reference, &registry.address)
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
        let registry = &state.registry;
        let access = push_access(state);
        let seeded: Vec<&str> = self
            .seed_images
            .iter()
            .map(|image| image.reference.as_str())
            .collect();
        let mut pushed = Vec::new();
        for image in images.iter().filter(|image| !seeded.contains(&image.as_str())) {
            let target = to_internal(image, &registry.address)
                .map_err(|error| StepError::Invalid(error.to_string()))?;
            let target: oci_client::Reference = target
                .parse()
                .map_err(|error| StepError::Invalid(format!("{target}: {error}")))?;
            pushed.push(push_from_layout(layout, image, &target, &access).await?);
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
            // Right after the rollout the NodePort may still reach the old pod as it stops, and a
            // client whose login attempt hit it goes on without credentials: try again afresh.
            let mut attempt = 1;
            loop {
                match self.push_images(state, seed).await {
                    Ok(_) => break,
                    Err(error @ StepError::Copy(_)) if attempt < 5 => {
                        tracing::warn!(%error, attempt, "copying the seed images into the new registry pod failed; retrying");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Err(error) => return Err(error),
                }
            }
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
        let running = deployment
            .spec
            .as_ref()
            .and_then(|spec| spec.template.spec.as_ref())
            .and_then(|spec| spec.containers.first())
            .and_then(|container| container.image.as_deref());
        let available = deployment
            .status
            .as_ref()
            .and_then(|status| status.available_replicas)
            .unwrap_or(0)
            > 0;
        if running != Some(image.as_str()) || !available {
            return Ok(false);
        }
        let registry = &state.registry;
        let access = Access {
            credentials: DockerConfig::with_basic(
                &registry.address,
                &registry.pull_username,
                registry.pull_password.expose(),
            ),
            insecure: Vec::new(),
        };
        let reference: oci_client::Reference = image
            .parse()
            .map_err(|error| StepError::Invalid(format!("{image}: {error}")))?;
        let client = access.client(std::slice::from_ref(&registry.address));
        let found = client
            .pull_manifest_raw(
                &reference,
                &access.auth(&registry.address),
                &crate::oci::media_type::IMAGE_MANIFESTS,
            )
            .await;
        Ok(found.is_ok())
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

    async fn wait_pod_ready(&self, name: &str) -> Result<(), StepError> {
        let pods = self.api::<Pod>();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let pod = pods
                .get_opt(name)
                .await
                .map_err(api(format!("read pod {name}")))?;
            let status = pod.as_ref().and_then(|pod| pod.status.as_ref());
            let ready = status
                .and_then(|status| status.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True");
            if ready {
                return Ok(());
            }
            let phase = status.and_then(|status| status.phase.clone()).unwrap_or_default();
            if phase == "Failed" || Instant::now() > deadline {
                return Err(StepError::NotReady {
                    what: format!("pod {}/{name}", self.namespace),
                    seconds: READY_TIMEOUT.as_secs(),
                    detail: describe_pod(status),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wait_deployment_available(&self, name: &str) -> Result<(), StepError> {
        let deployments = self.api::<Deployment>();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let deployment = deployments
                .get(name)
                .await
                .map_err(api(format!("read Deployment {name}")))?;
            let generation = deployment.metadata.generation;
            let status = deployment.status.unwrap_or_default();
            let wanted = deployment.spec.and_then(|spec| spec.replicas).unwrap_or(1);
            let rolled_out = status.observed_generation == generation
                && status.updated_replicas == Some(wanted)
                && status.available_replicas == Some(wanted)
                && status.replicas == Some(wanted);
            if rolled_out {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StepError::NotReady {
                    what: format!("Deployment {}/{name}", self.namespace),
                    seconds: READY_TIMEOUT.as_secs(),
                    detail: format!(
                        "{} of {wanted} replicas available, {} updated",
                        status.available_replicas.unwrap_or(0),
                        status.updated_replicas.unwrap_or(0)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wait_gone<K>(&self, name: &str) -> Result<(), StepError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let deadline = Instant::now() + READY_TIMEOUT;
        while self
            .api::<K>()
            .get_opt(name)
            .await
            .map_err(api(format!("read {name}")))?
            .is_some()
        {
            if Instant::now() > deadline {
                return Err(StepError::NotReady {
                    what: format!("{name} (deletion)"),
                    seconds: READY_TIMEOUT.as_secs(),
                    detail: "still present".to_owned(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }
}

/// Registry access with the push account.
fn push_access(state: &JackalState) -> Access {
    let registry = &state.registry;
    Access {
        credentials: DockerConfig::with_basic(
            &registry.address,
            &registry.push_username,
            registry.push_password.expose(),
        ),
        insecure: Vec::new(),
    }
}

/// Waits until `GET http://ADDRESS/PATH` answers 200 (a NodePort answers only once kube-proxy
/// has programmed it, a little after the pod is ready).
async fn wait_serving(address: &str, path: &str, what: &str) -> Result<(), StepError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|error| StepError::Invalid(format!("failed to build an HTTP client: {error}")))?;
    let url = format!("http://{address}{path}");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last = match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => format!("answered {}", response.status()),
            Err(error) => crate::registry::error::without_queries(&error.to_string()),
        };
        if Instant::now() > deadline {
            return Err(StepError::NotReady {
                what: what.to_owned(),
                seconds: READY_TIMEOUT.as_secs(),
                detail: last,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
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

/// A pod's state in one line: phase and each container's waiting or terminated reason.
fn describe_pod(status: Option<&k8s_openapi::api::core::v1::PodStatus>) -> String {
    let Some(status) = status else {
        return "no status yet".to_owned();
    };
    let mut parts = vec![format!("phase {}", status.phase.as_deref().unwrap_or("unknown"))];
    for container in status.container_statuses.iter().flatten() {
        let state = container.state.as_ref();
        if let Some(waiting) = state.and_then(|state| state.waiting.as_ref()) {
            parts.push(format!(
                "{} waiting: {} {}",
                container.name,
                waiting.reason.as_deref().unwrap_or(""),
                waiting.message.as_deref().unwrap_or("")
            ));
        }
        if let Some(terminated) = state.and_then(|state| state.terminated.as_ref()) {
            parts.push(format!(
                "{} terminated: exit {} {}",
                container.name,
                terminated.exit_code,
                terminated.reason.as_deref().unwrap_or("")
            ));
        }
    }
    parts.join("; ")
}
