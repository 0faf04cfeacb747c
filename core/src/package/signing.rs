//! Package signatures: ECDSA P-256 with SHA-256 over `jackal.yaml` (which carries the aggregate
//! checksum, so it covers every file), DER-encoded and base64'd — the format of `cosign
//! sign-blob`, so `cosign verify-blob --key` checks Jackal's signatures and Jackal checks
//! cosign's. Keys are PEM: PKCS#8 `PRIVATE KEY` and SPKI `PUBLIC KEY`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
    0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why signing or verifying failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// A key is not what it should be.
    #[error("{0}")]
    Key(String),
    /// The signature does not match.
    #[error("the signature does not match the package definition and this key")]
    Mismatch,
    /// The signature text is malformed.
    #[error("the signature is not base64-encoded DER: {0}")]
    Malformed(String),
}

/// A new key pair: (private PEM, public PEM).
pub fn generate_key() -> Result<(String, String), SigningError> {
    let random = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &random)
        .map_err(|_| SigningError::Key("failed to generate a key".into()))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &random)
        .map_err(|_| SigningError::Key("generated an unusable key".into()))?;
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    Ok((pem("PRIVATE KEY", pkcs8.as_ref()), pem("PUBLIC KEY", &spki)))
}

/// Signs `data` with a PKCS#8 PEM private key; returns the base64 signature.
pub fn sign(private_pem: &str, data: &[u8]) -> Result<String, SigningError> {
    let der = unpem(private_pem, "PRIVATE KEY")?;
    let random = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der, &random).map_err(|_| {
        SigningError::Key("the private key is not an unencrypted PKCS#8 ECDSA P-256 key".into())
    })?;
    let signature = pair
        .sign(&random, data)
        .map_err(|_| SigningError::Key("signing failed".into()))?;
    Ok(BASE64.encode(signature.as_ref()))
}

/// Checks a base64 signature of `data` against a SPKI PEM public key.
pub fn verify(public_pem: &str, data: &[u8], signature: &str) -> Result<(), SigningError> {
    let der = unpem(public_pem, "PUBLIC KEY")?;
    let point = der
        .strip_prefix(&P256_SPKI_PREFIX[..])
        .filter(|point| point.len() == 65)
        .ok_or_else(|| SigningError::Key("the public key is not an ECDSA P-256 key".into()))?;
    let signature = BASE64
        .decode(signature.trim())
        .map_err(|error| SigningError::Malformed(error.to_string()))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(data, &signature)
        .map_err(|_| SigningError::Mismatch)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn unpem(text: &str, label: &str) -> Result<Vec<u8>, SigningError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| SigningError::Key(format!("not a PEM {label}")))?;
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    BASE64
        .decode(compact)
        .map_err(|error| SigningError::Key(format!("the PEM {label} is not base64: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_is_caught() {
        let (private, public) = generate_key().unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
        let signature = sign(&private, b"kind: JackalPackageConfig\n").unwrap();
        verify(&public, b"kind: JackalPackageConfig\n", &signature).unwrap();
        assert_eq!(
            verify(&public, b"kind: JackalPackageConfig\n# changed\n", &signature),
            Err(SigningError::Mismatch)
        );
        let (_, other) = generate_key().unwrap();
        assert_eq!(
            verify(&other, b"kind: JackalPackageConfig\n", &signature),
            Err(SigningError::Mismatch)
        );
        assert!(matches!(
            verify(&public, b"x", "!!!"),
            Err(SigningError::Malformed(_))
        ));
        assert!(matches!(
            verify("garbage", b"x", &signature),
            Err(SigningError::Key(_))
        ));
        assert!(matches!(sign(&public, b"x"), Err(SigningError::Key(_))));
    }
}
