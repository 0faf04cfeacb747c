//! A package's images relocated from its OCI artifact into a registry
//! (`jackal_core::package::oci::relocate`), against real distribution registries: into another
//! registry every blob streams once (and a second run sends nothing); into the registry that holds
//! the artifact every blob is mounted from the artifact's repository, so not one blob byte is
//! uploaded (the requests, seen through a recording proxy, hold no blob upload), and the images
//! keep their digests.

use std::sync::{Arc, Mutex};

use jackal_core::oci::OciUrl;
use jackal_core::package::oci::relocate;
use jackal_core::progress::Silent;
use jackal_core::registry::Access;
use jackal_tests::Scratch;
use jackal_tests::faulty_proxy::FaultyProxy;
use jackal_tests::registry::{ScratchRegistry, manifest_digest};

use crate::{create_ok, demo, publish_ok};

const IMAGE: &str = "docker.io/jackaldev/demo-web:1.0.0";

// The proxy runs on this runtime while the publish command blocks a worker: it needs a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_mounted_within_a_registry_and_streamed_between_registries() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-relocate")?;
    let package = create_ok(&demo(), &scratch.path().join("created"), &[])?;
    let holding = ScratchRegistry::start("relocate-holding").await?;
    let other = ScratchRegistry::start("relocate-other").await?;
    publish_ok(&package, &format!("oci://{}/packages", holding.address))?;
    let access = Access::default();

    // Into another registry: every blob streamed once; again, nothing is sent.
    let source: OciUrl = format!("oci://{}/packages/demo:1.0.0", holding.address).parse()?;
    let streamed = relocate(
        &source,
        &[],
        &other.address,
        &access,
        &scratch.path().join("a"),
        &Silent,
    )
    .await?;
    assert_eq!(streamed.len(), 1, "{streamed:?}");
    assert_eq!(streamed[0].image, IMAGE);
    assert_eq!(streamed[0].target, format!("{}/{IMAGE}", other.address));
    let first = &streamed[0].copied;
    assert!(
        first.pushed > 0 && first.bytes > 0 && first.mounted == 0,
        "{first:?}"
    );
    let again = relocate(
        &source,
        &[],
        &other.address,
        &access,
        &scratch.path().join("b"),
        &Silent,
    )
    .await?;
    let second = &again[0].copied;
    assert_eq!(
        (second.pushed, second.bytes, second.skipped),
        (0, 0, first.pushed),
        "{second:?}"
    );
    let digest = first.digest.clone().map(|digest| digest.to_string());
    assert_eq!(Some(manifest_digest(&streamed[0].target).await?), digest);

    // Within the registry that holds the artifact (both reached through a proxy that records the
    // requests): every blob mounted, none uploaded, the same digest.
    let requests = Arc::new(Mutex::new(Vec::new()));
    let recorded = requests.clone();
    let proxy = FaultyProxy::start(
        &holding.address,
        Box::new(move |method, path, _| {
            if let Ok(mut requests) = recorded.lock() {
                requests.push(format!("{method} {path}"));
            }
            false
        }),
    )
    .await?;
    let through_proxy: OciUrl = format!("oci://{}/packages/demo:1.0.0", proxy.address).parse()?;
    let mounted = relocate(
        &through_proxy,
        &[],
        &proxy.address,
        &access,
        &scratch.path().join("c"),
        &Silent,
    )
    .await?;
    let copied = &mounted[0].copied;
    assert_eq!(
        (copied.pushed, copied.bytes, copied.skipped),
        (0, 0, 0),
        "{copied:?}"
    );
    assert_eq!(copied.mounted, first.pushed, "every blob mounted: {copied:?}");
    let seen = requests
        .lock()
        .map(|requests| requests.clone())
        .unwrap_or_default();
    assert!(
        !seen.iter().any(|request| request.starts_with("PATCH ")
            || (request.starts_with("PUT ") && request.contains("/blobs/"))),
        "no blob was uploaded: {seen:#?}"
    );
    let mounts = seen
        .iter()
        .filter(|request| request.starts_with("POST ") && request.contains("/blobs/uploads/"))
        .count();
    assert_eq!(mounts, copied.mounted, "{seen:#?}");
    let target = format!("{}/{IMAGE}", holding.address);
    assert_eq!(Some(manifest_digest(&target).await?), digest);

    // An image the package does not hold is named.
    let missing = relocate(
        &source,
        &["docker.io/library/nginx:1.27".to_owned()],
        &other.address,
        &access,
        &scratch.path().join("d"),
        &Silent,
    )
    .await
    .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("the package holds no image docker.io/library/nginx:1.27"),
        "{missing}"
    );
    Ok(())
}
