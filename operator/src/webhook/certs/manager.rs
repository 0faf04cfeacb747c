//! Keeps the webhook's certificates alive: the bundle lives in a Secret (so every replica serves the
//! same certificate and a restart keeps it), the CA bundle is kept in the
//! MutatingWebhookConfiguration, and the serving certificate is loaded into the TLS store.
//! Several replicas may run this at once: Secret updates use the resource version, and a replica
//! that loses the race reloads what the winner wrote.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jackal_crds::names::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use time::OffsetDateTime;

use super::{Action, Bundle, CertificateError, Identity, Validity};
use crate::webhook::tls::{CertificateStore, TlsError};

/// Key of the full bundle (both CAs, keys and dates) in the Secret.
const BUNDLE_KEY: &str = "bundle.json";
/// Longest sleep between checks, so changes made by another replica are picked up.
const POLL: Duration = Duration::from_secs(60);
/// Sleep after an error.
const RETRY: Duration = Duration::from_secs(5);

/// Why a step of the manager failed (it is retried).
// Variant fields are named in the messages; documenting each again adds nothing.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// Generating certificates failed.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The Secret could not be read or written.
    #[error("failed to {action} Secret {namespace}/{name}: {source}")]
    Secret {
        action: &'static str,
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    /// The Secret holds something else.
    #[error("Secret {namespace}/{name} does not hold a webhook certificate bundle: {reason}")]
    Corrupt {
        namespace: String,
        name: String,
        reason: String,
    },
    /// The CA bundle could not be published.
    #[error("failed to publish the CA bundle in MutatingWebhookConfiguration {name}: {source}")]
    Publish { name: String, source: Box<kube::Error> },
    /// The serving certificate could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Where the certificates live and what they are for.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub secret: String,
    /// The MutatingWebhookConfiguration whose `caBundle` is kept current.
    pub webhook_configuration: String,
    /// Names the serving certificate is valid for.
    pub identity: Identity,
    /// Lifetimes.
    pub validity: Validity,
}

/// The certificate manager.
pub struct CertificateManager {
    client: Client,
    settings: Settings,
    store: Arc<CertificateStore>,
    served: std::sync::Mutex<String>,
}

impl CertificateManager {
    /// A manager loading certificates into `store`.
    pub fn new(client: Client, settings: Settings, store: Arc<CertificateStore>) -> Self {
        Self {
            client,
            settings,
            store,
            served: std::sync::Mutex::new(String::new()),
        }
    }

    /// Runs forever: one step, then sleep until the next thing to do (at most a minute).
    pub async fn run(self: Arc<Self>) {
        loop {
            let pause = match self.step().await {
                Ok(wake) => (wake - OffsetDateTime::now_utc())
                    .try_into()
                    .unwrap_or(Duration::ZERO)
                    .clamp(Duration::from_millis(200), POLL),
                Err(error) => {
                    tracing::warn!(%error, "webhook certificate step failed; retrying");
                    RETRY
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// Makes sure a valid certificate is stored, published and served; returns when to look again.
    pub async fn step(&self) -> Result<OffsetDateTime, ManagerError> {
        let validity = self.settings.validity;
        let (mut bundle, mut version) = self.load_or_create().await?;
        loop {
            let now = OffsetDateTime::now_utc();
            let action = bundle.plan(&validity, now);
            let Action::Wait(wake) = action else {
                tracing::info!(?action, "rotating webhook certificates");
                let next = bundle.apply(&action, &self.settings.identity, &validity, now)?;
                match self.save(&next, version.as_deref()).await {
                    Ok(saved) => (bundle, version) = (next, saved),
                    // Another replica rotated first: take its bundle.
                    Err(ManagerError::Secret { source, .. }) if matches!(&*source, kube::Error::Api(status) if status.is_conflict()) =>
                    {
                        (bundle, version) = self.load_or_create().await?;
                    }
                    Err(error) => return Err(error),
                }
                continue;
            };
            self.publish(&bundle).await?;
            self.serve(&bundle)?;
            return Ok(wake);
        }
    }

    /// The CA bundle currently stored (for registering the webhook configuration).
    pub async fn ca_bundle(&self) -> Result<String, ManagerError> {
        Ok(self.load_or_create().await?.0.ca_bundle())
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn secret_error(&self, action: &'static str) -> impl Fn(kube::Error) -> ManagerError + '_ {
        move |source| ManagerError::Secret {
            action,
            namespace: self.settings.namespace.clone(),
            name: self.settings.secret.clone(),
            source: Box::new(source),
        }
    }

    /// The stored bundle and its resource version, generating and storing one if there is none.
    async fn load_or_create(&self) -> Result<(Bundle, Option<String>), ManagerError> {
        let secrets = self.secrets();
        if let Some(secret) = secrets
            .get_opt(&self.settings.secret)
            .await
            .map_err(self.secret_error("read"))?
        {
            let corrupt = |reason: String| ManagerError::Corrupt {
                namespace: self.settings.namespace.clone(),
                name: self.settings.secret.clone(),
                reason,
            };
            let data = secret
                .data
                .as_ref()
                .and_then(|data| data.get(BUNDLE_KEY))
                .ok_or_else(|| corrupt(format!("no {BUNDLE_KEY}")))?;
            let bundle = serde_json::from_slice(&data.0).map_err(|error| corrupt(error.to_string()))?;
            return Ok((bundle, secret.metadata.resource_version));
        }
        let bundle = Bundle::generate(
            &self.settings.identity,
            &self.settings.validity,
            OffsetDateTime::now_utc(),
        )?;
        match secrets
            .create(&PostParams::default(), &self.secret(&bundle, None))
            .await
        {
            Ok(created) => Ok((bundle, created.metadata.resource_version)),
            // Another replica created it first.
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                Box::pin(self.load_or_create()).await
            }
            Err(error) => Err(self.secret_error("create")(error)),
        }
    }

    async fn save(&self, bundle: &Bundle, version: Option<&str>) -> Result<Option<String>, ManagerError> {
        let secret = self.secret(bundle, version.map(str::to_owned));
        let saved = self
            .secrets()
            .replace(&self.settings.secret, &PostParams::default(), &secret)
            .await;
        Ok(saved
            .map_err(self.secret_error("update"))?
            .metadata
            .resource_version)
    }

    fn secret(&self, bundle: &Bundle, resource_version: Option<String>) -> Secret {
        let bytes = |text: &str| ByteString(text.as_bytes().to_vec());
        let data = BTreeMap::from([
            ("tls.crt".to_owned(), bytes(&bundle.leaf.certificate)),
            ("tls.key".to_owned(), bytes(&bundle.leaf.key)),
            ("ca.crt".to_owned(), bytes(&bundle.ca_bundle())),
            (
                BUNDLE_KEY.to_owned(),
                ByteString(serde_json::to_vec(bundle).unwrap_or_default()),
            ),
        ]);
        Secret {
            metadata: ObjectMeta {
                name: Some(self.settings.secret.clone()),
                namespace: Some(self.settings.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.to_owned(),
                    MANAGED_BY_VALUE.to_owned(),
                )])),
                resource_version,
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".to_owned()),
            data: Some(data),
            ..Secret::default()
        }
    }

    /// Puts the CA bundle into every webhook of the configuration (if it is registered yet).
    async fn publish(&self, bundle: &Bundle) -> Result<(), ManagerError> {
        let name = &self.settings.webhook_configuration;
        let publish_error = |source| ManagerError::Publish {
            name: name.clone(),
            source: Box::new(source),
        };
        let api = Api::<MutatingWebhookConfiguration>::all(self.client.clone());
        let wanted = ByteString(bundle.ca_bundle().into_bytes());
        for _attempt in 0..5 {
            let Some(mut configuration) = api.get_opt(name).await.map_err(publish_error)? else {
                return Ok(());
            };
            let webhooks = configuration.webhooks.iter_mut().flatten();
            let mut changed = false;
            for webhook in webhooks {
                if webhook.client_config.ca_bundle.as_ref() != Some(&wanted) {
                    webhook.client_config.ca_bundle = Some(wanted.clone());
                    changed = true;
                }
            }
            if !changed {
                return Ok(());
            }
            match api.replace(name, &PostParams::default(), &configuration).await {
                Ok(_) => {
                    tracing::info!(configuration = %name, "published the webhook CA bundle");
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => continue,
                Err(error) => return Err(publish_error(error)),
            }
        }
        Ok(())
    }

    fn serve(&self, bundle: &Bundle) -> Result<(), ManagerError> {
        let mut served = self
            .served
            .lock()
            .map_err(|_| TlsError::Key("certificate lock poisoned".into()))?;
        if *served != bundle.leaf.certificate || !self.store.is_loaded() {
            self.store.load(&bundle.leaf.certificate, &bundle.leaf.key)?;
            tracing::info!(not_after = %bundle.leaf.not_after, "serving a new webhook certificate");
            served.clone_from(&bundle.leaf.certificate);
        }
        Ok(())
    }
}
