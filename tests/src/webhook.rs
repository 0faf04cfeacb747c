//! Running the operator's webhook in the test process against the real API server: a server on
//! loopback with its own certificate, registered through the real registration code with a
//! `url` client config, and scoped to namespaces carrying this test's label so that tests running
//! side by side never see each other's webhook.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use jackal_crds::init::WebhookSpec;
use jackal_crds::state::Password;
use jackal_operator::metrics::Metrics;
use jackal_operator::webhook::certs::{Bundle, Identity, Validity};
use jackal_operator::webhook::hooks::{GitRules, Rules};
use jackal_operator::webhook::registration::{Endpoint, Registration};
use jackal_operator::webhook::server::{self, WebhookState};
use jackal_operator::webhook::tls::{CertificateStore, server_config};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::task::JoinHandle;

use crate::{FIELD_MANAGER, from_json, testbed_dir};

/// Label a namespace must carry (with the webhook's id) to be seen by a test webhook.
pub const SCOPE_LABEL: &str = "jackal.dev/test-webhook";
/// The registry address the test rules point at.
pub const REGISTRY: &str = "127.0.0.1:31999";

/// Rules as the operator would build them from a state with a registry and a git server.
pub fn test_rules() -> Rules {
    Rules {
        registry: REGISTRY.into(),
        registry_username: "jackal-pull".into(),
        registry_password: Password("pull-password".into()),
        pull_secret: "private-registry".into(),
        git: Some(GitRules {
            server: jackal_core::transform::GitServer {
                url: "http://jackal-git.jackal.svc:3000".into(),
                user: "jackal-git-user".into(),
            },
            username: "jackal-git-read".into(),
            password: Password("git-read-password".into()),
            secret: "private-git-server".into(),
        }),
    }
}

/// A webhook served by this process and registered with the test cluster.
pub struct TestWebhook {
    /// Unique id: the registration's name suffix and the scope label's value.
    pub id: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its state (rules, metrics, certificate store).
    pub state: Arc<WebhookState>,
    /// The name of its MutatingWebhookConfiguration.
    pub configuration: String,
    server: Option<JoinHandle<()>>,
}

impl TestWebhook {
    /// Serves `rules` on loopback and registers the webhook with `spec` (failure policy, …).
    pub async fn start(client: &Client, test: &str, rules: Rules, spec: WebhookSpec) -> anyhow::Result<Self> {
        let certificates = Arc::new(CertificateStore::default());
        let bundle = Bundle::generate(
            &loopback_identity()?,
            &Validity::default(),
            time::OffsetDateTime::now_utc(),
        )?;
        certificates.load(&bundle.leaf.certificate, &bundle.leaf.key)?;
        Self::start_with(client, test, rules, spec, certificates, &bundle.ca_bundle()).await
    }

    /// Like [`Self::start`], serving whatever `certificates` holds, trusted through `ca_bundle`.
    pub async fn start_with(
        client: &Client,
        test: &str,
        rules: Rules,
        spec: WebhookSpec,
        certificates: Arc<CertificateStore>,
        ca_bundle: &str,
    ) -> anyhow::Result<Self> {
        let id = Self::id_for(test);
        let state = WebhookState::new(rules, Arc::new(Metrics::default()), Arc::clone(&certificates));
        let (listener, address) = server::bind("127.0.0.1:0".parse()?).await?;
        let tls = server_config(certificates)?;
        let server = tokio::spawn(server::serve(
            listener,
            tls,
            server::routes(Arc::clone(&state)),
            std::future::pending(),
        ));
        let mut webhook = Self {
            configuration: Self::configuration_for(test),
            id,
            address,
            state,
            server: Some(server),
        };
        webhook
            .register(client, &format!("https://{address}/mutate"), ca_bundle, spec)
            .await?;
        Ok(webhook)
    }

    /// The id a test's webhook gets.
    pub fn id_for(test: &str) -> String {
        format!("{}-{}", crate::sanitize(test), std::process::id())
    }

    /// The configuration name a test's webhook gets.
    pub fn configuration_for(test: &str) -> String {
        format!("jackal-test-{}", Self::id_for(test))
    }

    /// Registers (or re-registers) this webhook's configuration pointing at `url`.
    pub async fn register(
        &mut self,
        client: &Client,
        url: &str,
        ca_bundle: &str,
        spec: WebhookSpec,
    ) -> anyhow::Result<()> {
        let mut registration = Registration::new(
            Endpoint::Url(url.to_owned()),
            ca_bundle.to_owned(),
            REGISTRY.into(),
            spec,
        );
        registration.name.clone_from(&self.configuration);
        let mut configuration = registration.configuration();
        for webhook in configuration.webhooks.iter_mut().flatten() {
            if let Some(selector) = webhook.namespace_selector.as_mut() {
                selector
                    .match_expressions
                    .get_or_insert_with(Vec::new)
                    .push(LabelSelectorRequirement {
                        key: SCOPE_LABEL.into(),
                        operator: "In".into(),
                        values: Some(vec![self.id.clone()]),
                    });
            }
        }
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .patch(
                &self.configuration,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&configuration),
            )
            .await
            .with_context(|| format!("failed to register {}", self.configuration))?;
        Ok(())
    }

    /// Labels for a namespace this webhook should see.
    pub fn namespace_labels(&self) -> Vec<(String, String)> {
        vec![(SCOPE_LABEL.to_owned(), self.id.clone())]
    }

    /// Waits until the API server calls this webhook for pods in `namespace` (it picks new
    /// configurations up asynchronously), probing with server-side dry runs.
    pub async fn wait_until_active(&self, client: &Client, namespace: &str) -> anyhow::Result<()> {
        let pods = Api::<Pod>::namespaced(client.clone(), namespace);
        let probe: Pod = from_json(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "webhook-probe"},
            "spec": {"containers": [{"name": "probe", "image": "docker.io/library/probe:1"}]},
        }))?;
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(created) = pods.create(&dry_run, &probe).await {
                let image = created
                    .spec
                    .map(|spec| spec.containers[0].image.clone().unwrap_or_default())
                    .unwrap_or_default();
                if image.starts_with(REGISTRY) {
                    return Ok(());
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the API server never called webhook {}",
                self.configuration
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops serving (the registration stays, as when the operator is down).
    pub fn stop_serving(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// The identity of a webhook the API server calls on loopback.
pub fn loopback_identity() -> anyhow::Result<Identity> {
    Ok(Identity {
        dns_names: vec!["localhost".into()],
        ip_addresses: vec!["127.0.0.1".parse()?],
    })
}

impl Drop for TestWebhook {
    fn drop(&mut self) {
        self.stop_serving();
        let (name, dir) = (self.configuration.clone(), testbed_dir());
        let deletion = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = crate::client_for(&dir).await?;
                Api::<MutatingWebhookConfiguration>::all(client)
                    .delete(&name, &DeleteParams::default())
                    .await?;
                anyhow::Ok(())
            })
        });
        if let Ok(Err(error)) = deletion.join() {
            eprintln!(
                "warning: failed to delete webhook configuration {}: {error:#}",
                self.configuration
            );
        }
    }
}
