//! `package create`: from a directory with a `jackal.yaml` to a verifiable package file.
//!
//! ```text
//! read jackal.yaml ─▶ create-time templates ─▶ parse + validate ─▶ filter (architecture, flavor)
//!   ─▶ per component: charts, values, manifests, files ─▶ components/<name>.tar
//!   ─▶ images (registries, layouts, archives) ─▶ images/
//!   ─▶ checksums.txt ─▶ jackal.yaml (build record, aggregate checksum) ─▶ signature ─▶ .tar.zst
//! ```
//!
//! Work happens in a scratch directory next to the output, removed at the end whatever happens;
//! the package file appears only when complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jackal_crds::definition::{Build, Component, DefinitionError, PackageDefinition};

use super::archive::{self, ArchiveError};
use super::checksums::{self, ChecksumError};
use super::images::{AddedImage, ImageCollector, ImageError, ImageOptions};
use super::signing::{self, SigningError};
use super::sources::{self, SourceError};
use super::{CHECKSUMS, COMPONENTS, DEFINITION, IMAGES, SIGNATURE};
use crate::oci::Digest;
use crate::progress::Progress;

/// What to create and how.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Directory holding `jackal.yaml`.
    pub source: PathBuf,
    /// Directory the package file is written to.
    pub output: PathBuf,
    /// Target architecture (`amd64`, `arm64`); the definition's `metadata.architecture`, else this
    /// machine's, when unset.
    pub architecture: Option<String>,
    /// Flavor: components with another `only.flavor` are left out.
    pub flavor: Option<String>,
    /// Values for `###JACKAL_PKG_TMPL_KEY###` markers.
    pub set: BTreeMap<String, String>,
    /// PEM private key to sign the package with.
    pub signing_key: Option<String>,
    /// Image sources.
    pub images: ImageOptions,
    /// Version of the creating tool, recorded in the build.
    pub tool_version: String,
}

/// The package written.
#[derive(Clone, Debug)]
pub struct Created {
    /// The package file.
    pub path: PathBuf,
    /// Its definition (with build record and aggregate checksum).
    pub definition: PackageDefinition,
    /// Size of the package file.
    pub size: u64,
    /// The images it holds.
    pub images: Vec<AddedImage>,
}

/// Why a package could not be created.
// Variant fields are named in the messages; documenting each again adds nothing.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("failed to write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error("{DEFINITION} uses ###{marker}### but no value was given (--set {key}=VALUE)")]
    Template { marker: String, key: String },
    #[error("no component of {name} is left for architecture {architecture}{}", flavor.as_ref().map(|f| format!(" and flavor {f}")).unwrap_or_default())]
    NoComponents {
        name: String,
        architecture: String,
        flavor: Option<String>,
    },
    #[error("component {component}: {field} is not supported yet ({detail})")]
    Unsupported {
        component: String,
        field: &'static str,
        detail: String,
    },
    #[error("component {component}: {source}")]
    Source { component: String, source: SourceError },
    #[error(transparent)]
    Images(#[from] ImageError),
    #[error(transparent)]
    Checksums(#[from] ChecksumError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("failed to sign the package: {0}")]
    Signing(#[from] SigningError),
}

/// Replaces create-time markers: `###JACKAL_PKG_TMPL_KEY###` (and Zarf's and the deprecated
/// `PKG_VAR` spellings) from `set`, and `###JACKAL_PKG_ARCH###`.
pub fn apply_create_templates(
    text: &str,
    set: &BTreeMap<String, String>,
    architecture: &str,
) -> Result<String, CreateError> {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("###") {
        output.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let Some(end) = after.find("###") else {
            output.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let marker = &after[..end];
        let key = [
            "JACKAL_PKG_TMPL_",
            "ZARF_PKG_TMPL_",
            "JACKAL_PKG_VAR_",
            "ZARF_PKG_VAR_",
        ]
        .iter()
        .find_map(|prefix| marker.strip_prefix(prefix));
        match (marker, key) {
            ("JACKAL_PKG_ARCH" | "ZARF_PKG_ARCH", _) => output.push_str(architecture),
            (_, Some(key)) => match set.get(key) {
                Some(value) => output.push_str(value),
                None => {
                    return Err(CreateError::Template {
                        marker: marker.to_owned(),
                        key: key.to_owned(),
                    });
                }
            },
            // Deploy-time markers stay for deploy.
            _ => output.push_str(&rest[start..start + 3 + end + 3]),
        }
        rest = &after[end + 3..];
    }
    output.push_str(rest);
    Ok(output)
}

/// Whether `component` belongs in a package for `architecture` and `flavor`.
fn selected(component: &Component, architecture: &str, flavor: Option<&str>) -> bool {
    let Some(only) = &component.only else { return true };
    let architecture_ok = only
        .cluster
        .as_ref()
        .and_then(|cluster| cluster.architecture.as_deref())
        .is_none_or(|wanted| wanted == architecture);
    let flavor_ok = only.flavor.as_deref().is_none_or(|wanted| Some(wanted) == flavor);
    architecture_ok && flavor_ok
}

fn unsupported(component: &Component) -> Option<CreateError> {
    let error = |field, detail: String| {
        Some(CreateError::Unsupported {
            component: component.name.clone(),
            field,
            detail,
        })
    };
    if component.import.is_some() {
        return error("import", "compose the component into this definition".into());
    }
    if !component.repos.is_empty() {
        return error(
            "repos",
            format!(
                "{} git repositories; Jackal has no git server yet",
                component.repos.len()
            ),
        );
    }
    if !component.data_injections.is_empty() {
        return error(
            "dataInjections",
            "copy data with a Job or an init container instead".into(),
        );
    }
    if let Some(set) = component
        .manifests
        .iter()
        .find(|set| !set.kustomizations.is_empty())
    {
        return error(
            "manifests[].kustomizations",
            format!(
                "manifest set {} lists kustomizations; render them to files first",
                set.name
            ),
        );
    }
    if let Some(chart) = component.charts.iter().find(|chart| {
        chart
            .url
            .as_deref()
            .is_some_and(|url| url.contains(".git") || chart.git_path.is_some())
    }) {
        return error(
            "charts[].url",
            format!(
                "chart {} comes from git; use its Helm repository, an oci:// registry or a local copy",
                chart.name
            ),
        );
    }
    None
}

/// Creates the package described by `options`, reporting progress as lines of text.
pub async fn create(options: &CreateOptions, progress: &dyn Progress) -> Result<Created, CreateError> {
    let definition_path = options.source.join(DEFINITION);
    let text = std::fs::read_to_string(&definition_path).map_err(|source| CreateError::Read {
        path: definition_path.clone(),
        source,
    })?;
    let shown = definition_path.display().to_string();
    // The architecture: asked for, else declared, else this machine's.
    let declared = PackageDefinition::parse(&apply_create_templates(&text, &options.set, "")?, &shown)?
        .metadata
        .architecture;
    let architecture = options
        .architecture
        .clone()
        .or(declared)
        .unwrap_or_else(|| host_architecture().to_owned());
    let options = &CreateOptions {
        architecture: Some(architecture.clone()),
        images: ImageOptions {
            architecture: architecture.clone(),
            ..options.images.clone()
        },
        ..options.clone()
    };
    let text = apply_create_templates(&text, &options.set, &architecture)?;
    let mut definition = PackageDefinition::parse(&text, &shown)?.validated(&shown, &text)?;
    let all = definition.components.len();
    definition
        .components
        .retain(|component| selected(component, &architecture, options.flavor.as_deref()));
    if definition.components.is_empty() {
        return Err(CreateError::NoComponents {
            name: definition.metadata.name.clone(),
            architecture,
            flavor: options.flavor.clone(),
        });
    }
    if let Some(error) = definition.components.iter().find_map(unsupported) {
        return Err(error);
    }
    progress.step(&format!(
        "creating {} {} for {} ({} of {all} components)",
        definition.metadata.name,
        definition.metadata.version.as_deref().unwrap_or("(unversioned)"),
        architecture,
        definition.components.len()
    ));
    std::fs::create_dir_all(&options.output).map_err(|source| CreateError::Write {
        path: options.output.clone(),
        source,
    })?;
    let scratch = options.output.join(format!(
        ".jackal-create-{}-{}",
        definition.metadata.name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = build(options, &architecture, definition, &scratch, progress).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn build(
    options: &CreateOptions,
    architecture: &str,
    mut definition: PackageDefinition,
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<Created, CreateError> {
    let package = scratch.join("package");
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| CreateError::Write { path, source }
    };
    std::fs::create_dir_all(package.join(COMPONENTS)).map_err(write_error(&package))?;

    if definition.values.is_some() {
        progress.step("package values are carried in the package but not applied by Jackal yet");
    }
    for component in &definition.components {
        if component.actions.is_some() {
            progress.step(&format!(
                "component {}: actions are carried in the package but not run by Jackal yet",
                component.name
            ));
        }
        if !component.state_access.is_empty() {
            progress.step(&format!(
                "component {}: stateAccess is carried in the package but not acted on by Jackal yet",
                component.name
            ));
        }
        let directory = scratch.join("components").join(&component.name);
        collect_component(options, component, &directory, progress).await?;
        std::fs::create_dir_all(&directory).map_err(write_error(&directory))?;
        let (source, target) = (
            directory.clone(),
            package.join(COMPONENTS).join(format!("{}.tar", component.name)),
        );
        crate::blocking(move || archive::write(&source, &target, false)).await?;
    }

    let mut images: Vec<String> = Vec::new();
    for image in definition
        .components
        .iter()
        .flat_map(|component| &component.images)
    {
        if !images.contains(image) {
            images.push(image.clone());
        }
    }
    let archives: Vec<_> = definition
        .components
        .iter()
        .flat_map(|component| component.image_archives.clone())
        .collect();
    let mut added = Vec::new();
    if !images.is_empty() || !archives.is_empty() {
        let mut collector = ImageCollector::new(&package.join(IMAGES), options.images.clone())?;
        added = collector.pull_all(&images, progress).await?;
        for archive in archives {
            progress.step(&format!("reading images from {}", archive.path));
            // Unpacking and hashing an archive is blocking work: it moves to the blocking pool
            // with the collector and comes back with it.
            let (base, scratch_dir) = (options.source.clone(), scratch.to_owned());
            let (returned, result) = crate::blocking(move || {
                let result = collector.add_archive(&archive, &base, &scratch_dir);
                (collector, result)
            })
            .await;
            collector = returned;
            added.extend(result?);
        }
        collector.finish()?;
    }

    progress.step("computing checksums");
    let checksums = {
        let package = package.clone();
        crate::blocking(move || checksums::compute(&package)).await?
    };
    std::fs::write(package.join(CHECKSUMS), &checksums).map_err(write_error(&package.join(CHECKSUMS)))?;
    definition.metadata.aggregate_checksum = Some(Digest::of(checksums.as_bytes()).hex().to_owned());
    definition.metadata.architecture = Some(architecture.to_owned());
    definition.build = Some(Build {
        terminal: hostname(),
        user: std::env::var("USER").unwrap_or_default(),
        architecture: architecture.to_owned(),
        timestamp: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        version: options.tool_version.clone(),
        registry_overrides: options.images.registry_overrides.iter().cloned().collect(),
        flavor: options.flavor.clone(),
        signed: options.signing_key.as_ref().map(|_| true),
        ..Build::default()
    });
    let yaml = definition.to_yaml()?;
    std::fs::write(package.join(DEFINITION), &yaml).map_err(write_error(&package.join(DEFINITION)))?;
    if let Some(key) = &options.signing_key {
        let signature = signing::sign(key, yaml.as_bytes())?;
        std::fs::write(package.join(SIGNATURE), signature).map_err(write_error(&package.join(SIGNATURE)))?;
    }

    let path = options.output.join(super::file_name(&definition, architecture));
    progress.step(&format!("writing {}", path.display()));
    let size = {
        let (target, compress) = (path.clone(), !definition.metadata.uncompressed);
        crate::blocking(move || archive::write(&package, &target, compress)).await?
    };
    Ok(Created {
        path,
        definition,
        size,
        images: added,
    })
}

/// Puts a component's charts, values, manifests and files into `directory`.
async fn collect_component(
    options: &CreateOptions,
    component: &Component,
    directory: &Path,
    progress: &dyn Progress,
) -> Result<(), CreateError> {
    let source_error = |source| CreateError::Source {
        component: component.name.clone(),
        source,
    };
    let base = &options.source;
    for chart in &component.charts {
        let charts = directory.join("charts");
        std::fs::create_dir_all(&charts).map_err(|source| CreateError::Write {
            path: charts.clone(),
            source,
        })?;
        progress.step(&format!("component {}: chart {}", component.name, chart.name));
        let version = chart.version.clone().unwrap_or_default();
        let packaged = match (&chart.local_path, &chart.url) {
            (Some(local), _) if base.join(local).is_dir() => {
                sources::package_chart_directory(&base.join(local), &charts).map_err(source_error)?
            }
            (Some(local), _) => {
                let target = charts.join(format!("{}-{version}.tgz", chart.name));
                sources::fetch(local, base, &target, None)
                    .await
                    .map_err(source_error)?;
                target
            }
            (None, Some(url)) if url.starts_with("oci://") => {
                sources::fetch_oci_chart(url, &chart.name, &version, &charts, &options.images.access)
                    .await
                    .map_err(source_error)?
            }
            (None, Some(url)) => {
                let name = chart.repo_name.as_deref().unwrap_or(&chart.name);
                sources::fetch_repository_chart(url, name, &version, &charts)
                    .await
                    .map_err(source_error)?
            }
            (None, None) => continue,
        };
        // Stored under the chart's name in the definition, whatever the archive was called.
        let stored = charts.join(format!("{}.tgz", chart.name));
        std::fs::rename(&packaged, &stored).map_err(|source| CreateError::Write {
            path: stored.clone(),
            source,
        })?;
        for (index, values) in chart.values_files.iter().enumerate() {
            let target = directory
                .join("values")
                .join(format!("{}-{index}.yaml", chart.name));
            let (location, pin) = sources::pinned(values);
            sources::fetch(location, base, &target, pin)
                .await
                .map_err(source_error)?;
        }
    }
    for set in &component.manifests {
        for (index, file) in set.files.iter().enumerate() {
            let target = directory
                .join("manifests")
                .join(format!("{}-{index}.yaml", set.name));
            let (location, pin) = sources::pinned(file);
            sources::fetch(location, base, &target, pin)
                .await
                .map_err(source_error)?;
        }
    }
    for (index, file) in component.files.iter().enumerate() {
        let name = Path::new(file.source.split('?').next().unwrap_or(&file.source))
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let target = directory.join("files").join(index.to_string()).join(name);
        sources::fetch(&file.source, base, &target, file.shasum.as_deref())
            .await
            .map_err(source_error)?;
    }
    Ok(())
}

/// This machine's architecture in OCI terms.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_time_templates_are_filled_and_deploy_markers_kept() {
        let set = BTreeMap::from([("TAG".to_owned(), "1.2.3".to_owned())]);
        let text = "image: web:###JACKAL_PKG_TMPL_TAG###\narch: ###ZARF_PKG_ARCH###\nvar: ###JACKAL_VAR_DOMAIN###\nold: ###ZARF_PKG_VAR_TAG###\n";
        assert_eq!(
            apply_create_templates(text, &set, "amd64").unwrap(),
            "image: web:1.2.3\narch: amd64\nvar: ###JACKAL_VAR_DOMAIN###\nold: 1.2.3\n"
        );
        let error = apply_create_templates("x: ###JACKAL_PKG_TMPL_MISSING###", &set, "amd64")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "jackal.yaml uses ###JACKAL_PKG_TMPL_MISSING### but no value was given (--set MISSING=VALUE)"
        );
        assert_eq!(
            apply_create_templates("a ### b", &set, "amd64").unwrap(),
            "a ### b"
        );
    }

    #[test]
    fn components_are_filtered_by_architecture_and_flavor() {
        let definition = PackageDefinition::parse(
            "kind: JackalPackageConfig\nmetadata: {name: demo}\ncomponents:\n  - {name: any}\n  - {name: arm, only: {cluster: {architecture: arm64}}}\n  - {name: vanilla, only: {flavor: vanilla}}\n",
            "test",
        )
        .unwrap();
        let names = |architecture, flavor| {
            definition
                .components
                .iter()
                .filter(|c| selected(c, architecture, flavor))
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("amd64", None), ["any"]);
        assert_eq!(names("arm64", Some("vanilla")), ["any", "arm", "vanilla"]);
    }
}

/// The operator runs `create`'s heavy parts (checksums, zstd, archive writing) next to a webhook on
/// the same runtime: they must leave the runtime's thread free.
#[cfg(test)]
mod runtime_tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Records, for each step, how many times a spinning task had run when the step began.
    struct Ticks<'a> {
        counter: &'a AtomicU64,
        steps: Mutex<Vec<(String, u64)>>,
    }

    impl Progress for Ticks<'_> {
        fn step(&self, message: &str) {
            let ticks = self.counter.load(Ordering::SeqCst);
            if let Ok(mut steps) = self.steps.lock() {
                steps.push((message.to_owned(), ticks));
            }
        }
    }

    #[test]
    fn checksums_and_archive_writing_leave_the_runtime_thread_free() {
        let root = std::env::temp_dir().join(format!("jackal-create-runtime-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let source = root.join("source");
        std::fs::create_dir_all(&source).unwrap();
        // Enough incompressible bytes that hashing and compressing them takes real time.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let bytes: Vec<u8> = (0..16 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(source.join("data.bin"), &bytes).unwrap();
        std::fs::write(
            source.join(DEFINITION),
            "kind: JackalPackageConfig\nmetadata: {name: runtime, version: 0.1.0}\ncomponents:\n  - name: data\n    required: true\n    files:\n      - {source: data.bin, target: /data.bin}\n",
        )
        .unwrap();
        let options = CreateOptions {
            source,
            output: root.clone(),
            architecture: Some("amd64".into()),
            ..CreateOptions::default()
        };

        // One thread: whatever runs inline on it stops every other task, as it would stop the
        // webhook's.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let counter = AtomicU64::new(0);
        let progress = Ticks {
            counter: &counter,
            steps: Mutex::new(Vec::new()),
        };
        let finished = runtime.block_on(async {
            let spinner = async {
                loop {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            };
            tokio::select! {
                created = create(&options, &progress) => created,
                () = spinner => unreachable!("the spinner never ends"),
            }
        });
        let created = finished.unwrap();
        let end = counter.load(Ordering::SeqCst);
        let steps = progress.steps.into_inner().unwrap();
        let at = |prefix: &str| {
            steps
                .iter()
                .find(|(message, _)| message.starts_with(prefix))
                .map(|(_, ticks)| *ticks)
                .unwrap_or_else(|| panic!("no step {prefix:?} in {steps:?}"))
        };
        // Between these steps there is nothing but the blocking work: if it ran on the runtime's
        // thread, the spinner could not have run in between.
        assert!(
            at("writing") > at("computing checksums"),
            "checksums ran on the runtime thread: {steps:?}"
        );
        assert!(
            end > at("writing"),
            "the archive was written on the runtime thread: {steps:?}, end {end}"
        );
        assert!(created.size > 0);
        let _ = std::fs::remove_dir_all(&root);
    }
}
