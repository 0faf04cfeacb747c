//! Jackal's own image copy (`jackal_core::registry::copy`), as bootstrap uses it: from the real
//! injector into a registry that demands a login (the connected registry behind a proxy asking for
//! basic auth). Every image arrives under the same digest, a second copy uploads nothing, and
//! without credentials the copy fails as unauthorized, naming the image.

use jackal_core::registry::copy::copy_image;
use jackal_core::registry::{Access, Categorize, DockerConfig, ErrorCategory};
use jackal_tests::faulty_proxy::FaultyProxy;
use jackal_tests::injector::Injector;
use jackal_tests::{connected_registry, registry};

use crate::Fixture;

const USER: &str = "jackal-push";
const PASSWORD: &str = "copy-test-password-0815";

// The proxy and the injector's client share this runtime with the copy: give it two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_copied_from_the_injector_with_their_digests_and_only_once() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-copy")?;
    let injector = Injector::start(&fixture.chunks(), fixture.summary.digest.as_str()).await?;
    let proxy = FaultyProxy::requiring_basic_auth(&connected_registry(), USER, PASSWORD).await?;
    let access = Access {
        credentials: DockerConfig::with_basic(&proxy.address, USER, PASSWORD),
        insecure: Vec::new(),
    };
    let namespace = format!("jackal-copy-{}", std::process::id());
    for image in &fixture.images {
        let path = image
            .reference
            .strip_prefix("docker.io/")
            .unwrap_or(&image.reference);
        let source = format!("{}/{}", injector.address, image.reference).parse()?;
        let target = format!("{}/{namespace}/{path}", proxy.address).parse()?;
        let copied = copy_image(&source, &target, &access).await?;
        assert_eq!(copied.digest.as_ref(), Some(&image.digest), "{}", image.reference);
        assert!(copied.pushed > 0, "{}: {copied:?}", image.reference);
        // The registry itself (behind the proxy) resolves the tag to the same digest.
        let stored = registry::manifest_digest(&format!("{}/{namespace}/{path}", connected_registry())).await;
        if !image.media_type.contains("index") {
            assert_eq!(stored?, image.digest.as_str(), "{}", image.reference);
        }
        let again = copy_image(&source, &target, &access).await?;
        assert_eq!(
            (again.pushed, again.bytes),
            (0, 0),
            "{}: a second copy uploads nothing",
            image.reference
        );
        assert!(again.skipped > 0);
    }

    // Without credentials the target refuses, and the error says so and names the image.
    let image = &fixture.images[0];
    let source = format!("{}/{}", injector.address, image.reference).parse()?;
    let target = format!("{}/{namespace}/anonymous:1", proxy.address).parse()?;
    let error = copy_image(&source, &target, &Access::default())
        .await
        .expect_err("the proxy demands a login");
    assert_eq!(error.category(), ErrorCategory::Unauthorized, "{error}");
    assert!(error.to_string().contains(&image.reference), "{error}");
    Ok(())
}
