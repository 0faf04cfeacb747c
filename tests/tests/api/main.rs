//! Jackal's API on the real API server of the test cluster: the CRDs install and are Established,
//! valid objects are accepted, invalid ones are refused with a message naming the field, status is
//! written through the status subresource, and the real kubectl prints the columns.

mod crds;
mod kubectl;
mod samples;
mod status;
mod validation;

use jackal_crds::JackalInit;
use jackal_crds::names::INIT_NAME;
use kube::Api;
use kube::api::{DeleteParams, ResourceExt};
use kube::runtime::wait::{await_condition, conditions};
use tokio::sync::{Mutex, MutexGuard};

/// A `JackalInit` is a cluster singleton: tests that create the real one take turns.
static INIT_LOCK: Mutex<()> = Mutex::const_new(());

/// Takes the singleton and removes any `JackalInit` left by an earlier run or by `make demo`.
async fn exclusive_init(client: &kube::Client) -> anyhow::Result<MutexGuard<'static, ()>> {
    let guard = INIT_LOCK.lock().await;
    let api = Api::<JackalInit>::all(client.clone());
    if let Some(existing) = api.get_opt(INIT_NAME).await? {
        api.delete(INIT_NAME, &DeleteParams::default()).await?;
        let uid = existing.uid().unwrap_or_default();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            await_condition(api, INIT_NAME, conditions::is_deleted(&uid)),
        )
        .await??;
    }
    Ok(guard)
}

/// Asserts that a create or update was refused as invalid, naming `field` and saying `message`.
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, kube::Error>, field: &str, message: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "expected 422 Invalid, got {status:?}");
            assert!(
                status.message.contains(field),
                "the error does not name {field:?}: {}",
                status.message
            );
            assert!(
                status.message.contains(message),
                "the error does not say {message:?}: {}",
                status.message
            );
        }
        other => panic!("expected the API server to refuse the object (naming {field}), got {other:?}"),
    }
}
