//! Content digests: one type for `sha256:<64 lowercase hex>`, validated once when parsed or
//! computed, so no other code builds or slices digest strings by hand.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The only algorithm Jackal writes and accepts for content it stores.
const PREFIX: &str = "sha256:";
/// Hex digits of a sha256 digest.
const HEX_LENGTH: usize = 64;

/// A sha256 content digest, always `sha256:<64 lowercase hex>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// Text that is not a sha256 digest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a sha256 digest (sha256:<64 lowercase hex>)")]
pub struct DigestError(pub String);

impl Digest {
    /// Parses `sha256:<hex>`.
    pub fn parse(text: &str) -> Result<Self, DigestError> {
        match text.strip_prefix(PREFIX) {
            Some(hex) if is_hex(hex) => Ok(Self(text.to_owned())),
            _ => Err(DigestError(text.to_owned())),
        }
    }

    /// The digest whose hex part is `hex` (as `checksums.txt` and `sha256sum` write it).
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        if is_hex(hex) {
            Ok(Self(format!("{PREFIX}{hex}")))
        } else {
            Err(DigestError(hex.to_owned()))
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest of what `hasher` has seen.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self(format!("{PREFIX}{}", crate::hex(&hasher.finalize())))
    }

    /// The hex part (the blob's file name in an OCI layout).
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_hex(hex: &str) -> bool {
    hex.len() == HEX_LENGTH && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for Digest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> Self {
        digest.0
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digests_are_computed_parsed_and_refused() {
        let digest = Digest::of(b"");
        assert_eq!(digest.as_str(), format!("sha256:{EMPTY}"));
        assert_eq!(digest.hex(), EMPTY);
        assert_eq!(Digest::parse(digest.as_str()), Ok(digest.clone()));
        assert_eq!(Digest::from_hex(EMPTY), Ok(digest.clone()));
        let mut hasher = Sha256::new();
        hasher.update(b"");
        assert_eq!(Digest::from_hasher(hasher), digest);
        for bad in [
            "",
            EMPTY,
            "sha256:",
            "sha512:e3b0",
            &format!("sha256:{}", EMPTY.to_uppercase()),
            &format!("sha256:{EMPTY}0"),
            &format!("sha256:{}", &EMPTY[1..]),
            &format!("sha256:../{}", &EMPTY[3..]),
        ] {
            let error = Digest::parse(bad).expect_err(bad);
            assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
        }
        assert!(Digest::from_hex("../etc").is_err());
    }

    #[test]
    fn digests_are_json_strings_checked_when_read() {
        let digest = Digest::of(b"x");
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{digest}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        let error = serde_json::from_str::<Digest>("\"sha256:nothex\"").unwrap_err();
        assert!(error.to_string().contains("is not a sha256 digest"), "{error}");
    }
}
