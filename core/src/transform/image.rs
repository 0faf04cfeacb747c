//! Image references: parsing (the distribution grammar, with Docker Hub's defaults) and the
//! mapping to and from the in-cluster registry.

use std::fmt;

/// Docker Hub's canonical host.
const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference {
    /// Registry host, with port if any (`docker.io`, `registry.example.com:5000`).
    pub registry: String,
    /// Repository path (`library/nginx`).
    pub repository: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest (`sha256:…`), if given.
    pub digest: Option<String>,
}

/// Why a reference cannot be parsed or mapped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The text is not an image reference.
    #[error("{reference:?} is not a valid image reference: {reason}")]
    Invalid {
        /// The offending text.
        reference: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl ImageReference {
    /// Parses `text`, applying Docker Hub's defaults (`nginx` is `docker.io/library/nginx`).
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let invalid = |reason| ReferenceError::Invalid {
            reference: text.to_owned(),
            reason,
        };
        if text.is_empty() || text.len() > 4096 || text.trim() != text {
            return Err(invalid("empty, too long or padded with spaces"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        if let Some(digest) = digest
            && !is_digest(digest)
        {
            return Err(invalid("the digest is not algorithm:hex"));
        }
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if !rest[colon + 1..].contains('/') => (&rest[..colon], Some(&rest[colon + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(invalid("the tag is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_ascii_lowercase(), rest)
            }
            _ => (DOCKER_HUB.to_owned(), name),
        };
        if registry.starts_with('[') {
            return Err(invalid("IPv6 registry addresses are not supported"));
        }
        if !is_host(&registry) {
            return Err(invalid("the registry host is not HOST[:PORT]"));
        }
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_owned()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_owned()
        };
        if !repository.split('/').all(is_path_component) {
            return Err(invalid(
                "the repository must be lowercase letters, digits and separators",
            ));
        }
        Ok(Self {
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(formatter, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(formatter, "@{digest}")?;
        }
        Ok(())
    }
}

/// The reference of `image` in the in-cluster `registry` (`HOST:PORT`). Already-internal
/// references come back unchanged, so applying it twice is the same as once.
pub fn to_internal(image: &str, registry: &str) -> Result<String, ReferenceError> {
    let parsed = ImageReference::parse(image)?;
    if parsed.registry == registry {
        return Ok(image.to_owned());
    }
    let mapped = ImageReference {
        registry: registry.to_owned(),
        repository: format!("{}/{}", encode_host(&parsed.registry), parsed.repository),
        ..parsed
    };
    Ok(mapped.to_string())
}

/// The original reference behind an internal one (`None` if it does not point at `registry`).
pub fn from_internal(image: &str, registry: &str) -> Option<String> {
    let parsed = ImageReference::parse(image).ok()?;
    if parsed.registry != registry {
        return None;
    }
    let (host, repository) = parsed.repository.split_once('/')?;
    Some(
        ImageReference {
            registry: decode_host(host),
            repository: repository.to_owned(),
            ..parsed
        }
        .to_string(),
    )
}

/// An `oci://` URL (Helm chart or artifact repository) mapped into the in-cluster registry;
/// `None` when it is not an `oci://` URL. Internal URLs come back unchanged.
pub fn oci_url(url: &str, registry: &str) -> Result<Option<String>, ReferenceError> {
    let Some(rest) = url.strip_prefix("oci://") else {
        return Ok(None);
    };
    let path = rest.trim_end_matches('/');
    // A repository URL has no tag: parse it as one to validate and normalise the host.
    let parsed = ImageReference::parse(path)?;
    if parsed.registry == registry {
        return Ok(Some(url.to_owned()));
    }
    let host = path.split_once('/').map_or(DOCKER_HUB, |(host, _)| host);
    let repository = path.split_once('/').map_or(path, |(_, repository)| repository);
    Ok(Some(format!(
        "oci://{registry}/{}/{repository}",
        encode_host(&host.to_ascii_lowercase())
    )))
}

fn encode_host(host: &str) -> String {
    host.replace(':', "_")
}

fn decode_host(segment: &str) -> String {
    segment.replace('_', ":")
}

fn is_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && port.is_none_or(|port| {
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
        })
}

fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_digest(digest: &str) -> bool {
    match digest.split_once(':') {
        Some(("sha256", hex)) => {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        Some(("sha512", hex)) => {
            hex.len() == 128 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = "127.0.0.1:31999";
    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn images_map_into_the_registry_keeping_tags_and_digests() {
        let digest_ref = format!("ghcr.io/stefanprodan/podinfo@{DIGEST}");
        let both = format!("quay.io/org/app:v1.2@{DIGEST}");
        let cases = [
            ("nginx", "127.0.0.1:31999/docker.io/library/nginx".to_owned()),
            (
                "nginx:1.27",
                "127.0.0.1:31999/docker.io/library/nginx:1.27".to_owned(),
            ),
            (
                "library/nginx:1.27",
                "127.0.0.1:31999/docker.io/library/nginx:1.27".to_owned(),
            ),
            (
                "docker.io/jackaldev/demo-web:1.0.0",
                "127.0.0.1:31999/docker.io/jackaldev/demo-web:1.0.0".to_owned(),
            ),
            (
                "index.docker.io/library/busybox:1",
                "127.0.0.1:31999/docker.io/library/busybox:1".to_owned(),
            ),
            (
                "registry.k8s.io/pause:3.10",
                "127.0.0.1:31999/registry.k8s.io/pause:3.10".to_owned(),
            ),
            (
                "Registry.Example.com:5000/team/app:v_1",
                "127.0.0.1:31999/registry.example.com_5000/team/app:v_1".to_owned(),
            ),
            ("localhost/app", "127.0.0.1:31999/localhost/app".to_owned()),
            (
                digest_ref.as_str(),
                format!("127.0.0.1:31999/ghcr.io/stefanprodan/podinfo@{DIGEST}"),
            ),
            (
                both.as_str(),
                format!("127.0.0.1:31999/quay.io/org/app:v1.2@{DIGEST}"),
            ),
        ];
        for (original, expected) in cases {
            let internal = to_internal(original, REGISTRY).unwrap();
            assert_eq!(internal, expected, "{original}");
            assert_eq!(
                to_internal(&internal, REGISTRY).unwrap(),
                internal,
                "{original}: idempotent"
            );
            let back = from_internal(&internal, REGISTRY).unwrap();
            assert_eq!(
                ImageReference::parse(&back).unwrap(),
                ImageReference::parse(original).unwrap(),
                "{original}: reversible"
            );
        }
        assert_eq!(from_internal("docker.io/library/nginx", REGISTRY), None);
    }

    #[test]
    fn invalid_references_are_refused_with_a_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("Nginx", "lowercase"),
            ("nginx:", "tag"),
            ("nginx:bad tag", "tag"),
            ("nginx@sha256:abc", "digest"),
            ("nginx@md5:0123", "digest"),
            ("[::1]:5000/app", "IPv6"),
            ("bad_host.io:x/app", "HOST[:PORT]"),
            ("registry.io//app", "lowercase"),
            (" nginx", "spaces"),
        ] {
            let error = ImageReference::parse(text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text:?}: {error}");
            assert!(error.contains(&format!("{text:?}")), "{text:?}: {error}");
        }
    }

    #[test]
    fn oci_urls_map_like_images() {
        let cases = [
            (
                "oci://ghcr.io/stefanprodan/charts",
                Some("oci://127.0.0.1:31999/ghcr.io/stefanprodan/charts"),
            ),
            (
                "oci://registry.example.com:5000/charts/",
                Some("oci://127.0.0.1:31999/registry.example.com_5000/charts"),
            ),
            (
                "oci://127.0.0.1:31999/ghcr.io/stefanprodan/charts",
                Some("oci://127.0.0.1:31999/ghcr.io/stefanprodan/charts"),
            ),
            ("https://stefanprodan.github.io/podinfo", None),
        ];
        for (url, expected) in cases {
            assert_eq!(oci_url(url, REGISTRY).unwrap().as_deref(), expected, "{url}");
        }
        assert!(oci_url("oci://Bad/Path", REGISTRY).is_err());
    }
}
