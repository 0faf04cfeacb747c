//! `jackal-operator run`: wires the parts together. It waits for the cluster state Secret, makes
//! sure the webhook has a certificate, registers the MutatingWebhookConfiguration, then serves the
//! webhook and the admin endpoints and runs the controllers until it is told to stop. Changes to
//! the state Secret reach the webhook rules and the pull Secrets without a restart.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use jackal_crds::JackalInit;
use jackal_crds::names::{INIT_NAME, STATE_KEY, STATE_SECRET, WEBHOOK_CONFIGURATION, WEBHOOK_TLS_SECRET};
use jackal_crds::state::JackalState;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::controller::pull_secrets;
use crate::metrics::Metrics;
use crate::webhook::certs::manager::{CertificateManager, Settings as CertificateSettings};
use crate::webhook::certs::{Identity, Validity};
use crate::webhook::hooks::Rules;
use crate::webhook::registration::{Endpoint, Registration};
use crate::webhook::server::WebhookState;
use crate::webhook::tls::{CertificateStore, server_config};
use crate::{admin, webhook};

/// How long to wait between looks for the state Secret.
const STATE_POLL: Duration = Duration::from_secs(5);

/// Validated settings of `run`.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Namespace of the operator, its Secrets and its Service.
    pub namespace: String,
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

/// Runs the operator until SIGINT or SIGTERM.
pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("failed to connect to the Kubernetes API")?;
    let state = wait_for_state(&client, &config.namespace).await?;
    let spec = Api::<JackalInit>::all(client.clone())
        .get_opt(INIT_NAME)
        .await
        .context("failed to read the JackalInit")?
        .map(|init| init.spec.webhook)
        .unwrap_or_default();
    tracing::info!(registry = %state.registry.address, "cluster state loaded");

    let metrics = Arc::new(Metrics::default());
    let certificates = Arc::new(CertificateStore::default());
    let mut identity = Identity::service(&config.service, &config.namespace);
    identity.ip_addresses.extend(config.webhook_ips.iter().copied());
    let manager = Arc::new(CertificateManager::new(
        client.clone(),
        CertificateSettings {
            namespace: config.namespace.clone(),
            secret: WEBHOOK_TLS_SECRET.to_owned(),
            webhook_configuration: WEBHOOK_CONFIGURATION.to_owned(),
            identity,
            validity: config.validity,
        },
        Arc::clone(&certificates),
    ));
    manager
        .step()
        .await
        .context("failed to set up the webhook certificate")?;
    let endpoint = match &config.webhook_url {
        Some(url) => Endpoint::Url(url.clone()),
        None => Endpoint::Service {
            namespace: config.namespace.clone(),
            name: config.service.clone(),
            port: 443,
        },
    };
    let registration = Registration::new(
        endpoint,
        manager.ca_bundle().await?,
        state.registry.address.clone(),
        spec.clone(),
    );
    registration
        .apply(&client)
        .await
        .context("failed to register the MutatingWebhookConfiguration")?;
    tracing::info!(configuration = %registration.name, "webhook registered");
    tokio::spawn(Arc::clone(&manager).run());

    let webhook_state = WebhookState::new(
        Rules::from_state(&state),
        Arc::clone(&metrics),
        Arc::clone(&certificates),
    );
    let (webhook_listener, webhook_bound) = webhook::server::bind(config.webhook_address)
        .await
        .context("failed to bind the webhook port")?;
    let tls = server_config(Arc::clone(&certificates))?;
    tokio::spawn(webhook::server::serve(
        webhook_listener,
        tls,
        webhook::server::routes(Arc::clone(&webhook_state)),
        shutdown(),
    ));
    let admin_listener = tokio::net::TcpListener::bind(config.admin_address)
        .await
        .context("failed to bind the admin port")?;
    tokio::spawn(admin::serve(
        admin_listener,
        admin::routes(Arc::clone(&metrics), Arc::clone(&certificates)),
        shutdown(),
    ));
    tracing::info!(webhook = %webhook_bound, admin = %config.admin_address, "serving");

    let selection = spec.namespace_selection.unwrap_or_default();
    let settings = Arc::new(RwLock::new(pull_secrets::Settings { state, selection }));
    let (changed, changes) = futures::channel::mpsc::unbounded();
    tokio::spawn(follow_state(
        client.clone(),
        config.namespace.clone(),
        Arc::clone(&webhook_state),
        Arc::clone(&settings),
        changed,
    ));
    pull_secrets::run(client, settings, changes).await;
    tracing::info!("stopping");
    Ok(())
}

/// Reads the state Secret, waiting (and saying so) until the bootstrap has written it.
async fn wait_for_state(client: &Client, namespace: &str) -> anyhow::Result<JackalState> {
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut announced = false;
    loop {
        match secrets.get_opt(STATE_SECRET).await {
            Ok(Some(secret)) => return parse_state(&secret),
            Ok(None) if !announced => {
                tracing::info!(
                    namespace,
                    secret = STATE_SECRET,
                    "waiting for the cluster state Secret"
                );
                announced = true;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "failed to read the cluster state Secret; retrying"),
        }
        tokio::time::sleep(STATE_POLL).await;
    }
}

fn parse_state(secret: &Secret) -> anyhow::Result<JackalState> {
    let data = secret
        .data
        .as_ref()
        .and_then(|data| data.get(STATE_KEY))
        .with_context(|| format!("Secret {STATE_SECRET} has no {STATE_KEY} key"))?;
    serde_json::from_slice(&data.0)
        .with_context(|| format!("Secret {STATE_SECRET} key {STATE_KEY} is not a valid state"))
}

/// Applies every change of the state Secret to the webhook rules and the pull Secrets.
async fn follow_state(
    client: Client,
    namespace: String,
    webhook: Arc<WebhookState>,
    settings: Arc<RwLock<pull_secrets::Settings>>,
    changed: futures::channel::mpsc::UnboundedSender<()>,
) {
    let secrets = Api::<Secret>::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={STATE_SECRET}"));
    let mut stream = std::pin::pin!(watcher(secrets, config).default_backoff().applied_objects());
    while let Some(event) = stream.next().await {
        let state = match event
            .map_err(anyhow::Error::from)
            .and_then(|secret| parse_state(&secret))
        {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(%error, "ignoring an unusable cluster state");
                continue;
            }
        };
        let unchanged = settings.read().is_ok_and(|current| current.state == state);
        if unchanged {
            continue;
        }
        webhook.set_rules(Rules::from_state(&state));
        if let Ok(mut current) = settings.write() {
            current.state = state;
        }
        tracing::info!("cluster state changed: rules and pull Secrets updated");
        let _ = changed.unbounded_send(());
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
