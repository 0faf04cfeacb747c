//! What went wrong talking to a registry, as a category a caller can act on: retry later
//! (connection reset, 5xx, 429), or give up until the spec or credentials change (401, 404,
//! malformed content). Every error of the package and image code reports its category through
//! [`Categorize`]; controllers turn it into backoff, `Stalled`, metric labels and Event reasons.

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// How a caller should react to a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCategory {
    /// Network trouble, timeouts, 5xx and 429 answers: retry with backoff.
    Transient,
    /// Local storage failed (disk full, permissions): retry with backoff, tell the operator.
    Io,
    /// Credentials missing or refused (401, 403): retry only when they change.
    Unauthorized,
    /// The image, package, tag or blob does not exist (404).
    NotFound,
    /// Content does not match its digest or checksum: corrupt or tampered with.
    Integrity,
    /// The input itself is wrong: a bad reference, an unsupported or malformed document.
    Invalid,
}

impl ErrorCategory {
    /// Whether trying again without changing anything may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::Io)
    }

    /// A short lowercase name, for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Io => "io",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not-found",
            Self::Integrity => "integrity",
            Self::Invalid => "invalid",
        }
    }

    /// A CamelCase Kubernetes Event reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Transient => "Unavailable",
            Self::Io => "StorageFailed",
            Self::Unauthorized => "Unauthorized",
            Self::NotFound => "NotFound",
            Self::Integrity => "IntegrityFailed",
            Self::Invalid => "Invalid",
        }
    }
}

impl std::fmt::Display for ErrorCategory {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Errors that know how a caller should react to them.
pub trait Categorize {
    /// The category of this error.
    fn category(&self) -> ErrorCategory;
}

/// Runs `attempt` up to `attempts` times while it fails with a retryable error (a 401 or a 404
/// answers the same every time), waiting 0.5 s, 1 s, 2 s, … between tries.
pub async fn retry<T, E, F, Fut>(what: &str, attempts: u32, mut attempt: F) -> Result<T, E>
where
    E: Categorize + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut number = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if error.category().is_retryable() && number + 1 < attempts => {
                tracing::warn!(what, attempt = number + 1, %error, "retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500 << number)).await;
                number += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A failed registry request, with its category and a message free of URL queries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    /// How to react.
    pub category: ErrorCategory,
    /// What the registry or the connection said.
    pub message: String,
}

impl RegistryError {
    /// An error of `category` saying `message` (queries removed from any URL in it).
    pub fn new(category: ErrorCategory, message: impl ToString) -> Self {
        Self {
            category,
            message: without_queries(&message.to_string()),
        }
    }
}

impl Categorize for RegistryError {
    fn category(&self) -> ErrorCategory {
        self.category
    }
}

impl From<OciDistributionError> for RegistryError {
    fn from(error: OciDistributionError) -> Self {
        Self::new(categorize(&error), &error)
    }
}

impl From<&OciDistributionError> for RegistryError {
    fn from(error: &OciDistributionError) -> Self {
        Self::new(categorize(error), error)
    }
}

/// The category of an HTTP status.
pub fn status_category(code: u16) -> ErrorCategory {
    match code {
        401 | 403 => ErrorCategory::Unauthorized,
        404 | 410 => ErrorCategory::NotFound,
        408 | 425 | 429 | 500..=599 => ErrorCategory::Transient,
        _ => ErrorCategory::Invalid,
    }
}

/// The category of an HTTP client error.
pub fn http_category(error: &reqwest::Error) -> ErrorCategory {
    match error.status() {
        Some(status) => status_category(status.as_u16()),
        None if error.is_builder() => ErrorCategory::Invalid,
        None => ErrorCategory::Transient,
    }
}

fn categorize(error: &OciDistributionError) -> ErrorCategory {
    use ErrorCategory::*;
    use OciDistributionError as E;
    match error {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => Unauthorized,
        E::ServerError { code, .. } => status_category(*code),
        E::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .map(|error| code_category(&error.code))
            // The most definite answer wins: a refusal outranks a retry.
            .max()
            .unwrap_or(Transient),
        E::ImageManifestNotFoundError(_) => NotFound,
        E::RequestError(error) => http_category(error),
        E::IoError(_) => Io,
        E::DigestError(_) => Integrity,
        E::GenericError(_) | E::RegistryTokenDecodeError(_) => Transient,
        E::ConfigConversionError(_)
        | E::HeaderValueError(_)
        | E::ImageIndexParsingNoPlatformResolverError
        | E::IncompatibleLayerMediaTypeError(_)
        | E::JsonError(_)
        | E::ManifestEncodingError(_)
        | E::ManifestParsingError(_)
        | E::PushNoDataError
        | E::PushLayerNoDataError
        | E::PullNoLayersError
        | E::RegistryNoDigestError
        | E::RegistryNoLocationError
        | E::SpecViolationError(_)
        | E::UrlParseError(_)
        | E::UnsupportedMediaTypeError(_)
        | E::UnsupportedSchemaVersionError(_)
        | E::VersionedParsingError(_) => Invalid,
    }
}

fn code_category(code: &OciErrorCode) -> ErrorCategory {
    use ErrorCategory::*;
    match code {
        OciErrorCode::Unauthorized | OciErrorCode::Denied => Unauthorized,
        OciErrorCode::BlobUnknown
        | OciErrorCode::ManifestBlobUnknown
        | OciErrorCode::ManifestUnknown
        | OciErrorCode::NameUnknown
        | OciErrorCode::NotFound => NotFound,
        OciErrorCode::DigestInvalid | OciErrorCode::SizeInvalid => Integrity,
        OciErrorCode::ManifestInvalid
        | OciErrorCode::ManifestUnverified
        | OciErrorCode::NameInvalid
        | OciErrorCode::TagInvalid
        | OciErrorCode::Unsupported => Invalid,
        OciErrorCode::BlobUploadInvalid
        | OciErrorCode::BlobUploadUnknown
        | OciErrorCode::Toomanyrequests
        | OciErrorCode::Other(_) => Transient,
    }
}

/// `text` with the query of every URL in it removed: upload URLs carry session state, and
/// redirects to storage carry signed tokens, neither of which belongs in an error or a log.
pub fn without_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let next_url = |text: &str| {
        [text.find("http://"), text.find("https://")]
            .into_iter()
            .flatten()
            .min()
    };
    while let Some(start) = next_url(rest) {
        let (before, url_onwards) = rest.split_at(start);
        out.push_str(before);
        let end = url_onwards
            .find(|c: char| c.is_whitespace() || c == ',' || c == '"')
            .unwrap_or(url_onwards.len());
        let (url, after) = url_onwards.split_at(end);
        out.push_str(url.split_once('?').map_or(url, |(path, _)| path));
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use oci_client::errors::{OciEnvelope, OciError};

    use super::*;

    fn envelope(codes: &[&str]) -> OciDistributionError {
        let errors = codes
            .iter()
            .map(|code| serde_json::from_value::<OciError>(serde_json::json!({"code": code})).unwrap())
            .collect();
        OciDistributionError::RegistryError {
            envelope: OciEnvelope { errors },
            url: "http://127.0.0.1:5000/v2/app/manifests/1?_state=secret".into(),
        }
    }

    #[test]
    fn registry_failures_fall_into_categories() {
        let server = |code| OciDistributionError::ServerError {
            code,
            url: "https://ghcr.io/v2/".into(),
            message: String::new(),
        };
        for (error, expected) in [
            (server(401), ErrorCategory::Unauthorized),
            (server(403), ErrorCategory::Unauthorized),
            (server(404), ErrorCategory::NotFound),
            (server(429), ErrorCategory::Transient),
            (server(503), ErrorCategory::Transient),
            (server(400), ErrorCategory::Invalid),
            (
                OciDistributionError::UnauthorizedError { url: "u".into() },
                ErrorCategory::Unauthorized,
            ),
            (
                OciDistributionError::ImageManifestNotFoundError("x".into()),
                ErrorCategory::NotFound,
            ),
            (envelope(&["MANIFEST_UNKNOWN"]), ErrorCategory::NotFound),
            (envelope(&["DENIED"]), ErrorCategory::Unauthorized),
            (envelope(&["TOOMANYREQUESTS"]), ErrorCategory::Transient),
            (envelope(&["DIGEST_INVALID"]), ErrorCategory::Integrity),
            (
                envelope(&["TOOMANYREQUESTS", "NAME_INVALID"]),
                ErrorCategory::Invalid,
            ),
            (envelope(&["SOMETHING_ELSE"]), ErrorCategory::Transient),
            (
                OciDistributionError::IoError(std::io::ErrorKind::StorageFull.into()),
                ErrorCategory::Io,
            ),
            (
                OciDistributionError::UnsupportedMediaTypeError("x".into()),
                ErrorCategory::Invalid,
            ),
        ] {
            let message = error.to_string();
            let categorized = RegistryError::from(error);
            assert_eq!(categorized.category, expected, "{message}");
        }
        assert!(ErrorCategory::Transient.is_retryable() && ErrorCategory::Io.is_retryable());
        assert!(!ErrorCategory::Unauthorized.is_retryable() && !ErrorCategory::NotFound.is_retryable());
        let message = RegistryError::from(envelope(&["DENIED"])).message;
        assert!(
            !message.contains("secret") && message.contains("/v2/app/manifests/1"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn connection_failures_are_transient() {
        crate::registry::ensure_crypto_provider();
        // A port nothing listens on: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(http_category(&error), ErrorCategory::Transient);
    }

    #[test]
    fn urls_in_errors_lose_their_queries() {
        let message = "server error: url http://127.0.0.1:5000/v2/a/blobs/uploads/1?_state=secret&digest=sha256%3A00, code: 503, then https://s3.example/b?X-Amz-Signature=token \"https://c/d?e\"";
        assert_eq!(
            without_queries(message),
            "server error: url http://127.0.0.1:5000/v2/a/blobs/uploads/1, code: 503, then https://s3.example/b \"https://c/d\""
        );
        assert_eq!(without_queries("no url here"), "no url here");
    }
}
