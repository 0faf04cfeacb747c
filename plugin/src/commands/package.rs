//! `kubectl jackal package`.

use std::collections::BTreeMap;

use anyhow::Context;
use jackal_core::package::create::{CreateOptions, create};
use jackal_core::package::images::ImageOptions;
use jackal_core::package::inspect::{Inspection, inspect};
use jackal_core::package::verify::{VerifyOptions, verify_file};

use jackal_core::oci::OciUrl;
use jackal_core::package::oci;
use jackal_core::registry::{Access, DockerConfig};

use crate::cli::{CreateArgs, Format, InspectArgs, PackageCommand, PublishArgs, PullArgs, VerifyArgs};
use crate::progress::Progress;

/// Runs a `package` command.
pub fn run(command: PackageCommand) -> anyhow::Result<()> {
    match command {
        PackageCommand::Create(args) => create_package(args),
        PackageCommand::Inspect(args) => inspect_package(args),
        PackageCommand::Verify(args) => verify_package(args),
        PackageCommand::Publish(args) => publish_package(args),
        PackageCommand::Pull(args) => pull_package(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// How to reach registries: the user's docker config (`$DOCKER_CONFIG` or `~/.docker`) and the
/// registries named insecure on the command line.
fn access(insecure: Vec<String>) -> anyhow::Result<Access> {
    Ok(Access {
        credentials: DockerConfig::load_default()?,
        insecure,
    })
}

fn read_key(path: Option<&std::path::PathBuf>) -> anyhow::Result<Option<String>> {
    path.map(|path| {
        std::fs::read_to_string(path).with_context(|| format!("failed to read key {}", path.display()))
    })
    .transpose()
}

fn create_package(args: CreateArgs) -> anyhow::Result<()> {
    let options = CreateOptions {
        source: args.directory,
        output: args.output,
        architecture: args.architecture,
        flavor: args.flavor,
        set: args.set.into_iter().collect::<BTreeMap<_, _>>(),
        signing_key: read_key(args.signing_key.as_ref())?,
        images: ImageOptions {
            architecture: String::new(),
            registry_overrides: args.registry_overrides,
            access: access(args.insecure_registries)?,
        },
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let progress = Progress::new();
    let created = runtime()?.block_on(create(&options, &progress));
    progress.finish();
    let created = created?;
    eprintln!(
        "created {} ({}, {} images, {} components)",
        created.path.display(),
        human(created.size),
        created.images.len(),
        created.definition.components.len()
    );
    println!("{}", created.path.display());
    Ok(())
}

fn inspect_package(args: InspectArgs) -> anyhow::Result<()> {
    let options = VerifyOptions {
        public_key: read_key(args.key.as_ref())?,
        ..VerifyOptions::default()
    };
    let inspection = if args.package.starts_with(jackal_core::oci::url::SCHEME) {
        let url = OciUrl::parse(&args.package)?;
        // In a registry: only the metadata and image manifests are downloaded.
        let scratch = std::env::temp_dir().join(format!("jackal-inspect-{}", std::process::id()));
        let progress = Progress::new();
        let inspected = runtime()?.block_on(oci::inspect_remote(
            &url,
            &access(args.insecure_registries)?,
            &options,
            &scratch,
            &progress,
        ));
        progress.finish();
        inspected?
    } else {
        inspect(std::path::Path::new(&args.package), &options)?
    };
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&inspection)?),
        Format::Yaml => print!(
            "{}",
            serde_saphyr::to_string(&inspection).context("failed to render YAML")?
        ),
        Format::Text => print_text(&inspection),
    }
    Ok(())
}

fn verify_package(args: VerifyArgs) -> anyhow::Result<()> {
    let options = VerifyOptions {
        public_key: read_key(args.key.as_ref())?,
        skip_signature: args.skip_signature,
        partial: args.partial,
    };
    // One streaming pass over the file: nothing is unpacked.
    let verified = verify_file(&args.package, &options, |_, _| false)?.verified;
    eprintln!(
        "{}: {} files match their checksums{}",
        args.package.display(),
        verified.files,
        if verified.signature_checked {
            "; signature verified"
        } else {
            ""
        }
    );
    Ok(())
}

fn publish_package(args: PublishArgs) -> anyhow::Result<()> {
    let target = OciUrl::parse_namespace(&args.target)?;
    let access = access(args.insecure_registries)?;
    let progress = Progress::new();
    let published = runtime()?.block_on(oci::publish(&args.package, &target, &access, &progress));
    progress.finish();
    let published = published?;
    eprintln!(
        "published {}@{} ({} blobs pushed, {} already there)",
        published.reference.without_scheme(),
        published.digest,
        published.pushed,
        published.skipped
    );
    println!("{}", published.reference);
    Ok(())
}

fn pull_package(args: PullArgs) -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("jackal-pull-{}", std::process::id()));
    let source = OciUrl::parse(&args.source)?;
    let access = access(args.insecure_registries)?;
    let progress = Progress::new();
    let pulled = runtime()?.block_on(oci::pull(
        &source,
        &args.output,
        &args.components,
        &access,
        &scratch,
        &progress,
    ));
    progress.finish();
    let pulled = pulled?;
    eprintln!(
        "pulled {} ({} files{})",
        pulled.path.display(),
        pulled.files,
        if pulled.partial { ", partial" } else { "" }
    );
    println!("{}", pulled.path.display());
    Ok(())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn print_text(inspection: &Inspection) {
    let metadata = &inspection.definition.metadata;
    println!(
        "package:     {} {}",
        metadata.name,
        metadata.version.as_deref().unwrap_or("")
    );
    if let Some(description) = &metadata.description {
        println!("description: {description}");
    }
    println!(
        "architecture: {}",
        metadata.architecture.as_deref().unwrap_or("?")
    );
    println!(
        "size:        {} ({} unpacked)",
        human(inspection.size),
        human(inspection.content_size)
    );
    println!("signature:   {:?}", inspection.signature);
    println!("\ncomponents:");
    for component in &inspection.components {
        let flags = match (component.required, component.default) {
            (true, _) => " (required)",
            (false, true) => " (default)",
            _ => "",
        };
        println!(
            "  {}{flags}: {} charts, {} manifest sets, {} files, {} images",
            component.name,
            component.charts.len(),
            component.manifests.len(),
            component.files,
            component.images.len()
        );
    }
    println!("\nimages:");
    for image in &inspection.images {
        println!("  {}  {}  {}", image.reference, image.digest, human(image.size));
    }
}
