//! Who is seeding the registry: a `coordination.k8s.io` Lease (`jackal-bootstrap`) that the plugin
//! and the operator take before they seed and renew while they do, so two never seed at once, and
//! whoever finds a seeding registry whose holder has gone (killed mid-way) can take over and finish.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::task::JoinHandle;

use super::steps::StepError;

/// The Lease's name.
pub const BOOTSTRAP_LEASE: &str = "jackal-bootstrap";
/// Seconds a holder that stopped renewing keeps the Lease.
pub const LEASE_SECONDS: i32 = 15;
/// How often a holder renews.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Who holds the Lease, when someone other than `identity` does and has renewed it lately.
pub fn live_holder(lease: &Lease, identity: &str, now: Timestamp) -> Option<String> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|holder| !holder.is_empty())?;
    if holder == identity {
        return None;
    }
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let seconds = spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS);
    (now < renewed + SignedDuration::from_secs(i64::from(seconds))).then_some(holder)
}

/// The bootstrap Lease in one namespace, as seen by one holder identity
/// (`kubectl-jackal/<host>`, `jackal-operator/<pod>`).
#[derive(Clone)]
pub struct BootstrapLease {
    leases: Api<Lease>,
    identity: String,
}

/// A held Lease: renewed in the background until [`Held::release`] (or dropped, when it expires
/// after [`LEASE_SECONDS`]).
pub struct Held {
    lease: BootstrapLease,
    renewer: JoinHandle<()>,
}

impl BootstrapLease {
    /// The Lease in `namespace` for `identity`.
    pub fn new(client: Client, namespace: &str, identity: &str) -> Self {
        Self {
            leases: Api::namespaced(client, namespace),
            identity: identity.to_owned(),
        }
    }

    /// Who else holds the Lease now, if anyone.
    pub async fn holder(&self) -> Result<Option<String>, StepError> {
        let lease = self.read().await?;
        Ok(lease.and_then(|lease| live_holder(&lease, &self.identity, Timestamp::now())))
    }

    /// Takes the Lease if it is free, expired or already ours; `Err(holder)` when someone else
    /// holds it.
    pub async fn try_acquire(&self) -> Result<Result<Held, String>, StepError> {
        let now = Timestamp::now();
        let existing = self.read().await?;
        if let Some(holder) = existing
            .as_ref()
            .and_then(|lease| live_holder(lease, &self.identity, now))
        {
            return Ok(Err(holder));
        }
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        };
        let written = match existing {
            // Replace with the resourceVersion read: a concurrent taker makes this a conflict.
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.leases
                    .replace(BOOTSTRAP_LEASE, &PostParams::default(), &lease)
                    .await
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(BOOTSTRAP_LEASE.to_owned()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.leases.create(&PostParams::default(), &lease).await
            }
        };
        match written {
            Ok(_) => Ok(Ok(Held {
                renewer: tokio::spawn(renew(self.clone())),
                lease: self.clone(),
            })),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let holder = self
                    .holder()
                    .await?
                    .unwrap_or_else(|| "another bootstrap".to_owned());
                Ok(Err(holder))
            }
            Err(source) => Err(StepError::Api {
                action: format!("take the Lease {BOOTSTRAP_LEASE}"),
                source,
            }),
        }
    }

    async fn read(&self) -> Result<Option<Lease>, StepError> {
        self.leases
            .get_opt(BOOTSTRAP_LEASE)
            .await
            .map_err(|source| StepError::Api {
                action: format!("read the Lease {BOOTSTRAP_LEASE}"),
                source,
            })
    }

    /// Renews the Lease once if it is still ours; false when it is not.
    async fn renew_once(&self) -> bool {
        let Ok(Some(mut lease)) = self.read().await else {
            return false;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return false;
        };
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return false;
        }
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.leases
            .replace(BOOTSTRAP_LEASE, &PostParams::default(), &lease)
            .await
            .is_ok()
    }
}

async fn renew(lease: BootstrapLease) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        if !lease.renew_once().await {
            tracing::warn!(holder = %lease.identity, "could not renew the bootstrap Lease");
        }
    }
}

impl Held {
    /// Stops renewing and gives the Lease up at once.
    pub async fn release(self) {
        self.renewer.abort();
        if let Ok(Some(mut lease)) = self.lease.read().await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(&self.lease.identity)
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            spec.acquire_time = None;
            let _ = self
                .lease
                .leases
                .replace(BOOTSTRAP_LEASE, &PostParams::default(), &lease)
                .await;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: i64) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_lease_renewed_lately_by_someone_else_is_held() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(
            live_holder(&lease("jackal-operator/a", 990), "kubectl-jackal/host", now),
            Some("jackal-operator/a".to_owned())
        );
    }

    #[test]
    fn an_expired_lease_our_own_or_an_empty_one_is_free() {
        let now = Timestamp::from_second(1_000).unwrap();
        let me = "kubectl-jackal/host";
        assert_eq!(live_holder(&lease("jackal-operator/a", 985), me, now), None);
        assert_eq!(live_holder(&lease(me, 999), me, now), None);
        assert_eq!(live_holder(&lease("", 999), me, now), None);
        assert_eq!(live_holder(&Lease::default(), me, now), None);
    }
}
