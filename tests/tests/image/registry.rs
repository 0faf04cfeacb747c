//! The connected registry holds the operator image this checkout built, and what it serves is the
//! image `images/operator.env` defines: non-root user, entrypoint and command, OCI labels, and one
//! layer with exactly the listed files, the binaries static executables.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, ensure};
use flate2::read::GzDecoder;
use jackal_core::oci::Digest;
use jackal_tests::{connected_registry, http};
use serde_json::Value;

use crate::{Definition, built, require_static_executable};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `GET` a blob of `repository` from the connected registry, checked against its digest.
async fn blob(repository: &str, digest: &str) -> anyhow::Result<Vec<u8>> {
    let response = http::get(
        &connected_registry(),
        &format!("/v2/{repository}/blobs/{digest}"),
        &[],
    )
    .await?;
    ensure!(
        response.status == 200,
        "blob {digest}: status {}",
        response.status
    );
    let actual = Digest::of(&response.body).to_string();
    ensure!(actual == digest, "blob {digest} hashes to {actual}");
    Ok(response.body)
}

#[tokio::test]
async fn connected_registry_holds_the_operator_image_as_defined() -> anyhow::Result<()> {
    let definition = Definition::read()?;
    let built = built()?;
    let registry = connected_registry();
    let repository = built
        .reference
        .split_once(':')
        .map(|(name, _)| name.trim_start_matches("docker.io/"))
        .context("reference without a tag")?
        .to_owned();
    let tag = env!("CARGO_PKG_VERSION");

    let response = http::get(
        &registry,
        &format!("/v2/{repository}/manifests/{tag}"),
        &[("Accept", OCI_MANIFEST)],
    )
    .await?;
    ensure!(
        response.status == 200,
        "{registry}/{repository}:{tag} is not in the connected registry (status {}): \
         `scripts/operator-image push` (or `testbed/cluster up`) puts it there",
        response.status
    );
    assert_eq!(
        response.header("docker-content-digest"),
        Some(built.digest.as_str()),
        "the connected registry holds another build of {}: `scripts/operator-image push`",
        built.reference
    );
    let manifest: Value = serde_json::from_slice(&response.body)?;
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    let layers = manifest["layers"].as_array().context("manifest without layers")?;
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    assert_eq!(layers[0]["mediaType"], OCI_LAYER);

    // The configuration: who it runs as, how it starts, what it says about itself.
    let config_digest = manifest["config"]["digest"].as_str().context("no config")?;
    let config: Value = serde_json::from_slice(&blob(&repository, config_digest).await?)?;
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let settings = &config["config"];
    assert_eq!(settings["User"], definition.get("IMAGE_USER")?);
    assert_eq!(settings["User"], "65532:65532", "non-root");
    assert_eq!(
        settings["Entrypoint"],
        serde_json::json!([definition.get("IMAGE_ENTRYPOINT")?])
    );
    assert_eq!(settings["Entrypoint"], serde_json::json!(["/jackal-operator"]));
    assert_eq!(settings["Cmd"], serde_json::json!([definition.get("IMAGE_CMD")?]));
    let labels = &settings["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.title"],
        definition.get("IMAGE_TITLE")?
    );
    assert_eq!(labels["org.opencontainers.image.version"], tag);
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|source| source.starts_with("https://")),
        "source label: {labels}"
    );
    assert!(
        labels["org.opencontainers.image.revision"]
            .as_str()
            .is_some_and(|revision| !revision.is_empty()),
        "revision label: {labels}"
    );

    // The layer: exactly the defined files (and their directories), binaries static.
    let layer_digest = layers[0]["digest"].as_str().context("layer without digest")?;
    let layer = blob(&repository, layer_digest).await?;
    let mut archive = tar::Archive::new(GzDecoder::new(layer.as_slice()));
    let mut files = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = format!("/{}", entry.path()?.display());
        let header = entry.header();
        let (kind, mode, owner) = (
            header.entry_type(),
            header.mode()?,
            (header.uid()?, header.gid()?),
        );
        assert_eq!(owner, (0, 0), "{path} is owned by root");
        if kind.is_dir() {
            continue;
        }
        assert!(kind.is_file(), "{path} is a regular file, not {kind:?}");
        let mut content = Vec::new();
        entry.read_to_end(&mut content)?;
        files.insert(path, (mode, content));
    }
    let expected = definition.files()?;
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        {
            let mut paths: Vec<_> = expected.iter().map(|(_, path, _)| path).collect();
            paths.sort();
            paths
        },
        "the layer holds exactly the defined files (no shell, no package manager)"
    );
    for (source, path, mode) in &expected {
        let (actual_mode, content) = &files[path];
        assert_eq!(actual_mode & 0o7777, *mode, "mode of {path}");
        if source == "ca-certificates" {
            assert!(
                String::from_utf8_lossy(content).contains("BEGIN CERTIFICATE"),
                "{path} holds certificates"
            );
        } else {
            require_static_executable(Path::new(path), content)?;
        }
    }
    for binary in ["/jackal-operator", "/jackal-injector"] {
        assert!(files.contains_key(binary), "{binary} is in the image");
    }
    Ok(())
}
