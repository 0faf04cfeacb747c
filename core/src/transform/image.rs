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
    /// The reference is valid, but its in-cluster form would not be (too long a name).
    #[error("{reference:?} cannot be mapped into the registry: {reason}")]
    Unmappable {
        /// The offending reference.
        reference: String,
        /// Why its mapped form is not a valid reference.
        reason: &'static str,
    },
    /// The in-cluster registry address itself is not `HOST[:PORT]` (a misconfiguration).
    #[error("the in-cluster registry {registry:?} is not HOST[:PORT]")]
    Registry {
        /// The configured address.
        registry: String,
    },
}

/// Longest name (`host/path`) the distribution grammar allows.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Prefix of an encoded IPv6 host in the first path segment (`ip6__x-x-1_5000` is `[::1]:5000`).
const IPV6_PREFIX: &str = "ip6__";

impl ImageReference {
    /// Parses `text` by the distribution reference grammar (IPv6 hosts in brackets included),
    /// applying Docker Hub's defaults (`nginx` is `docker.io/library/nginx`).
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
        // Docker's rule: the first component is a host when it looks like one.
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':', '['])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                if !is_host(first) {
                    return Err(invalid("the registry host is not HOST[:PORT] or [IPv6][:PORT]"));
                }
                (first.to_ascii_lowercase(), rest)
            }
            _ => (DOCKER_HUB.to_owned(), name),
        };
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
                "each repository path component must be lowercase letters and digits joined by \".\", \"_\", \"__\" or dashes",
            ));
        }
        if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid("the name is longer than 255 characters"));
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
    check_registry(registry)?;
    let parsed = ImageReference::parse(image)?;
    if parsed.registry == registry {
        return Ok(image.to_owned());
    }
    let repository = format!("{}/{}", encode_host(&parsed.registry), parsed.repository);
    if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::Unmappable {
            reference: image.to_owned(),
            reason: "the mapped name would be longer than 255 characters",
        });
    }
    let mapped = ImageReference {
        registry: registry.to_owned(),
        repository,
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
    check_registry(registry)?;
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

fn check_registry(registry: &str) -> Result<(), ReferenceError> {
    if is_host(registry) {
        Ok(())
    } else {
        Err(ReferenceError::Registry {
            registry: registry.to_owned(),
        })
    }
}

/// A (lowercase) host as one repository path component. A port becomes `_PORT` (hostnames
/// cannot contain `_`). A bracketed IPv6 address becomes `ip6__` and its groups joined by `-`,
/// with `x` for each empty group of a `::`: `[::1]:5000` is `ip6__x-x-1_5000`. Neither form can
/// be mistaken for the other (a host encoding has at most one `_`), and both are valid path
/// components.
fn encode_host(host: &str) -> String {
    match host.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        Some((address, after)) => {
            let groups: Vec<&str> = address
                .split(':')
                .map(|group| if group.is_empty() { "x" } else { group })
                .collect();
            let mut encoded = format!("{IPV6_PREFIX}{}", groups.join("-"));
            if let Some(port) = after.strip_prefix(':') {
                encoded.push('_');
                encoded.push_str(port);
            }
            encoded
        }
        None => host.replace(':', "_"),
    }
}

fn decode_host(segment: &str) -> String {
    let Some(encoded) = segment.strip_prefix(IPV6_PREFIX) else {
        return segment.replace('_', ":");
    };
    let (address, port) = match encoded.split_once('_') {
        Some((address, port)) => (address, Some(port)),
        None => (encoded, None),
    };
    let groups: Vec<&str> = address
        .split('-')
        .map(|group| if group == "x" { "" } else { group })
        .collect();
    let mut host = format!("[{}]", groups.join(":"));
    if let Some(port) = port {
        host.push(':');
        host.push_str(port);
    }
    host
}

/// `domain-name | IPv4 | "[" IPv6 "]"`, then an optional `:port`, as the grammar has them.
fn is_host(host: &str) -> bool {
    if let Some(rest) = host.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        let is_address = !address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        return is_address && (after.is_empty() || after.strip_prefix(':').is_some_and(is_port));
    }
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
        && port.is_none_or(is_port)
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `.`, `_`, `__` or one or more `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let mut index = 0;
    loop {
        let start = index;
        while bytes
            .get(index)
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            index += 1;
        }
        if index == start {
            return false;
        }
        match bytes.get(index) {
            None => return true,
            Some(b'.') => index += 1,
            Some(b'_') => index += if bytes.get(index + 1) == Some(&b'_') { 2 } else { 1 },
            Some(b'-') => {
                while bytes.get(index) == Some(&b'-') {
                    index += 1;
                }
            }
            Some(_) => return false,
        }
    }
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
            (
                "[::1]:5000/app:1",
                "127.0.0.1:31999/ip6__x-x-1_5000/app:1".to_owned(),
            ),
            ("[::1]/app", "127.0.0.1:31999/ip6__x-x-1/app".to_owned()),
            (
                "[FE80::A:0:1]:443/team/app-server__v2/web.ui---x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                format!("127.0.0.1:31999/ip6__fe80-x-a-0-1_443/team/app-server__v2/web.ui---x@{DIGEST}"),
            ),
            (
                "[2001:db8::]:5000/a",
                "127.0.0.1:31999/ip6__2001-db8-x-x_5000/a".to_owned(),
            ),
            ("[::]:5000/a", "127.0.0.1:31999/ip6__x-x-x_5000/a".to_owned()),
            ("10.0.0.7:5000/a", "127.0.0.1:31999/10.0.0.7_5000/a".to_owned()),
        ];
        for (original, expected) in cases {
            let internal = to_internal(original, REGISTRY).unwrap();
            assert_eq!(internal, expected, "{original}");
            assert!(
                ImageReference::parse(&internal).is_ok(),
                "{original}: the mapped reference is itself valid"
            );
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
            ("bad_host.io:x/app", "HOST[:PORT]"),
            ("registry.io//app", "lowercase"),
            ("a_-b", "joined by"),
            ("a-_b", "joined by"),
            ("a..b", "joined by"),
            ("a___b", "joined by"),
            ("registry.io/-a", "joined by"),
            ("registry.io/a-", "joined by"),
            ("[::1/app", "HOST[:PORT]"),
            ("[]:5000/app", "HOST[:PORT]"),
            ("[::g]/app", "HOST[:PORT]"),
            ("[::1]x/app", "HOST[:PORT]"),
            ("[::1]:/app", "HOST[:PORT]"),
            (" nginx", "spaces"),
        ] {
            let error = ImageReference::parse(text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text:?}: {error}");
            assert!(error.contains(&format!("{text:?}")), "{text:?}: {error}");
        }
    }

    #[test]
    fn grammar_separators_are_accepted() {
        for text in [
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a.b",
            "org/a.b_c__d-e/f0",
            "localhost:5000/a",
            "[::1]/a",
        ] {
            assert!(ImageReference::parse(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn names_too_long_to_map_and_bad_registries_are_told_apart() {
        // 255 characters as written: valid, but one segment too long inside the registry.
        let longest = format!("ghcr.io/{}", "a".repeat(255 - "ghcr.io/".len()));
        assert!(ImageReference::parse(&longest).is_ok());
        assert!(matches!(
            to_internal(&longest, REGISTRY),
            Err(ReferenceError::Unmappable { .. })
        ));
        let too_long = format!("ghcr.io/{}", "a".repeat(256 - "ghcr.io/".len()));
        assert!(matches!(
            ImageReference::parse(&too_long),
            Err(ReferenceError::Invalid { .. })
        ));
        for registry in ["", "bad registry", "[::1", "host:port"] {
            assert_eq!(
                to_internal("nginx", registry),
                Err(ReferenceError::Registry {
                    registry: registry.to_owned()
                }),
                "{registry:?}"
            );
        }
        assert_eq!(
            to_internal("nginx", "[::1]:31999").unwrap(),
            "[::1]:31999/docker.io/library/nginx"
        );
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
            (
                "oci://[FD00::5]:5000/charts",
                Some("oci://127.0.0.1:31999/ip6__fd00-x-5_5000/charts"),
            ),
            ("https://stefanprodan.github.io/podinfo", None),
        ];
        for (url, expected) in cases {
            assert_eq!(oci_url(url, REGISTRY).unwrap().as_deref(), expected, "{url}");
        }
        assert!(oci_url("oci://Bad/Path", REGISTRY).is_err());
    }
}
