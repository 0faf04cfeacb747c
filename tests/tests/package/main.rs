//! Packages end to end with the real `kubectl-jackal` binary and the connected-side registry:
//! create (images from the registry, OCI layouts and docker archives; local, Helm-repository and
//! OCI charts; manifests; files), inspect, verify, sign; an original example definition works
//! unchanged; bad definitions and hostile archives are refused with messages naming the culprit.

mod create;
mod credentials;
mod hostile;
mod oci;
mod platforms;
mod relocate;
mod signing;
mod sources;

use std::path::{Path, PathBuf};
use std::process::Output;

use jackal_tests::{connected_registry, jackal, repository_root};

/// The demo package's fixture directory.
fn demo() -> PathBuf {
    repository_root().join("tests/fixtures/packages/demo")
}

/// `kubectl jackal package create` of `directory` into `output` with the connected registry as
/// docker.io's mirror, plus `extra` arguments.
fn create(directory: &Path, output: &Path, extra: &[&str]) -> anyhow::Result<Output> {
    let registry = connected_registry();
    let mut args = vec![
        "package",
        "create",
        directory.to_str().unwrap_or_default(),
        "-o",
        output.to_str().unwrap_or_default(),
    ];
    let override_arg = format!("docker.io={registry}");
    args.extend(["--registry-override", &override_arg, "--set", "VERSION=1.0.0"]);
    args.extend(extra);
    jackal(&args)
}

/// Like [`create`], failing with the command's stderr unless it succeeds; returns the package path.
fn create_ok(directory: &Path, output: &Path, extra: &[&str]) -> anyhow::Result<PathBuf> {
    let result = create(directory, output, extra)?;
    let stderr = String::from_utf8_lossy(&result.stderr);
    anyhow::ensure!(result.status.success(), "package create failed:\n{stderr}");
    Ok(PathBuf::from(String::from_utf8(result.stdout)?.trim()))
}

/// `kubectl jackal package inspect PACKAGE -o json` as JSON.
fn inspect(package: &Path) -> anyhow::Result<serde_json::Value> {
    let result = jackal(&[
        "package",
        "inspect",
        package.to_str().unwrap_or_default(),
        "-o",
        "json",
    ])?;
    anyhow::ensure!(
        result.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    Ok(serde_json::from_slice(&result.stdout)?)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// sha256 of a file (hex).
fn sha256(path: &std::path::Path) -> anyhow::Result<String> {
    Ok(jackal_core::oci::Digest::of(&std::fs::read(path)?)
        .hex()
        .to_owned())
}

/// Runs `kubectl jackal ARGS`, failing with its stderr unless it succeeds; returns stdout and stderr.
fn run_ok(args: &[&str]) -> anyhow::Result<String> {
    let output = jackal(args)?;
    anyhow::ensure!(
        output.status.success(),
        "kubectl jackal {} failed:\n{}",
        args.join(" "),
        stderr(&output)
    );
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    ))
}

/// `kubectl jackal package publish PACKAGE TARGET`, failing unless it succeeds; returns its output.
fn publish_ok(package: &Path, target: &str) -> anyhow::Result<String> {
    run_ok(&["package", "publish", package.to_str().unwrap_or_default(), target])
}

/// Writes `DIR/NAME/jackal.yaml`: package NAME (version 0.1.0) with one required component
/// holding `images`; returns the directory.
fn images_definition(dir: &Path, name: &str, images: &[&str]) -> anyhow::Result<PathBuf> {
    let directory = dir.join(name);
    std::fs::create_dir_all(&directory)?;
    let list = images
        .iter()
        .map(|image| format!("\"{image}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        directory.join("jackal.yaml"),
        format!(
            "kind: JackalPackageConfig\nmetadata: {{name: {name}, version: 0.1.0}}\ncomponents:\n  - name: images\n    required: true\n    images: [{list}]\n"
        ),
    )?;
    Ok(directory)
}

/// The image blob digests inside a package file, sorted.
fn blobs_in(package: &Path) -> anyhow::Result<Vec<String>> {
    let listing = std::process::Command::new("tar")
        .arg("--zstd")
        .arg("-tf")
        .arg(package)
        .output()?;
    anyhow::ensure!(listing.status.success(), "tar: {}", stderr(&listing));
    let mut blobs: Vec<String> = String::from_utf8(listing.stdout)?
        .lines()
        .filter_map(|line| line.strip_prefix("images/blobs/sha256/"))
        .map(|hex| format!("sha256:{hex}"))
        .collect();
    blobs.sort();
    Ok(blobs)
}
