//! Packages in a registry: published as an OCI artifact (a layer per file, image blobs their own
//! layers), pulled back bit for bit, inspected in place, partially pulled; bad references named.

use jackal_tests::{Scratch, connected_registry, http, jackal};

use crate::{create_ok, demo, inspect, publish_ok, run_ok, sha256, stderr};

#[tokio::test]
async fn packages_are_published_and_pulled_back_identical() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-oci")?;
    let package = create_ok(&demo(), &scratch.path().join("created"), &["--flavor", "full"])?;
    let registry = connected_registry();
    let namespace = format!("oci://{registry}/oci-test-{}", std::process::id());
    let published = publish_ok(&package, &namespace)?;
    let reference = format!("{namespace}/demo:1.0.0-full");
    assert!(
        published.contains(&reference) && published.contains("blobs pushed, 0 already there"),
        "{published}"
    );
    let again = publish_ok(&package, &namespace)?;
    assert!(
        again.contains("(0 blobs pushed, 13 already there)"),
        "republishing skips what the registry has: {again}"
    );

    // The artifact: a layer per file, titled, image blobs included; a Jackal config; annotations.
    let path = format!("/v2/oci-test-{}/demo/manifests/1.0.0-full", std::process::id());
    let manifest = http::get(
        &registry,
        &path,
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
    )
    .await?;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.body)?;
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.jackal.config.v1+json"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "1.0.0"
    );
    let titles: Vec<&str> = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["annotations"]["org.opencontainers.image.title"].as_str())
        .collect();
    assert_eq!(titles[0], "jackal.yaml");
    assert!(
        titles.contains(&"components/web.tar")
            && titles
                .iter()
                .filter(|t| t.starts_with("images/blobs/sha256/"))
                .count()
                >= 6,
        "{titles:?}"
    );
    assert!(
        manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|l| l["mediaType"] == "application/vnd.jackal.layer.v1.blob")
    );

    let pulled = scratch.path().join("pulled");
    let output = run_ok(&[
        "package",
        "pull",
        &reference,
        "-o",
        pulled.to_str().unwrap_or_default(),
    ])?;
    let pulled_file = pulled.join(package.file_name().unwrap_or_default());
    assert!(
        output.contains(pulled_file.to_str().unwrap_or_default()),
        "{output}"
    );
    assert_eq!(
        sha256(&pulled_file)?,
        sha256(&package)?,
        "the pulled package is bit-for-bit the published one"
    );

    let remote = jackal(&["package", "inspect", &reference, "-o", "json"])?;
    assert!(remote.status.success(), "{}", stderr(&remote));
    let summary: serde_json::Value = serde_json::from_slice(&remote.stdout)?;
    let local = inspect(&package)?;
    for field in ["images", "components", "definition", "signature"] {
        assert_eq!(summary[field], local[field], "remote inspect differs in {field}");
    }
    assert_eq!(summary["path"], reference.as_str(), "the source is the reference");
    // Only the metadata and image manifests are read: no "downloading N files" of the content.
    let steps = stderr(&remote);
    assert!(steps.contains("reading the metadata of"), "{steps}");
    assert!(
        !steps.contains("downloading"),
        "remote inspect downloaded the content:\n{steps}"
    );
    Ok(())
}

#[tokio::test]
async fn partial_pulls_fetch_only_what_components_need() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-partial")?;
    let package = create_ok(&demo(), &scratch.path().join("created"), &["--flavor", "full"])?;
    let namespace = format!(
        "oci://{}/partial-test-{}",
        connected_registry(),
        std::process::id()
    );
    publish_ok(&package, &namespace)?;
    let reference = format!("{namespace}/demo:1.0.0-full");
    let pulled = scratch.path().join("pulled");
    let output = run_ok(&[
        "package",
        "pull",
        &reference,
        "-o",
        pulled.to_str().unwrap_or_default(),
        "--components",
        "config",
    ])?;
    assert!(output.contains("partial"), "{output}");
    let partial = pulled.join("jackal-package-demo-amd64-1.0.0-full-partial-config.tar.zst");
    let unpacked = scratch.path().join("unpacked");
    jackal_core::package::archive::extract(&partial, &unpacked, &Default::default())?;
    assert!(
        unpacked.join("components/config.tar").exists() && unpacked.join("components/web.tar").exists(),
        "selected and required components"
    );
    assert!(
        !unpacked.join("components/registry.tar").exists(),
        "an unselected component was pulled"
    );
    let registry_layer = jackal_core::layout::Layout::new(unpacked.join("images"));
    let all = registry_layer.index()?;
    let registry_image = all
        .iter()
        .find(|d| {
            d.annotations
                .values()
                .any(|v| v == "docker.io/library/registry:3.1.2")
        })
        .ok_or_else(|| anyhow::anyhow!("index"))?;
    assert!(
        !registry_layer.blob_path(&registry_image.digest).exists(),
        "the unselected component's image was pulled"
    );
    assert!(std::fs::metadata(&partial)?.len() < std::fs::metadata(&package)?.len() / 3);

    let strict = jackal(&["package", "verify", partial.to_str().unwrap_or_default()])?;
    assert!(
        !strict.status.success() && stderr(&strict).contains("is listed in checksums.txt but missing"),
        "{}",
        stderr(&strict)
    );
    run_ok(&[
        "package",
        "verify",
        partial.to_str().unwrap_or_default(),
        "--partial",
    ])?;

    let unknown = jackal(&[
        "package",
        "pull",
        &reference,
        "-o",
        pulled.to_str().unwrap_or_default(),
        "--components",
        "nope",
    ])?;
    assert!(
        stderr(&unknown).contains("has no component nope (it has web, config, registry)"),
        "{}",
        stderr(&unknown)
    );
    let image = jackal(&[
        "package",
        "pull",
        &format!("oci://{}/jackaldev/demo-web:1.0.0", connected_registry()),
        "-o",
        pulled.to_str().unwrap_or_default(),
    ])?;
    assert!(
        stderr(&image).contains("is not a Jackal package"),
        "{}",
        stderr(&image)
    );
    let missing = jackal(&[
        "package",
        "pull",
        &format!("{namespace}/demo:9.9.9"),
        "-o",
        pulled.to_str().unwrap_or_default(),
    ])?;
    assert!(
        !missing.status.success() && stderr(&missing).contains("demo:9.9.9"),
        "{}",
        stderr(&missing)
    );
    Ok(())
}

#[tokio::test]
async fn unversioned_packages_cannot_be_published() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-unversioned")?;
    let directory = scratch.path().join("definition");
    std::fs::create_dir_all(&directory)?;
    std::fs::write(
        directory.join("jackal.yaml"),
        "kind: JackalPackageConfig\nmetadata:\n  name: unversioned\ncomponents:\n  - name: empty\n    required: true\n",
    )?;
    let package = create_ok(&directory, &scratch.path().join("out"), &[])?;
    let result = jackal(&[
        "package",
        "publish",
        package.to_str().unwrap_or_default(),
        &format!("oci://{}/x", connected_registry()),
    ])?;
    assert!(
        stderr(&result).contains("the package has no version: set metadata.version to publish it"),
        "{}",
        stderr(&result)
    );
    let target = jackal(&[
        "package",
        "publish",
        package.to_str().unwrap_or_default(),
        "https://registry.example.com/x",
    ])?;
    assert!(
        stderr(&target).contains("is not an oci:// reference"),
        "{}",
        stderr(&target)
    );
    Ok(())
}

/// Blob uploads end with a `PUT` to their upload URL; the proxy fails some of those.
fn is_blob_commit(method: &hyper::Method, path: &str) -> bool {
    method == hyper::Method::PUT && path.contains("/blobs/uploads/")
}

// The proxy runs on this runtime while the command blocks a worker: it needs a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_uploads_are_retried_and_a_failed_publish_tags_nothing() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use jackal_tests::faulty_proxy::FaultyProxy;

    let scratch = Scratch::new("package-retry")?;
    let package = create_ok(&demo(), &scratch.path().join("created"), &[])?;
    let registry = connected_registry();
    let namespace = format!("retry-test-{}", std::process::id());

    // Every other blob commit fails, six times in all: the metadata retries in place, the
    // streamed files in a second pass over the archive.
    let commits = Arc::new(AtomicUsize::new(0));
    let counter = commits.clone();
    let flaky = FaultyProxy::start(
        &registry,
        Box::new(move |method, path, _| {
            if !is_blob_commit(method, path) {
                return false;
            }
            let number = counter.fetch_add(1, Ordering::SeqCst);
            number % 2 == 1 && number < 12
        }),
    )
    .await?;
    let published = publish_ok(&package, &format!("oci://{}/{namespace}", flaky.address))?;
    assert_eq!(flaky.failed(), 6, "{published}");
    assert!(
        published.contains("retrying"),
        "a second pass retried: {published}"
    );
    let pulled = scratch.path().join("pulled");
    run_ok(&[
        "package",
        "pull",
        &format!("oci://{registry}/{namespace}/demo:1.0.0"),
        "-o",
        pulled.to_str().unwrap_or_default(),
    ])?;
    let pulled = pulled.join(package.file_name().unwrap_or_default());
    assert_eq!(
        sha256(&pulled)?,
        sha256(&package)?,
        "the retried publish is intact"
    );

    // A registry that never accepts a blob: the publish fails, naming the file (the metadata goes
    // first, checksums.txt before jackal.yaml), and no tag points at a partial artifact.
    let broken = FaultyProxy::start(
        &registry,
        Box::new(|method, path, _| is_blob_commit(method, path)),
    )
    .await?;
    let failing = format!("{namespace}-broken");
    let result = jackal(&[
        "package",
        "publish",
        package.to_str().unwrap_or_default(),
        &format!("oci://{}/{failing}", broken.address),
    ])?;
    let message = stderr(&result);
    assert!(
        !result.status.success() && message.contains("checksums.txt") && message.contains("injected failure"),
        "{message}"
    );
    assert!(
        !message.contains("_state"),
        "upload session state is not shown: {message}"
    );
    let manifest = http::get(&registry, &format!("/v2/{failing}/demo/manifests/1.0.0"), &[]).await?;
    assert_eq!(manifest.status, 404, "nothing was tagged: {}", manifest.text());
    Ok(())
}
