//! The `JackalInit` controller: once `kubectl jackal init` has started the operator from the
//! registry, it owns the bootstrap (ADR 0009). Each reconcile is fetch (state Secret, registry and
//! operator Deployments, webhook configuration, seed leftovers) → plan (pure, [`plan`]) → apply
//! (cleanup of the seed objects, the registry's spec) → status (steps, kstatus conditions,
//! `observedGeneration`) and an Event per step that changed phase. It reaches the registry by
//! its Service's cluster IP: it runs in a pod.

pub mod plan;
pub mod reseed;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jackal_core::bootstrap::lease::BootstrapLease;
use jackal_core::bootstrap::objects::REGISTRY;
use jackal_core::bootstrap::operator::OPERATOR;
use jackal_core::bootstrap::steps::{
    Bootstrap, Reach, StepError, container_image, describe_pod, read_state, rollout_pending, unschedulable,
};
use jackal_core::package::create::host_architecture;
use jackal_core::registry::{Categorize, ErrorCategory};
use jackal_core::transform::image::from_internal;
use jackal_crds::JackalInit;
use jackal_crds::init::{Architecture, JackalInitStatus, StepPhase};
use jackal_crds::names::{
    FIELD_MANAGER, INIT_NAME, MANAGED_BY_LABEL, MANAGED_BY_VALUE, STATE_SECRET, WEBHOOK_CONFIGURATION,
};
use jackal_crds::state::JackalState;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use self::plan::{Observed, Outcome, Registry};
use self::reseed::SeedCache;
use crate::context::{Context, api_category};

/// Look again this often when everything is in place (and on every change of a Deployment).
const READY_RESYNC: Duration = Duration::from_secs(300);
/// Look again this soon while work is under way.
const PROGRESS_RESYNC: Duration = Duration::from_secs(3);
/// Look again this soon when stalled (something outside may fix it).
const STALLED_RESYNC: Duration = Duration::from_secs(30);
/// Retry a failed reconcile after this long.
const RETRY: Duration = Duration::from_secs(10);
/// What Events of this controller are published as.
const ACTION: &str = "Bootstrap";
/// The injector binary in the operator image (re-seeding runs it).
const INJECTOR_BINARY: &str = "/jackal-injector";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading what the cluster holds failed.
    #[error("failed to {action}: {source}")]
    Fetch {
        /// What was read.
        action: &'static str,
        /// Why.
        source: kube::Error,
    },
    /// A bootstrap step failed.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The copy of the registry's image could not be kept.
    #[error(transparent)]
    Keep(#[from] reseed::KeepError),
    /// Writing the status failed.
    #[error("failed to write the status of JackalInit {name}: {source}")]
    Status {
        /// The `JackalInit`.
        name: String,
        /// Why.
        source: kube::Error,
    },
}

impl Categorize for Error {
    fn category(&self) -> ErrorCategory {
        match self {
            Self::Fetch { source, .. } | Self::Status { source, .. } => api_category(source),
            Self::Step(error) => error.category(),
            Self::Keep(error) => error.category(),
        }
    }
}

fn fetch(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Fetch { action, source }
}

/// Runs the controller until the operator shuts down.
pub async fn run(context: Arc<Context>) -> anyhow::Result<()> {
    let client = context.client.clone();
    let namespace = context.config.namespace.clone();
    let results = Controller::new(
        Api::<JackalInit>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={INIT_NAME}")),
    )
    // The registry's and the operator's Deployments: a rollout or a lost pod is looked at at once.
    .watches(
        Api::<Deployment>::namespaced(client, &namespace),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
        |_| Some(ObjectRef::<JackalInit>::new(INIT_NAME)),
    )
    .reconcile_all_on(super::cluster_changes(&context))
    .graceful_shutdown_on(context.shutdown.clone().cancelled_owned())
    .run(reconcile, error_policy, Arc::clone(&context));
    super::drive(&context, "JackalInit", results).await
}

async fn reconcile(init: Arc<JackalInit>, context: Arc<Context>) -> Result<Action, Error> {
    let result = reconcile_steps(&init, &context).await;
    if let Err(error) = &result {
        context
            .warn(&init.object_ref(&()), error.category(), ACTION, error.to_string())
            .await;
    }
    result
}

async fn reconcile_steps(init: &JackalInit, context: &Context) -> Result<Action, Error> {
    let namespace = &context.config.namespace;
    let mut bootstrap = Bootstrap {
        client: context.client.clone(),
        namespace: namespace.clone(),
        spec: init.spec.clone(),
        seed_images: Vec::new(),
        registry_image: String::new(),
        injector_binary: PathBuf::from(INJECTOR_BINARY),
        reach: Reach::InPod {
            node_ip: std::env::var("NODE_IP").ok().and_then(|ip| ip.parse().ok()),
        },
    };
    // fetch
    let state = fetch_state(context).await?;
    let registry_deployment = Api::<Deployment>::namespaced(context.client.clone(), namespace)
        .get_opt(REGISTRY)
        .await
        .map_err(fetch("read the registry Deployment"))?;
    let operator = Api::<Deployment>::namespaced(context.client.clone(), namespace)
        .get_opt(OPERATOR)
        .await
        .map_err(fetch("read the operator Deployment"))?;
    let registry = match &state {
        Some(Ok(state)) if bootstrap.external_registry().is_some() => {
            observe_external(&bootstrap, state, operator.as_ref()).await
        }
        Some(Ok(state)) => observe_registry(&mut bootstrap, state, registry_deployment.as_ref()).await?,
        _ => Registry::Missing,
    };
    let operator_available = operator
        .and_then(|deployment| deployment.status)
        .and_then(|status| status.available_replicas)
        .unwrap_or(0)
        > 0;
    let webhook_registered = Api::<MutatingWebhookConfiguration>::all(context.client.clone())
        .get_opt(WEBHOOK_CONFIGURATION)
        .await
        .map_err(fetch("read the webhook configuration"))?
        .is_some();
    let seed_objects = bootstrap.seed_objects().await?;
    let cache = SeedCache::new(&context.config.cache_dir);
    let seed_cached = !bootstrap.registry_image.is_empty() && cache.holds(&bootstrap.registry_image);
    let lease = BootstrapLease::new(context.client.clone(), namespace, &lease_identity());
    let seeding_by = lease.holder().await?;
    let observed = Observed {
        generation: init.metadata.generation,
        state: state.as_ref().map(|state| {
            state
                .as_ref()
                .map(|state| state.registry.address.clone())
                .map_err(Clone::clone)
        }),
        registry,
        operator_available,
        webhook_registered,
        seed_objects,
        seed_cached,
        seeding_by,
        architecture: init
            .spec
            .architecture
            .or_else(|| Architecture::from_name(host_architecture())),
    };
    // plan
    let previous = init.status.as_ref();
    let plan = plan::plan(&observed, previous.and_then(|status| status.observed_generation));
    // apply
    let applied = apply(
        context,
        init,
        &plan,
        &mut bootstrap,
        (&cache, &lease),
        &state,
        registry_deployment.as_ref(),
    )
    .await;
    let mut plan = plan;
    if let Err(error) = &applied {
        // The status says what failed: retried while waiting may help, stalled when it cannot.
        plan.outcome = plan::outcome_after_error(error.category(), error.to_string());
    }
    // status
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let status = plan::status(&plan, &observed, previous, &now);
    write_status(context, init, &status).await?;
    announce(context, init, previous, &status).await;
    applied?;
    Ok(match plan.outcome {
        Outcome::Ready => Action::requeue(READY_RESYNC),
        Outcome::Progressing(..) => Action::requeue(PROGRESS_RESYNC),
        Outcome::Stalled(..) => Action::requeue(STALLED_RESYNC),
    })
}

/// Does what `plan` asks: re-seed the registry, keep a copy of its image, clean up, follow the
/// registry spec.
async fn apply(
    context: &Context,
    init: &JackalInit,
    plan: &plan::Plan,
    bootstrap: &mut Bootstrap,
    (cache, lease): (&SeedCache, &BootstrapLease),
    state: &Option<Result<JackalState, String>>,
    registry_deployment: Option<&Deployment>,
) -> Result<(), Error> {
    if let Some(Ok(state)) = state {
        if plan.reseed {
            let held = match lease.try_acquire().await? {
                Ok(held) => held,
                Err(holder) => {
                    tracing::info!(%holder, "someone else is seeding the registry");
                    return Ok(());
                }
            };
            let image = bootstrap.registry_image.clone();
            tracing::warn!(%image, "the registry cannot pull its own image; seeding it again");
            context
                .publish(
                    &init.object_ref(&()),
                    EventType::Warning,
                    "Reseeding",
                    ACTION,
                    format!("the registry cannot pull its own image; seeding it again from the operator's copy of {image}"),
                )
                .await;
            let reseeded = cache.reseed(bootstrap, state, &image).await;
            held.release().await;
            reseeded?;
            tracing::info!(%image, "the registry runs from its own image again");
        }
        if plan.refill {
            let image = bootstrap.registry_image.clone();
            tracing::warn!(%image, "the registry lost its own image; pushing it back");
            context
                .publish(
                    &init.object_ref(&()),
                    EventType::Warning,
                    "Refilling",
                    ACTION,
                    format!("the registry lost its content (a pod restarted on an emptyDir); pushing {image} back from the operator's copy"),
                )
                .await;
            cache.refill(bootstrap, state, &image).await?;
        }
        if plan.keep_seed {
            let architecture = init
                .spec
                .architecture
                .map_or_else(host_architecture, |architecture| architecture.as_str());
            cache
                .keep(bootstrap, state, &bootstrap.registry_image, architecture)
                .await?;
            tracing::info!(image = %bootstrap.registry_image, "kept a copy of the registry image for re-seeding");
        }
    }
    if plan.clean_up {
        bootstrap.clean_up().await?;
        tracing::info!("removed the seed objects");
    }
    if plan.apply_registry
        && let (Some(Ok(state)), Some(deployment)) = (state, registry_deployment)
        && let Some(image) = container_image(deployment)
    {
        bootstrap.start_registry(state, &image).await?;
    }
    Ok(())
}

/// The state Secret: `None` before bootstrap, `Some(Err)` with what is wrong when unreadable.
async fn fetch_state(context: &Context) -> Result<Option<Result<JackalState, String>>, Error> {
    let secret = Api::<Secret>::namespaced(context.client.clone(), &context.config.namespace)
        .get_opt(STATE_SECRET)
        .await
        .map_err(fetch("read the state Secret"))?;
    Ok(secret.map(|secret| read_state(&secret).map_err(|error| error.to_string())))
}

/// Who this operator is when it holds the bootstrap Lease: its pod, which survives a restart of
/// its container (so a restarted operator takes its own Lease back at once).
fn lease_identity() -> String {
    format!(
        "{OPERATOR}/{}",
        std::env::var("POD_NAME").unwrap_or_else(|_| "outside-a-pod".to_owned())
    )
}

/// Whether the external registry serves the image the operator runs from (so it can start again
/// and workloads can pull).
async fn observe_external(
    bootstrap: &Bootstrap,
    state: &JackalState,
    operator: Option<&Deployment>,
) -> Registry {
    let Some(image) = operator.and_then(container_image) else {
        return Registry::ExternalNotServing("no operator Deployment to check against".to_owned());
    };
    match bootstrap.registry_serves(state, &image).await {
        Ok(true) => Registry::External,
        Ok(false) => Registry::ExternalNotServing(format!("{image} cannot be pulled with the pull account")),
        Err(error) => Registry::ExternalNotServing(error.to_string()),
    }
}

/// Where the registry is: seeding, rolling out, unable to pull its image, or self-hosted.
async fn observe_registry(
    bootstrap: &mut Bootstrap,
    state: &JackalState,
    deployment: Option<&Deployment>,
) -> Result<Registry, Error> {
    let Some(deployment) = deployment else {
        return Ok(Registry::Missing);
    };
    let image = container_image(deployment).unwrap_or_default();
    let Some(original) = from_internal(&image, &state.registry.address) else {
        // `<seed address>/<image>`: the image the seed serves, which a resumed seeding needs.
        if let Some((_, seeded)) = image.split_once('/') {
            bootstrap.registry_image = seeded.to_owned();
        }
        return Ok(Registry::Seeding);
    };
    bootstrap.registry_image = original;
    if let Some(detail) = rollout_pending(deployment) {
        let pods = Api::<Pod>::namespaced(bootstrap.client.clone(), &bootstrap.namespace)
            .list(&ListParams::default().labels(&format!("app={REGISTRY}")))
            .await
            .map_err(fetch("list the registry pods"))?;
        let unpullable = pods.items.iter().find(|pod| {
            pod.status
                .iter()
                .flat_map(|status| status.container_statuses.iter().flatten())
                .filter_map(|container| container.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
                .any(|reason| matches!(reason, "ErrImagePull" | "ImagePullBackOff"))
        });
        if let Some(pod) = unpullable {
            return Ok(Registry::ImageUnavailable(format!(
                "pod {}: {}",
                pod.name_any(),
                describe_pod(pod.status.as_ref())
            )));
        }
        let unscheduled = pods.items.iter().find_map(|pod| {
            let why = unschedulable(pod.status.as_ref()?)?;
            Some(format!("pod {}: {why}", pod.name_any()))
        });
        return Ok(match unscheduled {
            Some(why) => Registry::Unschedulable(why),
            None => Registry::RollingOut(detail),
        });
    }
    Ok(if bootstrap.registry_serves(state, &image).await? {
        Registry::SelfHosted
    } else {
        Registry::NotServing
    })
}

async fn write_status(context: &Context, init: &JackalInit, status: &JackalInitStatus) -> Result<(), Error> {
    let name = init.name_any();
    let patch = json!({
        "apiVersion": JackalInit::api_version(&()),
        "kind": JackalInit::kind(&()),
        "status": status,
    });
    Api::<JackalInit>::all(context.client.clone())
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| Error::Status { name, source })?;
    Ok(())
}

/// An Event for every step whose phase changed, and one when the `JackalInit` becomes ready.
async fn announce(
    context: &Context,
    init: &JackalInit,
    previous: Option<&JackalInitStatus>,
    status: &JackalInitStatus,
) {
    let reference = init.object_ref(&());
    for step in &status.steps {
        let before = previous
            .and_then(|previous| previous.steps.iter().find(|old| old.name == step.name))
            .map(|old| old.phase);
        if before == Some(step.phase) || (before.is_none() && step.phase == StepPhase::Pending) {
            continue;
        }
        let (type_, reason) = match step.phase {
            StepPhase::Failed => (EventType::Warning, "StepFailed"),
            StepPhase::Succeeded => (EventType::Normal, "StepSucceeded"),
            StepPhase::Running | StepPhase::Pending => (EventType::Normal, "StepProgressing"),
        };
        let note = format!("{}: {}", step.name, step.message.as_deref().unwrap_or_default());
        context.publish(&reference, type_, reason, ACTION, note).await;
    }
    let is_ready = |status: &JackalInitStatus| {
        status
            .conditions
            .iter()
            .any(|condition| condition.type_ == "Ready" && condition.status == "True")
    };
    if is_ready(status) && !previous.is_some_and(is_ready) {
        tracing::info!("the JackalInit is ready");
        context
            .publish(
                &reference,
                EventType::Normal,
                "Ready",
                ACTION,
                "the registry, the operator and the webhook are in place".to_owned(),
            )
            .await;
    }
}

fn error_policy(init: Arc<JackalInit>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(init = %init.name_any(), %error, "failed to reconcile the JackalInit; retrying");
    Action::requeue(RETRY)
}
