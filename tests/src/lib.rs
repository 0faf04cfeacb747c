//! Harness for tests against the real test cluster that `testbed/cluster up` starts: it connects
//! through the kubeconfig the scripts wrote, installs Jackal's CRDs once per test process and waits
//! until they are Established, gives every test a namespace of its own, and runs the cluster's real
//! `kubectl`.
//!
//! A missing cluster is an error, never a skip: the tests exist to prove behaviour on a real API
//! server, so `make test` (and `.ci/run`) bring the cluster up first.
//!
//! Modules: [`wait`] (deadlines on conditions), [`http`] (a tiny client for NodePorts and
//! registries), [`faulty_proxy`] (a proxy that fails chosen requests), [`images`] (test images as an OCI layout), [`injector`] (running the real injector),
//! [`webhook`] (the operator's webhook served in process and registered with the cluster).

pub mod faulty_proxy;
pub mod http;
pub mod images;
pub mod injector;
pub mod registry;
pub mod wait;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config};
use tokio::sync::OnceCell;

/// Label on every namespace the harness creates.
pub const TEST_LABEL: &str = "jackal.dev/test";
/// Field manager the harness applies with.
pub const FIELD_MANAGER: &str = "jackal-tests";

static CRDS_INSTALLED: OnceCell<()> = OnceCell::const_new();
static NAMESPACE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The running test cluster.
pub struct Cluster {
    /// A client authenticated as the cluster admin.
    pub client: Client,
    dir: PathBuf,
}

impl Cluster {
    /// Connects to the test cluster and makes sure Jackal's CRDs are installed and Established.
    pub async fn connect() -> anyhow::Result<Self> {
        let dir = testbed_dir();
        let client = client_for(&dir).await?;
        let cluster = Self { client, dir };
        CRDS_INSTALLED.get_or_try_init(|| cluster.install_crds()).await?;
        Ok(cluster)
    }

    /// The test cluster's state directory (`JACKAL_TESTBED_DIR`, default `/tmp/jackal-testbed`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig `testbed/cluster up` wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A `kubectl` command (the one built with the cluster) pointed at the test cluster.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.dir.join("bin/kubectl"));
        command.arg("--kubeconfig").arg(self.kubeconfig());
        command
    }

    /// Runs `kubectl ARGS`, failing with its output when it exits non-zero.
    pub fn kubectl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.kubectl_output(args)?;
        if !output.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Runs `kubectl ARGS` and returns whatever happened.
    pub fn kubectl_output(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.kubectl()
            .args(args)
            .output()
            .with_context(|| format!("failed to run kubectl from {}", self.dir.join("bin").display()))
    }

    /// Creates a namespace for one test, deleted again when the returned guard drops.
    pub async fn namespace(&self, test: &str) -> anyhow::Result<TestNamespace> {
        self.labelled_namespace(test, &[]).await
    }

    /// Like [`Self::namespace`], with extra labels.
    pub async fn labelled_namespace(
        &self,
        test: &str,
        labels: &[(String, String)],
    ) -> anyhow::Result<TestNamespace> {
        let sequence = NAMESPACE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = format!("jt-{}-{}-{sequence}", sanitize(test), std::process::id());
        name.truncate(63);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    std::iter::once((TEST_LABEL.to_owned(), "true".to_owned()))
                        .chain(labels.iter().cloned())
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("failed to create test namespace {name}"))?;
        // Pods are refused until the controller manager has made the namespace's `default`
        // ServiceAccount, a moment after the namespace.
        let accounts =
            Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(self.client.clone(), &name);
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(accounts, "default", conditions::is_created()),
        )
        .await
        .with_context(|| format!("namespace {name} got no default ServiceAccount within 30 s"))??;
        Ok(TestNamespace {
            name,
            dir: self.dir.clone(),
        })
    }

    async fn install_crds(&self) -> anyhow::Result<()> {
        let api = Api::<CustomResourceDefinition>::all(self.client.clone());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for crd in jackal_crds::all() {
            let name = crd.metadata.name.clone().context("generated CRD has no name")?;
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .with_context(|| format!("failed to install CRD {name}"))?;
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .with_context(|| format!("CRD {name} was not Established within 30 s"))??;
        }
        Ok(())
    }
}

/// A namespace owned by one test; deleted (without waiting for finalization) on drop.
pub struct TestNamespace {
    /// The namespace name.
    pub name: String,
    dir: PathBuf,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // The test's runtime may be single-threaded and busy dropping us, so delete from a thread
        // with its own runtime and client rather than blocking on the test's.
        let (name, dir) = (self.name.clone(), self.dir.clone());
        let deletion = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = client_for(&dir).await?;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::default())
                    .await?;
                anyhow::Ok(())
            })
        });
        if let Ok(Err(error)) = deletion.join() {
            eprintln!(
                "warning: failed to delete test namespace {}: {error:#}",
                self.name
            );
        }
    }
}

/// The state directory of the test cluster.
pub fn testbed_dir() -> PathBuf {
    std::env::var_os("JACKAL_TESTBED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/jackal-testbed"))
}

/// A binary of this workspace built in the debug profile (`cargo test --workspace` builds them).
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository_root().join("target"))
        .join("debug")
        .join(name);
    if !path.exists() {
        bail!(
            "{} is not built: run `cargo build --workspace` (`make test` does)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `kubectl-jackal ARGS` and returns what happened.
pub fn jackal(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(workspace_binary("kubectl-jackal")?)
        .args(args)
        .output()?)
}

/// The connected-side registry the test cluster runs ("the internet"), as `HOST:PORT`.
pub fn connected_registry() -> String {
    std::env::var("JACKAL_CONNECTED_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_owned())
}

/// Builds a typed object from JSON, for compact test fixtures.
pub fn from_json<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> anyhow::Result<K> {
    Ok(serde_json::from_value(value)?)
}

/// A scratch directory for one test, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// Creates an empty directory named after `test`.
    pub fn new(test: &str) -> anyhow::Result<Self> {
        let sequence = NAMESPACE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "jackal-test-{}-{}-{sequence}",
            sanitize(test),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The repository root, for tests that read committed files (samples, manifests).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) async fn client_for(dir: &Path) -> anyhow::Result<Client> {
    let path = dir.join("kubeconfig");
    if !path.exists() {
        bail!(
            "no test cluster: {} does not exist. Start one with `testbed/cluster up` \
             (`make test` does this for you)",
            path.display()
        );
    }
    let kubeconfig =
        Kubeconfig::read_from(&path).with_context(|| format!("failed to read {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("invalid kubeconfig {}", path.display()))?;
    Ok(Client::try_from(config)?)
}

pub(crate) fn sanitize(test: &str) -> String {
    test.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_owned()
}
