//! Real clients pull every image from the injector: skopeo (copying with digests preserved) and
//! containerd's ctr (pulling and unpacking over plain HTTP).

use std::process::Command;

use anyhow::Context;
use jackal_core::oci::Digest;
use jackal_tests::injector::Injector;
use jackal_tests::testbed_dir;

use crate::Fixture;

fn sha256(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
}

fn run(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("failed to run {command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// The repository path an image is served under (`docker.io/jackaldev/web:1.0` → `jackaldev/web:1.0`).
fn served(reference: &str) -> &str {
    reference.split_once('/').map_or(reference, |(_, rest)| rest)
}

#[tokio::test]
async fn skopeo_copies_every_image_with_its_digests() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-skopeo")?;
    let injector = Injector::start(&fixture.chunks(), fixture.summary.digest.as_str()).await?;
    for image in &fixture.images {
        let source = format!("docker://{}/{}", injector.address, served(&image.reference));
        let raw = run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &source]))?;
        assert_eq!(
            sha256(raw.as_bytes()),
            image.digest,
            "{}: manifest digest",
            image.reference
        );

        let target = fixture
            .scratch
            .path()
            .join(format!("copy-{}", image.digest.hex()));
        run(Command::new("skopeo").args([
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            &source,
            &format!("dir:{}", target.display()),
        ]))?;
        // Every blob arrived, each file hashing to its own name.
        for blob in &image.blobs {
            let hex = blob.digest.hex();
            let file = if blob.digest == image.digest {
                target.join("manifest.json")
            } else if jackal_core::oci::media_type::is_manifest(&blob.media_type) {
                target.join(format!("{hex}.manifest.json"))
            } else {
                target.join(hex)
            };
            let bytes = std::fs::read(&file)
                .with_context(|| format!("{}: {} missing", image.reference, file.display()))?;
            assert_eq!(
                sha256(&bytes),
                blob.digest,
                "{}: {}",
                image.reference,
                file.display()
            );
        }
    }
    assert!(
        injector
            .log()
            .contains("GET /v2/jackaldev/multilayer/manifests/1.0 200"),
        "log:\n{}",
        injector.log()
    );
    Ok(())
}

#[tokio::test]
async fn containerd_pulls_and_unpacks_every_image() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-ctr")?;
    let injector = Injector::start(&fixture.chunks(), fixture.summary.digest.as_str()).await?;
    let socket = testbed_dir().join("containerd/containerd.sock");
    anyhow::ensure!(
        socket.exists(),
        "the test cluster's containerd is not running ({})",
        socket.display()
    );
    let namespace = format!("jackal-injector-test-{}", std::process::id());
    let ctr = || {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(&socket)
            .args(["--namespace", &namespace]);
        command
    };
    let result = async {
        for image in &fixture.images {
            let reference = format!("{}/{}", injector.address, served(&image.reference));
            run(ctr().args(["images", "pull", "--plain-http", "--all-platforms", &reference]))?;
            let listing = run(ctr().args(["images", "list"]))?;
            let line = listing
                .lines()
                .find(|line| line.starts_with(&reference))
                .context("image not listed")?;
            assert!(
                line.contains(image.digest.as_str()),
                "{reference}: expected {} in {line}",
                image.digest
            );
            run(ctr().args(["images", "check"]))?;
        }
        anyhow::Ok(())
    }
    .await;
    // Clean up the namespace whatever happened.
    let listing = run(ctr().args(["images", "list", "--quiet"])).unwrap_or_default();
    for reference in listing.lines() {
        let _ = run(ctr().args(["images", "remove", "--sync", reference]));
    }
    let _ = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["namespaces", "remove", &namespace])
        .output();
    result
}
