//! The webhook's certificates: a CA and a serving certificate it signs, generated in process, and
//! the rotation plan. Pure: [`manager`] stores the bundle in a Secret, publishes the CA bundle and
//! loads the serving certificate.
//!
//! Rotation never fails an admission. The serving certificate is renewed with a third of its life
//! left, signed by the same CA (nothing else changes). The CA is renewed with a third of its life
//! left in two phases: the new CA is published in `caBundle` next to the old one while the old
//! serving certificate keeps being served; only after the API server has had time to see the new
//! bundle is a serving certificate from the new CA issued. The old CA leaves the bundle when it
//! expires.

pub mod manager;

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How long certificates live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Lifetime of a CA.
    pub ca: Duration,
    /// Lifetime of a serving certificate.
    pub leaf: Duration,
    /// How long a new CA is published before certificates it signs are served.
    pub propagation: Duration,
}

impl Default for Validity {
    fn default() -> Self {
        Self {
            ca: Duration::from_secs(5 * 365 * 24 * 3600),
            leaf: Duration::from_secs(90 * 24 * 3600),
            propagation: Duration::from_secs(60),
        }
    }
}

/// Why certificates cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// rcgen refused.
    #[error("failed to generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate and its key, in PEM, with its validity period.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    /// Certificate PEM.
    pub certificate: String,
    /// Private key PEM (left out of `Debug`, so it never reaches a log).
    pub key: String,
    /// Common name (for a CA, it identifies the issuer of the certificates it signs).
    pub common_name: String,
    /// When it was issued (the certificate itself is valid from a few minutes earlier, to
    /// tolerate clock skew; rotation is planned from this time).
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Issued")
            .field("common_name", &self.common_name)
            .field("issued_at", &self.issued_at)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Issued {
    /// When it should be replaced: with a third of its life left.
    pub fn renew_at(&self) -> OffsetDateTime {
        self.issued_at + (self.not_after - self.issued_at) * 2 / 3
    }
}

/// Everything the webhook's TLS needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// The CA new serving certificates are signed by.
    pub ca: Issued,
    /// The CA being retired, still trusted until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_ca: Option<Issued>,
    /// The serving certificate.
    pub leaf: Issued,
    /// Whether `leaf` was signed by `previous_ca` (the middle of a CA rotation).
    #[serde(default)]
    pub leaf_from_previous_ca: bool,
    /// When the current CA was introduced by a rotation.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub ca_rotated_at: Option<OffsetDateTime>,
}

/// Names the serving certificate is valid for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// DNS names (`jackal-webhook.jackal.svc`, …).
    pub dns_names: Vec<String>,
    /// IP addresses (`127.0.0.1` when the API server calls a URL on loopback).
    pub ip_addresses: Vec<IpAddr>,
}

impl Identity {
    /// The names of a webhook behind Service `name` in `namespace`.
    pub fn service(name: &str, namespace: &str) -> Self {
        Self {
            dns_names: vec![
                format!("{name}.{namespace}.svc"),
                format!("{name}.{namespace}.svc.cluster.local"),
                format!("{name}.{namespace}"),
            ],
            ip_addresses: Vec::new(),
        }
    }
}

/// Certificates are valid from this long before they are issued, so a client whose clock is a
/// little behind still accepts them.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// What the certificate manager should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the given time.
    Wait(OffsetDateTime),
    /// Issue a new serving certificate from the current CA.
    RenewLeaf,
    /// Start a CA rotation: new CA, old one kept as previous, serving certificate unchanged.
    RotateCa,
    /// The previous CA has expired: drop it from the bundle.
    DropPreviousCa,
}

impl Bundle {
    /// A fresh CA and a serving certificate for `identity`.
    pub fn generate(
        identity: &Identity,
        validity: &Validity,
        now: OffsetDateTime,
    ) -> Result<Self, CertificateError> {
        let ca = new_ca(validity, now)?;
        let leaf = new_leaf(&ca, identity, validity, now)?;
        Ok(Self {
            ca,
            previous_ca: None,
            leaf,
            leaf_from_previous_ca: false,
            ca_rotated_at: None,
        })
    }

    /// The PEM bundle the API server must trust: the current CA, and the previous one if any.
    pub fn ca_bundle(&self) -> String {
        let mut bundle = self.ca.certificate.clone();
        if let Some(previous) = &self.previous_ca {
            bundle.push_str(&previous.certificate);
        }
        bundle
    }

    /// What to do at `now`.
    pub fn plan(&self, validity: &Validity, now: OffsetDateTime) -> Action {
        if self.leaf_from_previous_ca {
            let switch_at = self.ca_rotated_at.unwrap_or(now) + validity.propagation;
            return if now >= switch_at {
                Action::RenewLeaf
            } else {
                Action::Wait(switch_at)
            };
        }
        if self
            .previous_ca
            .as_ref()
            .is_some_and(|previous| now >= previous.not_after)
        {
            return Action::DropPreviousCa;
        }
        if now >= self.ca.renew_at() && self.previous_ca.is_none() {
            return Action::RotateCa;
        }
        if now >= self.leaf.renew_at() || self.leaf.not_after > self.ca.not_after {
            return Action::RenewLeaf;
        }
        let mut next = self.leaf.renew_at().min(self.ca.renew_at());
        if let Some(previous) = &self.previous_ca {
            next = next.min(previous.not_after);
        }
        Action::Wait(next)
    }

    /// Carries out `action` (other than waiting), returning the next bundle.
    pub fn apply(
        &self,
        action: &Action,
        identity: &Identity,
        validity: &Validity,
        now: OffsetDateTime,
    ) -> Result<Self, CertificateError> {
        let mut next = self.clone();
        match action {
            Action::Wait(_) => {}
            Action::RenewLeaf => {
                next.leaf = new_leaf(&next.ca, identity, validity, now)?;
                next.leaf_from_previous_ca = false;
            }
            Action::RotateCa => {
                next.previous_ca = Some(self.ca.clone());
                next.ca = new_ca(validity, now)?;
                next.leaf_from_previous_ca = true;
                next.ca_rotated_at = Some(now);
            }
            Action::DropPreviousCa => next.previous_ca = None,
        }
        Ok(next)
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Jackal");
    name.push(DnType::CommonName, common_name);
    name
}

fn ca_params(common_name: &str) -> Result<CertificateParams, CertificateError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn new_ca(validity: &Validity, now: OffsetDateTime) -> Result<Issued, CertificateError> {
    let common_name = format!("jackal-webhook-ca-{}", now.unix_timestamp());
    let mut params = ca_params(&common_name)?;
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + validity.ca;
    let key = KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    Ok(Issued {
        certificate: certificate.pem(),
        key: key.serialize_pem(),
        common_name,
        issued_at: now,
        not_after: params.not_after,
    })
}

fn new_leaf(
    ca: &Issued,
    identity: &Identity,
    validity: &Validity,
    now: OffsetDateTime,
) -> Result<Issued, CertificateError> {
    let mut params = CertificateParams::new(identity.dns_names.clone())?;
    params
        .subject_alt_names
        .extend(identity.ip_addresses.iter().map(|ip| SanType::IpAddress(*ip)));
    let common_name = identity
        .dns_names
        .first()
        .cloned()
        .unwrap_or_else(|| "jackal-webhook".into());
    params.distinguished_name = distinguished_name(&common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - CLOCK_SKEW;
    // Never outlive the CA that signs it.
    params.not_after = (now + validity.leaf).min(ca.not_after);
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::new(ca_params(&ca.common_name)?, ca_key);
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        certificate: certificate.pem(),
        key: key.serialize_pem(),
        common_name,
        issued_at: now,
        not_after: params.not_after,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    use super::*;

    fn identity() -> Identity {
        let mut identity = Identity::service("jackal-webhook", "jackal");
        identity.ip_addresses.push("127.0.0.1".parse().unwrap());
        identity
    }

    fn short() -> Validity {
        Validity {
            ca: Duration::from_secs(3000),
            leaf: Duration::from_secs(300),
            propagation: Duration::from_secs(30),
        }
    }

    /// Verifies the serving certificate against the CA bundle, as a client would at `now`.
    fn verifies(bundle: &Bundle, name: &str, now: OffsetDateTime) -> bool {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(bundle.ca_bundle().as_bytes()) {
            roots.add(certificate.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(bundle.leaf.certificate.as_bytes()).unwrap();
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.unix_timestamp() as u64));
        let name = ServerName::try_from(name.to_owned()).unwrap();
        verifier.verify_server_cert(&leaf, &[], &name, &[], at).is_ok()
    }

    #[test]
    fn a_generated_bundle_verifies_for_the_service_and_loopback() {
        let now = OffsetDateTime::now_utc();
        let bundle = Bundle::generate(&identity(), &Validity::default(), now).unwrap();
        assert!(verifies(&bundle, "jackal-webhook.jackal.svc", now));
        assert!(verifies(&bundle, "127.0.0.1", now));
        assert!(!verifies(&bundle, "evil.example.com", now));
        assert!(!format!("{:?}", bundle.plan(&Validity::default(), now)).contains("Renew"));
    }

    #[test]
    fn rotation_keeps_every_step_verifiable() {
        let validity = short();
        let start = OffsetDateTime::now_utc();
        let mut bundle = Bundle::generate(&identity(), &validity, start).unwrap();
        let mut now = start;
        let mut seen = Vec::new();
        // Walk through well over one CA lifetime, a minute at a time.
        while now < start + time::Duration::seconds(6000) {
            loop {
                let action = bundle.plan(&validity, now);
                if let Action::Wait(until) = action {
                    assert!(until > now, "waiting for the past at {now}");
                    break;
                }
                seen.push(std::mem::discriminant(&action));
                bundle = bundle.apply(&action, &identity(), &validity, now).unwrap();
                // After every step the served certificate verifies against the published bundle.
                assert!(
                    verifies(&bundle, "jackal-webhook.jackal.svc", now),
                    "{action:?} at {now}"
                );
            }
            assert!(verifies(&bundle, "jackal-webhook.jackal.svc", now), "at {now}");
            assert!(bundle.leaf.not_after <= bundle.ca.not_after || bundle.leaf_from_previous_ca);
            now += time::Duration::seconds(60);
        }
        for expected in [Action::RenewLeaf, Action::RotateCa, Action::DropPreviousCa] {
            assert!(
                seen.contains(&std::mem::discriminant(&expected)),
                "{expected:?} never happened"
            );
        }
    }

    #[test]
    fn a_new_ca_is_published_before_it_is_used() {
        let validity = short();
        let start = OffsetDateTime::now_utc();
        let bundle = Bundle::generate(&identity(), &validity, start).unwrap();
        let rotate_at = bundle.ca.renew_at();
        assert_eq!(bundle.plan(&validity, rotate_at), Action::RotateCa);
        let rotated = bundle
            .apply(&Action::RotateCa, &identity(), &validity, rotate_at)
            .unwrap();
        // Same serving certificate, both CAs published.
        assert_eq!(rotated.leaf, bundle.leaf);
        assert!(
            rotated.ca_bundle().contains(&bundle.ca.certificate)
                && rotated.ca_bundle().contains(&rotated.ca.certificate)
        );
        // The switch to a certificate from the new CA waits for propagation.
        assert_eq!(
            rotated.plan(&validity, rotate_at + time::Duration::seconds(10)),
            Action::Wait(rotate_at + validity.propagation)
        );
        assert_eq!(
            rotated.plan(&validity, rotate_at + validity.propagation),
            Action::RenewLeaf
        );
    }

    #[test]
    fn bundles_round_trip_through_json() {
        let bundle = Bundle::generate(&identity(), &short(), OffsetDateTime::now_utc()).unwrap();
        let json = serde_json::to_string(&bundle).unwrap();
        let back: Bundle = serde_json::from_str(&json).unwrap();
        assert_eq!(back.leaf.certificate, bundle.leaf.certificate);
        assert_eq!(
            back.ca.not_after.unix_timestamp(),
            bundle.ca.not_after.unix_timestamp()
        );
    }
}
