//! Multi-platform images: a tag resolves to the target platform's manifest alone; an image pinned
//! by its index digest keeps that index byte for byte (a sparse index holding only the target
//! platform), so the pinned digest still resolves; the package publishes and pulls back intact.

use std::process::Command;

use jackal_tests::images::write_test_layout;
use jackal_tests::{Scratch, connected_registry};

use crate::{blobs_in, create_ok, images_definition, inspect, publish_ok, run_ok, sha256, stderr};

/// Pushes the test layout's two-platform image to the connected registry; returns its reference
/// there, the index digest and the amd64 and arm64 manifest digests.
fn push_multiarch(scratch: &Scratch) -> anyhow::Result<(String, String, String, String)> {
    let layout_root = scratch.path().join("layout");
    let (layout, images) = write_test_layout(&layout_root)?;
    let image = images
        .iter()
        .find(|image| image.reference == "docker.io/jackaldev/multiarch:1.0")
        .ok_or_else(|| anyhow::anyhow!("the test layout has no multiarch image"))?;
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.blob_path(&image.digest))?)?;
    let child = |architecture: &str| {
        index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["platform"]["architecture"] == architecture)
            .and_then(|m| m["digest"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no {architecture} manifest in {index}"))
    };
    let target = format!(
        "{}/jackaldev/multiarch:{}",
        connected_registry(),
        std::process::id()
    );
    let copied = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{}", layout_root.display(), image.reference))
        .arg(format!("docker://{target}"))
        .output()?;
    anyhow::ensure!(copied.status.success(), "skopeo: {}", stderr(&copied));
    Ok((target, image.digest.to_string(), child("amd64")?, child("arm64")?))
}

#[tokio::test]
async fn multi_platform_images_keep_the_target_platform_and_pinned_indexes() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-platforms")?;
    let (tagged, index_digest, amd64, arm64) = push_multiarch(&scratch)?;
    let repository = tagged
        .rsplit_once(':')
        .map(|(repository, _)| repository)
        .unwrap_or(&tagged);
    let pinned = format!("{repository}@{index_digest}");

    for (architecture, wanted, other) in [("amd64", &amd64, &arm64), ("arm64", &arm64, &amd64)] {
        let directory = images_definition(
            scratch.path(),
            &format!("platforms-{architecture}"),
            &[&tagged, &pinned],
        )?;
        let package = create_ok(
            &directory,
            &scratch.path().join(format!("out-{architecture}")),
            &["--architecture", architecture],
        )?;
        let summary = inspect(&package)?;
        let digest_of = |reference: &str| {
            summary["images"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|image| image["reference"] == reference)
                .map(|image| {
                    let digest = image["digest"].as_str().unwrap_or_default().to_owned();
                    (digest, image["size"].as_u64().unwrap_or_default())
                })
                .ok_or_else(|| anyhow::anyhow!("no {reference} in {summary}"))
        };
        let (tag_digest, tag_size) = digest_of(&tagged)?;
        assert_eq!(
            &tag_digest, wanted,
            "a tag resolves to the {architecture} manifest"
        );
        let (pinned_digest, pinned_size) = digest_of(&pinned)?;
        assert_eq!(pinned_digest, index_digest, "the pinned index digest is kept");
        assert!(
            pinned_size > tag_size,
            "the index adds its own bytes: {pinned_size} vs {tag_size}"
        );

        let blobs = blobs_in(&package)?;
        assert!(
            blobs.contains(wanted) && blobs.contains(&index_digest),
            "{blobs:?}"
        );
        assert!(!blobs.contains(other), "the other platform stays out: {blobs:?}");

        // The sparse index survives the registry round trip, byte for byte.
        let target = format!("oci://{}/platforms-{}", connected_registry(), std::process::id());
        publish_ok(&package, &target)?;
        let pulled_dir = scratch.path().join(format!("pulled-{architecture}"));
        let output = run_ok(&[
            "package",
            "pull",
            &format!("{target}/platforms-{architecture}:0.1.0"),
            "-o",
            pulled_dir.to_str().unwrap_or_default(),
        ])?;
        let pulled = pulled_dir.join(package.file_name().unwrap_or_default());
        assert_eq!(sha256(&pulled)?, sha256(&package)?, "pulled {pulled:?}: {output}");
    }
    Ok(())
}
