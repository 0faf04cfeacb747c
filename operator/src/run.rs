//! `jackal-operator run`: wires the parts together under one supervisor and one shutdown signal.
//! Everything starts at once — the state follower, the webhook's certificates, server and
//! registration, the admin endpoints and the controllers — and nothing waits for the state Secret
//! but what needs it: the webhook serves and is registered once the state exists (the bootstrap
//! writes it), and follows every change of it and of the `JackalInit` without a restart.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jackal_crds::names::{WEBHOOK_CONFIGURATION, WEBHOOK_TLS_SECRET};
use jackal_crds::state::JackalState;
use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::context::{ClusterState, Context};
use crate::controller::{self, pull_secrets};
use crate::supervisor::{Supervisor, cancel_on_signal};
use crate::webhook::certs::manager::{CertificateManager, Settings as CertificateSettings};
use crate::webhook::certs::{Identity, Validity};
use crate::webhook::hooks::Rules;
use crate::webhook::registration::{Endpoint, Registration};
use crate::webhook::server::WebhookState;
use crate::webhook::tls::{CertificateStore, server_config};
use crate::{admin, state, webhook};

/// How long to wait before applying a registration again after a failure.
const REGISTRATION_RETRY: Duration = Duration::from_secs(5);

/// Validated settings of `run`.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Namespace of the operator, its Secrets and its Service.
    pub namespace: String,
    /// Where the operator caches the registry's own image (for re-seeding it).
    pub cache_dir: std::path::PathBuf,
    /// Where the webhook listens (TLS).
    pub webhook_address: SocketAddr,
    /// Where the admin endpoints listen (plain HTTP).
    pub admin_address: SocketAddr,
    /// The Service in front of the webhook (used unless `webhook_url` is set).
    pub service: String,
    /// A URL the API server calls instead of the Service (an operator outside the cluster).
    pub webhook_url: Option<String>,
    /// Extra IP addresses the serving certificate is valid for.
    pub webhook_ips: Vec<IpAddr>,
    /// Certificate lifetimes.
    pub validity: Validity,
}

/// Runs the operator until SIGINT or SIGTERM, or until one of its tasks fails.
pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("failed to connect to the Kubernetes API")?;
    // Ports are bound first, so that a taken one stops the process before anything else starts.
    let webhook_listener = TcpListener::bind(config.webhook_address)
        .await
        .with_context(|| format!("failed to bind the webhook port {}", config.webhook_address))?;
    let admin_listener = TcpListener::bind(config.admin_address)
        .await
        .with_context(|| format!("failed to bind the admin port {}", config.admin_address))?;
    let (context, cluster) = Context::new(client, config);
    let certificates = Arc::new(CertificateStore::default());
    let manager = Arc::new(certificate_manager(&context, Arc::clone(&certificates)));

    tokio::spawn(cancel_on_signal(context.shutdown.clone()));
    let mut supervisor = Supervisor::new(context.shutdown.clone());
    let follow = {
        let (client, namespace) = (context.client.clone(), context.config.namespace.clone());
        async move { state::follow(client, &namespace, cluster).await }
    };
    supervisor.spawn("the cluster state follower", until_shutdown(&context, follow));
    supervisor.spawn(
        "the webhook certificate manager",
        until_shutdown(&context, {
            let manager = Arc::clone(&manager);
            async move {
                manager.run().await;
                Ok(())
            }
        }),
    );
    supervisor.spawn(
        "the webhook registration",
        keep_registered(Arc::clone(&context), Arc::clone(&manager)),
    );
    supervisor.spawn(
        "the webhook server",
        serve_webhook(Arc::clone(&context), webhook_listener, Arc::clone(&certificates)),
    );
    supervisor.spawn("the admin server", {
        let routes = admin::routes(Arc::clone(&context.metrics), certificates);
        let shutdown = context.shutdown.clone().cancelled_owned();
        async move {
            admin::serve(admin_listener, routes, shutdown).await;
            Ok(())
        }
    });
    supervisor.spawn(
        "the pull-Secret controller",
        pull_secrets::run(Arc::clone(&context)),
    );
    supervisor.spawn(
        "the JackalInit controller",
        controller::init::run(Arc::clone(&context)),
    );
    tracing::info!(
        webhook = %context.config.webhook_address,
        admin = %context.config.admin_address,
        "operator started"
    );
    let result = supervisor.wait().await;
    tracing::info!("stopped");
    result
}

fn certificate_manager(context: &Context, certificates: Arc<CertificateStore>) -> CertificateManager {
    let config = &context.config;
    let mut identity = Identity::service(&config.service, &config.namespace);
    identity.ip_addresses.extend(config.webhook_ips.iter().copied());
    CertificateManager::new(
        context.client.clone(),
        CertificateSettings {
            namespace: config.namespace.clone(),
            secret: WEBHOOK_TLS_SECRET.to_owned(),
            webhook_configuration: WEBHOOK_CONFIGURATION.to_owned(),
            identity,
            validity: config.validity,
        },
        certificates,
    )
}

/// Runs `task` until it ends or the operator shuts down.
fn until_shutdown<F>(context: &Context, task: F) -> impl Future<Output = anyhow::Result<()>> + use<F>
where
    F: Future<Output = anyhow::Result<()>>,
{
    let shutdown = context.shutdown.clone();
    async move {
        tokio::select! {
            result = task => result,
            () = shutdown.cancelled() => Ok(()),
        }
    }
}

/// Waits until the cluster has a state; `None` when the operator shuts down first.
async fn state_of(context: &Context, cluster: &mut watch::Receiver<ClusterState>) -> Option<JackalState> {
    if cluster.borrow().state.is_none() {
        tracing::info!(
            namespace = %context.config.namespace,
            secret = jackal_crds::names::STATE_SECRET,
            "waiting for the cluster state Secret"
        );
    }
    tokio::select! {
        found = cluster.wait_for(|cluster| cluster.state.is_some()) => found.ok()?.state.clone(),
        () = context.shutdown.cancelled() => None,
    }
}

/// Serves the webhook once the cluster has a state, with rules that follow every change of it.
async fn serve_webhook(
    context: Arc<Context>,
    listener: TcpListener,
    certificates: Arc<CertificateStore>,
) -> anyhow::Result<()> {
    let mut cluster = context.cluster.clone();
    let Some(state) = state_of(&context, &mut cluster).await else {
        return Ok(());
    };
    let webhook = WebhookState::new(
        Rules::from_state(&state),
        Arc::clone(&context.metrics),
        Arc::clone(&certificates),
    );
    let tls = server_config(certificates)?;
    let serving = webhook::server::serve(
        listener,
        tls,
        webhook::server::routes(Arc::clone(&webhook)),
        context.shutdown.clone().cancelled_owned(),
    );
    let following = async {
        while cluster.changed().await.is_ok() {
            let rules = cluster.borrow_and_update().state.as_ref().map(Rules::from_state);
            if let Some(rules) = rules {
                webhook.set_rules(rules);
            }
        }
    };
    tracing::info!("serving the webhook");
    tokio::select! {
        () = serving => Ok(()),
        () = following => Ok(()),
    }
}

/// Keeps the MutatingWebhookConfiguration in step with the state's registry and the
/// `JackalInit`'s webhook settings, from the moment the state exists.
async fn keep_registered(context: Arc<Context>, manager: Arc<CertificateManager>) -> anyhow::Result<()> {
    let config = &context.config;
    let endpoint = match &config.webhook_url {
        Some(url) => Endpoint::Url(url.clone()),
        None => Endpoint::Service {
            namespace: config.namespace.clone(),
            name: config.service.clone(),
            port: 443,
        },
    };
    let mut cluster = context.cluster.clone();
    if state_of(&context, &mut cluster).await.is_none() {
        return Ok(());
    }
    let mut applied: Option<Registration> = None;
    loop {
        let current = cluster.borrow_and_update().clone();
        let mut retry = false;
        if let Some(state) = &current.state {
            match register(&context, &manager, &endpoint, state, &current, applied.as_ref()).await {
                Ok(Some(registration)) => applied = Some(registration),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "failed to register the webhook; retrying"
                    );
                    retry = true;
                }
            }
        }
        // Shutdown first: stopping, the state follower ends and closes the channel, which is no
        // failure of this task.
        tokio::select! {
            biased;
            () = context.shutdown.cancelled() => return Ok(()),
            changed = cluster.changed() => {
                if changed.is_err() && context.shutdown.is_cancelled() {
                    return Ok(());
                }
                changed.context("the cluster state channel closed")?;
            }
            () = tokio::time::sleep(REGISTRATION_RETRY), if retry => {}
        }
    }
}

/// Applies the registration `current` asks for unless it is the one `applied` already.
async fn register(
    context: &Context,
    manager: &CertificateManager,
    endpoint: &Endpoint,
    state: &JackalState,
    current: &ClusterState,
    applied: Option<&Registration>,
) -> anyhow::Result<Option<Registration>> {
    let ca_bundle = manager
        .ca_bundle()
        .await
        .context("failed to read the webhook CA")?;
    let wanted = Registration::new(
        endpoint.clone(),
        ca_bundle,
        state.registry.address.clone(),
        current.webhook.clone(),
    );
    if applied == Some(&wanted) {
        return Ok(None);
    }
    wanted
        .apply(&context.client)
        .await
        .context("failed to apply the MutatingWebhookConfiguration")?;
    tracing::info!(configuration = %wanted.name, registry = %wanted.registry, "webhook registered");
    Ok(Some(wanted))
}
