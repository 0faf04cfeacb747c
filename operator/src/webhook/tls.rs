//! The webhook's TLS: a certificate store the server reads on every handshake and the certificate
//! manager swaps when it rotates, so a new certificate is served without a restart or a dropped
//! connection. HTTP/2 and HTTP/1.1 are offered (the API server prefers HTTP/2).

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate PEM holds no certificate.
    #[error("the serving certificate PEM holds no certificate: {0}")]
    Certificate(String),
    /// The key PEM cannot be used.
    #[error("the serving key cannot be used: {0}")]
    Key(String),
    /// rustls refused the configuration.
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The serving certificate, swappable at run time.
#[derive(Debug, Default)]
pub struct CertificateStore {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl CertificateStore {
    /// Serves `certificate_pem` (leaf first, then intermediates) with `key_pem` from now on.
    pub fn load(&self, certificate_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let chain = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TlsError::Certificate(error.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::Certificate("empty".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|error| TlsError::Key(error.to_string()))?;
        let signing_key = default_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|error| TlsError::Key(error.to_string()))?;
        let certified = Arc::new(CertifiedKey::new(chain, signing_key));
        if let Ok(mut current) = self.current.write() {
            *current = Some(certified);
        }
        Ok(())
    }

    /// Whether a certificate is loaded (the webhook is only ready then).
    pub fn is_loaded(&self) -> bool {
        self.current
            .read()
            .map(|current| current.is_some())
            .unwrap_or(false)
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().and_then(|current| current.clone())
    }
}

/// A rustls server configuration serving whatever `store` holds.
pub fn server_config(store: Arc<CertificateStore>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
