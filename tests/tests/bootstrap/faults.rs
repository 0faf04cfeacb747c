//! Bootstrap's steps when something is wrong, on the real node: a payload chunk changed after it
//! was written stops the injector step with an error naming the chunk and the digests, before
//! anything else is deployed; no node with a usable image gives an error that says what to set.

use jackal_core::bootstrap::objects::{self, REGISTRY};
use jackal_core::bootstrap::steps::{Bootstrap, Reach, StepError};
use jackal_core::layout::Layout;
use jackal_core::payload::SourceImage;
use jackal_core::registry::{Categorize as _, ErrorCategory};
use jackal_crds::init::{InjectorSpec, JackalInitSpec};
use jackal_tests::{Cluster, TestNamespace, injector};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

const REGISTRY_IMAGE: &str = "docker.io/library/registry:3.1.2";

async fn bootstrap(
    cluster: &Cluster,
    name: &str,
    spec: JackalInitSpec,
) -> anyhow::Result<(Bootstrap, TestNamespace)> {
    let namespace = cluster
        .labelled_namespace(name, &[("jackal.dev/agent".into(), "ignore".into())])
        .await?;
    let bootstrap = Bootstrap {
        client: cluster.client.clone(),
        namespace: namespace.name.clone(),
        spec,
        seed_images: vec![SourceImage {
            layout: Layout::new(cluster.dir().join("images/layout")),
            reference: REGISTRY_IMAGE.into(),
        }],
        registry_image: REGISTRY_IMAGE.into(),
        injector_binary: injector::binary()?,
        reach: Reach::NodePort,
    };
    Ok((bootstrap, namespace))
}

#[tokio::test]
async fn a_chunk_changed_after_writing_stops_the_injector_step_naming_it() -> anyhow::Result<()> {
    let _node = super::NODE.read().await;
    let cluster = Cluster::connect().await?;
    let (bootstrap, namespace) = bootstrap(&cluster, "bootstrap-corrupt", JackalInitSpec::default()).await?;
    let payload = bootstrap.write_payload().await?;
    // One flipped byte in the third chunk (ConfigMaps are immutable: replaced).
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &namespace.name);
    let victim = payload.chunks[2].clone();
    let mut bytes = config_maps
        .get(&victim)
        .await?
        .binary_data
        .and_then(|mut data| data.remove(&victim))
        .map(|bytes| bytes.0)
        .unwrap_or_default();
    bytes[1000] ^= 0x01;
    config_maps.delete(&victim, &DeleteParams::default()).await?;
    config_maps
        .create(
            &PostParams::default(),
            &objects::binary_config_map(&namespace.name, &victim, bytes),
        )
        .await?;

    let error = bootstrap
        .start_injector(&payload)
        .await
        .expect_err("the injector must refuse a changed payload");
    let message = error.to_string();
    assert!(matches!(error, StepError::CorruptChunk { .. }), "{message}");
    assert_eq!(error.category(), ErrorCategory::Integrity);
    assert!(
        message.contains(&victim)
            && message.contains(payload.chunk_digests[2].as_str())
            && message.contains(payload.digest.as_str()),
        "the error names the chunk, what was written and the payload: {message}"
    );
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &namespace.name);
    assert!(
        deployments.get_opt(REGISTRY).await?.is_none(),
        "nothing is deployed from a payload that failed"
    );
    Ok(())
}

#[tokio::test]
async fn without_a_usable_image_the_injector_step_says_what_to_set() -> anyhow::Result<()> {
    let _node = super::NODE.read().await;
    let cluster = Cluster::connect().await?;
    let spec = JackalInitSpec {
        injector: InjectorSpec {
            image: Some("registry.example/not-on-any-node:1".into()),
            ..InjectorSpec::default()
        },
        ..JackalInitSpec::default()
    };
    let (bootstrap, _namespace) = bootstrap(&cluster, "bootstrap-no-image", spec).await?;
    let payload = bootstrap.write_payload().await?;
    let error = bootstrap
        .start_injector(&payload)
        .await
        .expect_err("no node holds the image");
    let message = error.to_string();
    assert!(matches!(error, StepError::Placement(_)), "{message}");
    assert!(
        message.contains("spec.injector.image registry.example/not-on-any-node:1 is on no schedulable node"),
        "{message}"
    );
    assert_eq!(error.category(), ErrorCategory::Invalid);
    Ok(())
}
