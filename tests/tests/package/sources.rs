//! Where package content can come from: images from an OCI layout and a `docker save` archive
//! (and stored once however many references share them), charts from a Helm repository (served
//! over HTTP on loopback), from an OCI registry and from a local archive, files downloaded and
//! checked against their pins, and an original example definition used unchanged.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jackal_core::package::sources::package_chart_directory;
use jackal_tests::{Scratch, connected_registry, http, injector, registry, testbed_dir};

use crate::{blobs_in, create_ok, demo, images_definition, inspect, publish_ok, run_ok, sha256, stderr};

/// A static HTTP server on loopback (python's), killed when dropped.
struct StaticServer(Child, String);

impl StaticServer {
    async fn start(directory: &std::path::Path) -> anyhow::Result<Self> {
        let port = injector::free_port()?;
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
                &directory.to_string_lossy(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Self(child, format!("127.0.0.1:{port}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while http::get(&server.1, "/", &[]).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the static server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn images_of(summary: &serde_json::Value) -> Vec<(String, String)> {
    summary["images"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|image| {
            (
                image["reference"].as_str().unwrap_or_default().to_owned(),
                image["digest"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn images_come_from_layouts_and_docker_archives() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-archives")?;
    let layout = testbed_dir().join("images/layout");
    let docker = scratch.path().join("pause-docker.tar");
    let copied = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            &format!("oci:{}:registry.k8s.io/pause:3.10", layout.display()),
        ])
        .arg(format!(
            "docker-archive:{}:registry.k8s.io/pause:3.10",
            docker.display()
        ))
        .output()?;
    anyhow::ensure!(copied.status.success(), "skopeo: {}", stderr(&copied));
    let directory = scratch.path().join("definition");
    std::fs::create_dir_all(&directory)?;
    std::fs::write(
        directory.join("jackal.yaml"),
        format!(
            "kind: JackalPackageConfig\nmetadata:\n  name: archives\n  version: 0.1.0\ncomponents:\n  - name: images\n    required: true\n    imageArchives:\n      - path: {}\n        images: [docker.io/jackaldev/demo-web:1.0.0]\n      - path: {}\n        images: [registry.k8s.io/pause:3.10]\n",
            layout.display(),
            docker.display()
        ),
    )?;
    let package = create_ok(&directory, &scratch.path().join("out"), &[])?;
    let images = images_of(&inspect(&package)?);
    let expected_web = jackal_core::layout::Layout::new(&layout)
        .find("docker.io/jackaldev/demo-web:1.0.0")?
        .digest
        .to_string();
    assert!(
        images.contains(&("docker.io/jackaldev/demo-web:1.0.0".into(), expected_web)),
        "the layout's digest is kept: {images:?}"
    );
    assert!(
        images
            .iter()
            .any(|(reference, _)| reference == "registry.k8s.io/pause:3.10"),
        "{images:?}"
    );

    // An image the archive does not hold is named.
    std::fs::write(
        directory.join("jackal.yaml"),
        format!(
            "kind: JackalPackageConfig\nmetadata: {{name: archives}}\ncomponents:\n  - name: images\n    imageArchives:\n      - path: {}\n        images: [docker.io/library/absent:1]\n",
            docker.display()
        ),
    )?;
    let result = crate::create(&directory, &scratch.path().join("out2"), &[])?;
    assert!(
        stderr(&result).contains("image docker.io/library/absent:1 is not in"),
        "{}",
        stderr(&result)
    );
    Ok(())
}

#[tokio::test]
async fn charts_come_from_helm_repositories_and_oci_registries() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-charts")?;
    // A Helm repository: index.yaml and the packaged chart, served over HTTP.
    let repository = scratch.path().join("repository");
    std::fs::create_dir_all(&repository)?;
    let chart = package_chart_directory(&demo().join("chart"), &repository)?;
    // A Helm repository index gives the chart's sha256 as bare hex.
    let digest = jackal_core::package::checksums::file_sha256(&chart)?
        .hex()
        .to_owned();
    std::fs::write(
        repository.join("index.yaml"),
        format!(
            "apiVersion: v1\nentries:\n  demo-web:\n    - name: demo-web\n      version: 1.0.0\n      digest: {digest}\n      urls: [demo-web-1.0.0.tgz]\n    - name: demo-web\n      version: 0.9.0\n      urls: [old.tgz]\ngenerated: \"2026-11-25T00:00:00Z\"\n"
        ),
    )?;
    let server = StaticServer::start(&repository).await?;
    registry::push_chart(
        &format!("{}/charts/demo-web:1.0.0", connected_registry()),
        std::fs::read(&chart)?,
    )
    .await?;

    // The demo package (images, a local chart, manifests, files) plus a component whose charts
    // come from the Helm repository and from the OCI registry.
    let directory = scratch.path().join("definition");
    copy_directory(&demo(), &directory)?;
    let definition = std::fs::read_to_string(directory.join("jackal.yaml"))?;
    let charts = format!(
        "components:\n  - name: charts\n    required: true\n    charts:\n      - name: from-repository\n        repoName: demo-web\n        url: http://{}\n        version: 1.0.0\n        namespace: demo\n      - name: from-oci\n        url: oci://{}/charts/demo-web\n        version: 1.0.0\n        namespace: demo\n",
        server.1,
        connected_registry()
    );
    std::fs::write(
        directory.join("jackal.yaml"),
        definition.replacen("components:\n", &charts, 1),
    )?;
    let package = create_ok(&directory, &scratch.path().join("out"), &[])?;
    let summary = inspect(&package)?;
    let charts_component = summary["components"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|component| component["name"] == "charts")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        charts_component["charts"],
        serde_json::json!(["from-repository", "from-oci"]),
        "inspect lists the charts: {summary}"
    );
    let unpacked = scratch.path().join("unpacked");
    jackal_core::package::archive::extract(&package, &unpacked, &Default::default())?;
    let component = scratch.path().join("component");
    jackal_core::package::archive::extract(
        &unpacked.join("components/charts.tar"),
        &component,
        &Default::default(),
    )?;
    for name in ["from-repository", "from-oci"] {
        let stored = component.join(format!("charts/{name}.tgz"));
        assert_eq!(
            jackal_core::package::checksums::file_sha256(&stored)?.hex(),
            digest,
            "{name} is the chart that was published"
        );
    }
    for content in ["components/web.tar", "components/config.tar", "images/index.json"] {
        assert!(unpacked.join(content).is_file(), "the package lacks {content}");
    }

    // Published and pulled back: the same bytes, and it verifies.
    let namespace = format!(
        "oci://{}/charts-test-{}",
        connected_registry(),
        std::process::id()
    );
    publish_ok(&package, &namespace)?;
    let pulled = scratch.path().join("pulled");
    run_ok(&[
        "package",
        "pull",
        &format!("{namespace}/demo:1.0.0"),
        "-o",
        pulled.to_str().unwrap_or_default(),
    ])?;
    let pulled_file = pulled.join(package.file_name().unwrap_or_default());
    assert_eq!(sha256(&pulled_file)?, sha256(&package)?, "pulled bit for bit");
    run_ok(&["package", "verify", pulled_file.to_str().unwrap_or_default()])?;

    // A version the repository does not have is named with what it has.
    std::fs::write(
        directory.join("jackal.yaml"),
        format!(
            "kind: JackalPackageConfig\nmetadata: {{name: charts}}\ncomponents:\n  - name: charts\n    charts:\n      - {{name: demo-web, url: 'http://{}', version: 2.0.0, namespace: demo}}\n",
            server.1
        ),
    )?;
    let result = crate::create(&directory, &scratch.path().join("out2"), &[])?;
    assert!(
        stderr(&result).contains("has no version 2.0.0 of demo-web (it has 1.0.0, 0.9.0)"),
        "{}",
        stderr(&result)
    );
    Ok(())
}

#[tokio::test]
async fn an_original_example_definition_works_unchanged() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-original")?;
    // The example's image, mirrored on the connected side as ghcr.io would serve it.
    let registry = connected_registry();
    let digest = registry::copy_image(
        &format!("{registry}/jackaldev/demo-web:1.0.0"),
        &format!("{registry}/zarf-dev/doom-game:0.0.1"),
    )
    .await?;
    let example = jackal_tests::repository_root().join("tests/fixtures/packages/original-example");
    let override_ghcr = format!("ghcr.io={registry}");
    let package = create_ok(&example, scratch.path(), &["--registry-override", &override_ghcr])?;
    assert_eq!(
        package.file_name().and_then(|n| n.to_str()),
        Some("jackal-package-dos-games-amd64-1.0.0.tar.zst")
    );
    let summary = inspect(&package)?;
    assert_eq!(
        images_of(&summary),
        [("ghcr.io/zarf-dev/doom-game:0.0.1".to_owned(), digest)]
    );
    let component = &summary["definition"]["components"][0];
    assert_eq!(
        component["actions"]["onDeploy"]["after"][0]["wait"]["cluster"]["condition"], "available",
        "actions are carried"
    );
    assert_eq!(
        summary["definition"]["build"]["registryOverrides"]["ghcr.io"],
        registry.as_str()
    );
    Ok(())
}

/// Copies the directory tree `from` to `to` (regular files and directories).
fn copy_directory(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_directory(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn downloaded_files_and_chart_archives_are_pinned_and_kept() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-files")?;
    let served = scratch.path().join("served");
    std::fs::create_dir_all(&served)?;
    std::fs::write(served.join("tool.sh"), "#!/bin/sh\necho tool 1.0\n")?;
    let tool_sha = sha256(&served.join("tool.sh"))?;
    let server = StaticServer::start(&served).await?;

    let directory = scratch.path().join("definition");
    std::fs::create_dir_all(&directory)?;
    let chart = package_chart_directory(&demo().join("chart"), &directory)?;
    let chart_name = chart
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let write = |shasum: &str| {
        std::fs::write(
            directory.join("jackal.yaml"),
            format!(
                "kind: JackalPackageConfig\nmetadata: {{name: inputs, version: 0.1.0}}\ncomponents:\n  - name: tools\n    required: true\n    files:\n      - source: http://{}/tool.sh\n        shasum: {shasum}\n        target: bin/tool.sh\n        executable: true\n    charts:\n      - name: packed\n        localPath: {chart_name}\n        namespace: demo\n",
                server.1
            ),
        )
    };
    write(&tool_sha)?;
    let package = create_ok(&directory, &scratch.path().join("out"), &[])?;
    let summary = inspect(&package)?;
    assert_eq!(summary["components"][0]["files"], 1, "{summary}");
    assert_eq!(
        summary["components"][0]["charts"],
        serde_json::json!(["packed"]),
        "{summary}"
    );
    let unpacked = scratch.path().join("unpacked");
    jackal_core::package::archive::extract(&package, &unpacked, &Default::default())?;
    let component = scratch.path().join("component");
    jackal_core::package::archive::extract(
        &unpacked.join("components/tools.tar"),
        &component,
        &Default::default(),
    )?;
    assert_eq!(
        sha256(&component.join("files/0/tool.sh"))?,
        tool_sha,
        "the downloaded file is kept"
    );
    assert_eq!(
        sha256(&component.join("charts/packed.tgz"))?,
        sha256(&chart)?,
        "a local chart archive is kept as it is"
    );

    // A download that does not match its pin is refused, naming it, and no package is written.
    let wrong = "0".repeat(64);
    write(&wrong)?;
    let out = scratch.path().join("out-wrong");
    let result = crate::create(&directory, &out, &[])?;
    let message = stderr(&result);
    assert!(
        !result.status.success()
            && message.contains(&format!("http://{}/tool.sh", server.1))
            && message.contains(&format!("the definition pins {wrong}")),
        "{message}"
    );
    assert!(
        std::fs::read_dir(&out)
            .map(|entries| entries.count())
            .unwrap_or(0)
            == 0,
        "nothing is written after a refused download"
    );
    Ok(())
}

#[tokio::test]
async fn images_shared_by_two_references_are_stored_once() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-dedupe")?;
    let registry_address = connected_registry();
    let original = format!("{registry_address}/jackaldev/demo-web:1.0.0");
    let copy = format!("{registry_address}/dedupe-{}/demo-web:1.0.0", std::process::id());
    registry::copy_image(&original, &copy).await?;
    let package_of = |name: &str, images: &[&str]| -> anyhow::Result<Vec<String>> {
        let directory = images_definition(scratch.path(), name, images)?;
        blobs_in(&create_ok(
            &directory,
            &scratch.path().join(format!("out-{name}")),
            &[],
        )?)
    };
    let one = package_of("one", &[&original])?;
    let two = package_of("two", &[&original, &copy])?;
    assert!(!one.is_empty());
    assert_eq!(one, two, "the second reference adds no blob");
    Ok(())
}
