//! Helpers on the connected-side registry: copy an image to another name (cross-repository blob
//! mounts, as registries do), push a Helm chart as an OCI artifact, read a manifest digest.

use anyhow::Context;
use oci_client::Reference;
use oci_client::client::{Config, ImageLayer};
use oci_client::secrets::RegistryAuth;

fn client(registry: &str) -> oci_client::Client {
    jackal_core::registry::client(&[registry.to_owned()], &[])
}

/// The manifest digest `reference` resolves to.
pub async fn manifest_digest(reference: &str) -> anyhow::Result<String> {
    let parsed: Reference = reference.parse()?;
    let client = client(parsed.registry());
    let (_, digest) = client
        .pull_manifest_raw(
            &parsed,
            &RegistryAuth::Anonymous,
            &[
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ],
        )
        .await?;
    Ok(digest)
}

/// Copies `source` to `target` in the same registry (blobs mounted, manifest bytes unchanged).
pub async fn copy_image(source: &str, target: &str) -> anyhow::Result<String> {
    let source: Reference = source.parse()?;
    let target: Reference = target.parse()?;
    let client = client(source.registry());
    let auth = RegistryAuth::Anonymous;
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    let (bytes, digest) = client.pull_manifest_raw(&source, &auth, &[media_type]).await?;
    client.store_auth_if_needed(target.registry(), &auth).await;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes)?;
    let mut blobs = vec![
        manifest["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ];
    blobs.extend(
        manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|layer| layer["digest"].as_str().map(str::to_owned)),
    );
    for blob in blobs {
        client
            .mount_blob(&target, &source, &blob)
            .await
            .with_context(|| format!("mounting {blob}"))?;
    }
    client
        .push_manifest_raw(&target, bytes.to_vec(), media_type.parse()?)
        .await?;
    Ok(digest)
}

/// Pushes a packaged chart (`.tgz`) as a Helm OCI artifact to `reference`.
pub async fn push_chart(reference: &str, chart: Vec<u8>) -> anyhow::Result<()> {
    let parsed: Reference = reference.parse()?;
    let client = client(parsed.registry());
    let layer = ImageLayer::new(
        chart,
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip".into(),
        None,
    );
    let config = Config::new(
        br#"{"name":"demo-web","version":"1.0.0","apiVersion":"v2"}"#.to_vec(),
        "application/vnd.cncf.helm.config.v1+json".into(),
        None,
    );
    client
        .push(&parsed, &[layer], config, &RegistryAuth::Anonymous, None)
        .await?;
    Ok(())
}

/// A distribution registry of its own (the testbed's `registry` binary) on a free loopback port,
/// storing into a scratch directory; stopped and removed when dropped. For tests that need a
/// registry nothing else has written to.
pub struct ScratchRegistry {
    /// `127.0.0.1:PORT`.
    pub address: String,
    child: std::process::Child,
    _storage: crate::Scratch,
}

impl ScratchRegistry {
    /// Starts one and waits until it answers.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let storage = crate::Scratch::new(&format!("registry-{name}"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let address = format!("127.0.0.1:{port}");
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )?;
        let binary = crate::testbed_dir().join("bin/registry");
        let child = std::process::Command::new(&binary)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(storage.path().join("registry.log"))?)
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let registry = Self {
            address,
            child,
            _storage: storage,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !crate::http::get(&registry.address, "/v2/", &[])
            .await
            .is_ok_and(|response| response.status == 200)
        {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the registry at {} did not answer",
                registry.address
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(registry)
    }
}

impl Drop for ScratchRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
