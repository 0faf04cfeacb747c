//! `kubectl jackal init`: installs what the cluster needs to know about Jackal (CRDs, namespace,
//! `JackalInit`), then runs the bootstrap steps of `jackal_core::bootstrap` one by one, saying
//! what each does and how long it took, up to the operator running from the registry; then the
//! in-cluster operator owns the `JackalInit` and the plugin waits for it to report `Ready`
//! (ADR 0009). Every step is idempotent, so running it again resumes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jackal_core::bootstrap::lease::{BootstrapLease, Held};
use jackal_core::bootstrap::package::InitPackage;
use jackal_core::bootstrap::steps::{Bootstrap, Reach, credentials_secret, registry_host};
use jackal_crds::JackalInit;
use jackal_crds::init::{ExternalRegistry, InternalRegistry, JackalInitSpec, RegistrySpec, RegistryStorage};
use jackal_crds::names::INIT_NAME;
use jackal_crds::state::JackalState;
use k8s_openapi::api::core::v1::{LocalObjectReference, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::cli::InitArgs;
use crate::progress::Progress;

/// The CRDs, as generated from the Rust types (`make generate`).
const CRDS: [(&str, &str); 2] = [
    (
        "jackalinits.jackal.dev",
        include_str!("../../../charts/jackal/crds/jackalinits.jackal.dev.yaml"),
    ),
    (
        "jackalpackages.jackal.dev",
        include_str!("../../../charts/jackal/crds/jackalpackages.jackal.dev.yaml"),
    ),
];
/// How long the operator may report `Stalled` before `init` gives up waiting for `Ready`.
const STALLED_GRACE: Duration = Duration::from_secs(30);
/// Field manager of what the plugin applies.
const FIELD_MANAGER: &str = "kubectl-jackal";
/// The Secret holding the external registry's push account.
const PUSH_SECRET: &str = "jackal-registry-push";
/// The Secret holding the external registry's pull account.
const PULL_SECRET: &str = "jackal-registry-pull";

/// Runs `init`.
pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let package = match &args.package {
        Some(path) => path.clone(),
        None => default_package()?,
    };
    let work = std::env::temp_dir().join(format!("jackal-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let opened = InitPackage::open(&package, &work);
    let result = opened.map_err(anyhow::Error::from).and_then(|init_package| {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let timeout = Duration::from_secs(args.timeout);
        runtime.block_on(async {
            let stages = Stages {
                progress: Progress::new(),
            };
            let result = tokio::time::timeout(timeout, bootstrap(&args, init_package, &stages)).await;
            stages.finish();
            result.with_context(|| format!("init did not finish within {} s (--timeout)", args.timeout))?
        })
    });
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// `jackal-init-<arch>-<version>.tar.zst` next to this binary.
fn default_package() -> anyhow::Result<PathBuf> {
    let architecture = jackal_core::package::create::host_architecture();
    let name = format!("jackal-init-{architecture}-{}.tar.zst", env!("CARGO_PKG_VERSION"));
    let binary = std::env::current_exe().context("failed to find this binary's directory")?;
    let candidate = binary.parent().unwrap_or(Path::new(".")).join(&name);
    anyhow::ensure!(
        candidate.is_file(),
        "no init package: looked for {} (build one with `kubectl jackal package create packages/init`, then pass it with --package FILE)",
        candidate.display()
    );
    Ok(candidate)
}

async fn bootstrap(args: &InitArgs, package: InitPackage, stages: &Stages) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("failed to connect to the Kubernetes API (KUBECONFIG)")?;
    let started = Instant::now();
    let spec = install(&client, args, stages).await?;
    let external = spec.registry.external.is_some();
    let steps = Bootstrap {
        client,
        namespace: args.namespace.clone(),
        spec,
        // An external registry is not seeded: every init image is pushed into it.
        seed_images: if external {
            Vec::new()
        } else {
            package.seed_images()
        },
        registry_image: package.registry_image.clone(),
        injector_binary: package.injector_binary.clone(),
        reach: Reach::NodePort,
    };
    let state = stages
        .run("cluster state (registry accounts)", steps.ensure_state())
        .await?;
    let done = if external {
        let address = &state.registry.address;
        let pushed = stages
            .run(
                &format!("the init images into the external registry {address}"),
                steps.push_package_images(&state, &package.layout, &package.images),
            )
            .await?;
        stages.note(&format!("        {} images", pushed.len()));
        stages
            .run("the registry pull Secret", steps.ensure_pull_secret(&state))
            .await?;
        false
    } else {
        stages
            .run(
                "look for a running registry",
                steps.registry_is_self_hosted(&state),
            )
            .await?
    };
    if external {
        // Nothing to seed.
    } else if done {
        stages.note("        the registry runs from its own image: nothing to seed");
        let image = steps
            .self_hosted_image(&state)
            .context("the registry image has no place in the registry")?;
        stages
            .run("registry settings", steps.start_registry(&state, &image))
            .await?;
    } else {
        let lease = BootstrapLease::new(steps.client.clone(), &args.namespace, &lease_identity());
        let held = stages
            .run("the bootstrap Lease", take_lease(&lease, stages))
            .await?;
        let seeded = seed(&steps, &state, &package, stages).await;
        held.release().await;
        seeded?;
    }
    stages
        .run("cleanup of the seed objects", steps.clean_up())
        .await?;
    // Pinned by digest: the operator that runs is the one in this package, whatever a node has
    // cached under the same tag.
    let digest = package
        .layout
        .find(&package.operator_image)
        .with_context(|| format!("the init package does not hold {}", package.operator_image))?
        .digest;
    let operator_image = format!("{}@{digest}", package.operator_image);
    stages
        .run(
            "operator from the registry",
            steps.start_operator(&state, &operator_image),
        )
        .await?;
    stages
        .run(
            "the operator reports the JackalInit Ready",
            wait_ready(&steps.client, stages),
        )
        .await?;
    stages.note(&format!(
        "jackal is initialised{} in {:.1} s: registry at {} (namespace {})",
        if done { " (nothing changed)" } else { "" },
        started.elapsed().as_secs_f64(),
        state.registry.address,
        args.namespace
    ));
    println!("{}", state.registry.address);
    Ok(())
}

/// Who this run is when it holds the bootstrap Lease: this machine, so a run stopped half-way
/// (killed, ^C) is taken over at once by the next run here.
fn lease_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{FIELD_MANAGER}/{host}")
}

/// Takes the bootstrap Lease, waiting (within `--timeout`) while the operator or another `init`
/// seeds the registry.
async fn take_lease(lease: &BootstrapLease, stages: &Stages) -> anyhow::Result<Held> {
    let mut said = None;
    loop {
        match lease.try_acquire().await? {
            Ok(held) => return Ok(held),
            Err(holder) => {
                if said.as_ref() != Some(&holder) {
                    stages.note(&format!(
                        "        {holder} is seeding the registry; waiting for it"
                    ));
                    said = Some(holder);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// From ConfigMaps to a registry running from its own image and holding every init image.
async fn seed(
    steps: &Bootstrap,
    state: &JackalState,
    package: &InitPackage,
    stages: &Stages,
) -> anyhow::Result<()> {
    let payload = stages
        .run("seed payload into ConfigMaps", steps.write_payload())
        .await?;
    stages.note(&format!(
        "        {} chunks, payload {}",
        payload.chunks.len(),
        payload.digest
    ));
    let seed = stages
        .run("seed registry (injector)", steps.start_injector(&payload))
        .await?;
    let seed_image = seed.image(&package.registry_image);
    stages
        .run("registry from the seed", steps.start_registry(state, &seed_image))
        .await?;
    let copied = stages
        .run(
            "seed images into the registry",
            steps.push_images(state, &seed.endpoint),
        )
        .await?;
    let (pushed, bytes) = copied.iter().fold((0, 0), |(blobs, bytes), copy| {
        (blobs + copy.pushed, bytes + copy.bytes)
    });
    stages.note(&format!("        {pushed} blobs ({bytes} bytes) pushed"));
    stages
        .run(
            "registry from its own image",
            steps.self_host_registry(state, Some(&seed.endpoint)),
        )
        .await?;
    let images = &package.images;
    let others = stages
        .run(
            "the other init images into the registry",
            steps.push_package_images(state, &package.layout, images),
        )
        .await?;
    stages.note(&format!("        {} images", others.len()));
    Ok(())
}

/// Waits until the operator has written `Ready=True` for the current generation of the
/// `JackalInit`, printing what it reports on the way (the `--timeout` bounds the wait). A
/// `Stalled` that lasts [`STALLED_GRACE`] ends the wait: one written before this run's work was
/// seen by the operator does not.
async fn wait_ready(client: &Client, stages: &Stages) -> anyhow::Result<()> {
    let inits = Api::<JackalInit>::all(client.clone());
    let mut said = String::new();
    let mut stalled_since = None;
    loop {
        let init = inits
            .get(INIT_NAME)
            .await
            .context("failed to read the JackalInit")?;
        let status = init.status.unwrap_or_default();
        let current =
            status.observed_generation.is_some() && status.observed_generation == init.metadata.generation;
        let condition = |kind: &str| status.conditions.iter().find(|condition| condition.type_ == kind);
        if current && condition("Ready").is_some_and(|ready| ready.status == "True") {
            return Ok(());
        }
        match condition("Stalled").filter(|stalled| current && stalled.status == "True") {
            Some(stalled) if stalled_since.get_or_insert_with(Instant::now).elapsed() > STALLED_GRACE => {
                anyhow::bail!("stalled ({}): {}", stalled.reason, stalled.message);
            }
            Some(_) => {}
            None => stalled_since = None,
        }
        let now = condition("Ready")
            .map(|ready| format!("{}: {}", ready.reason, ready.message))
            .unwrap_or_else(|| "no status from the operator yet".to_owned());
        if now != said {
            stages.note(&format!("        {now}"));
            said = now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The stages of `init` as they pass: on a terminal a spinner with the current stage and its
/// time, finished stages above it; otherwise plain lines.
struct Stages {
    progress: Progress,
}

impl Stages {
    /// Runs one step, saying its name before and its duration after.
    async fn run<T, E>(&self, name: &str, step: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
    where
        E: Into<anyhow::Error>,
    {
        jackal_core::progress::Progress::step(&self.progress, &format!("[init] {name}"));
        let started = Instant::now();
        let result = step
            .await
            .map_err(Into::into)
            .with_context(|| format!("{name} failed"))?;
        self.note(&format!(
            "        done in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(result)
    }

    /// A line of its own.
    fn note(&self, line: &str) {
        self.progress.note(line);
    }

    /// Ends the display.
    fn finish(&self) {
        self.progress.finish();
    }
}

/// Stores the external registry's accounts given on the command line in the push and pull
/// Secrets (replacing what they held: a rotation), and names them.
async fn external_registry(
    client: &Client,
    args: &InitArgs,
    url: &str,
    params: &PatchParams,
) -> anyhow::Result<ExternalRegistry> {
    anyhow::ensure!(
        !url.contains("://"),
        "--registry-url {url}: give the registry as HOST[:PORT][/PATH], without a scheme"
    );
    let host = registry_host(url);
    let secrets = Api::<Secret>::namespaced(client.clone(), &args.namespace);
    let store = async |name: &str, username: &Option<String>, password: &Option<String>| {
        let (Some(username), Some(password)) = (username, password) else {
            let found = secrets
                .get_opt(name)
                .await
                .with_context(|| format!("failed to read the Secret {name}"))?;
            return anyhow::Ok(found.is_some());
        };
        let secret = credentials_secret(&args.namespace, name, host, username, password);
        secrets
            .patch(name, params, &Patch::Apply(&secret))
            .await
            .with_context(|| format!("failed to store the registry account in the Secret {name}"))?;
        anyhow::Ok(true)
    };
    let push = store(
        PUSH_SECRET,
        &args.registry_push_username,
        &args.registry_push_password,
    )
    .await?;
    anyhow::ensure!(
        push,
        "--registry-url needs the push account: --registry-push-username and --registry-push-password (or JACKAL_REGISTRY_PUSH_USERNAME and JACKAL_REGISTRY_PUSH_PASSWORD)"
    );
    let pull = store(
        PULL_SECRET,
        &args.registry_pull_username,
        &args.registry_pull_password,
    )
    .await?;
    Ok(ExternalRegistry {
        address: url.to_owned(),
        push_secret_ref: LocalObjectReference {
            name: PUSH_SECRET.to_owned(),
        },
        pull_secret_ref: pull.then(|| LocalObjectReference {
            name: PULL_SECRET.to_owned(),
        }),
        insecure: args.registry_insecure,
    })
}

/// Applies the CRDs and the namespace, and creates the `JackalInit` unless one exists (a user's or
/// a GitOps tool's spec is kept); returns the spec in force.
async fn install(client: &Client, args: &InitArgs, stages: &Stages) -> anyhow::Result<JackalInitSpec> {
    stages.note(&format!(
        "[init] CRDs, namespace {} and the JackalInit",
        args.namespace
    ));
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for (name, yaml) in CRDS {
        let crd: CustomResourceDefinition =
            serde_saphyr::from_str(yaml).with_context(|| format!("the embedded CRD {name} is not valid"))?;
        crds.patch(name, &params, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("failed to apply the CRD {name}"))?;
    }
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": args.namespace, "labels": {jackal_crds::names::MANAGED_BY_LABEL: jackal_crds::names::MANAGED_BY_VALUE}},
    }))?;
    Api::<Namespace>::all(client.clone())
        .patch(&args.namespace, &params, &Patch::Apply(&namespace))
        .await
        .with_context(|| format!("failed to apply the namespace {}", args.namespace))?;
    let inits = Api::<JackalInit>::all(client.clone());
    // A CRD just created takes a moment before its resources can be served.
    let deadline = Instant::now() + Duration::from_secs(30);
    let existing = loop {
        match inits.get_opt(INIT_NAME).await {
            Ok(existing) => break existing,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(error) => return Err(error).context("failed to read the JackalInit"),
        }
    };
    let external = match &args.registry_url {
        Some(url) => Some(external_registry(client, args, url, &params).await?),
        None => None,
    };
    if let Some(existing) = existing {
        let in_force = existing
            .spec
            .registry
            .external
            .as_ref()
            .map(|external| &external.address);
        anyhow::ensure!(
            args.registry_url.is_none() || args.registry_url.as_ref() == in_force,
            "this cluster was initialised with {}; --registry-url {} cannot change that (remove Jackal and run init again)",
            in_force.map_or_else(
                || "the internal registry".to_owned(),
                |address| format!("the registry {address}")
            ),
            args.registry_url.as_deref().unwrap_or_default(),
        );
        return Ok(existing.spec);
    }
    let spec = JackalInitSpec {
        registry: match external {
            Some(external) => RegistrySpec {
                internal: None,
                external: Some(external),
            },
            None => RegistrySpec {
                internal: Some(InternalRegistry {
                    node_port: Some(args.registry_node_port),
                    storage: args.registry_storage.as_ref().map(|size| RegistryStorage {
                        size: size.clone(),
                        storage_class_name: args.registry_storage_class.clone(),
                    }),
                    ..InternalRegistry::default()
                }),
                external: None,
            },
        },
        ..JackalInitSpec::default()
    };
    let init = JackalInit::new(INIT_NAME, spec.clone());
    inits
        .create(&PostParams::default(), &init)
        .await
        .context("failed to create the JackalInit")?;
    Ok(spec)
}
