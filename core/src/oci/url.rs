//! `oci://` URLs, parsed in one place: `oci://REGISTRY/REPOSITORY[:TAG][@DIGEST]` for packages and
//! charts, and `oci://REGISTRY[/NAMESPACE]` for where packages are published. The registry host
//! always comes first (as Helm and ORAS require): there is no Docker Hub default here.

use std::fmt;

use oci_client::Reference;

use super::digest::Digest;
use crate::transform::ImageReference;

/// The scheme every such URL starts with.
pub const SCHEME: &str = "oci://";

/// A parsed `oci://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciUrl {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a URL is not a usable `oci://` URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} is not an oci:// reference: {reason}")]
pub struct OciUrlError {
    /// The offending text.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

impl OciUrl {
    /// Parses `oci://REGISTRY/REPOSITORY[:TAG][@DIGEST]`.
    pub fn parse(url: &str) -> Result<Self, OciUrlError> {
        let parsed = Self::parse_any(url)?;
        if parsed.repository.is_empty() {
            return Err(error(url, "it names no repository (oci://REGISTRY/REPOSITORY)"));
        }
        Ok(parsed)
    }

    /// Parses `oci://REGISTRY[/NAMESPACE]`: where packages are published, each under
    /// `NAMESPACE/<name>:<version>`. No tag or digest.
    pub fn parse_namespace(url: &str) -> Result<Self, OciUrlError> {
        let parsed = Self::parse_any(url)?;
        if parsed.tag.is_some() || parsed.digest.is_some() {
            return Err(error(
                url,
                "a publish target is a registry or a namespace, without tag or digest",
            ));
        }
        Ok(parsed)
    }

    fn parse_any(url: &str) -> Result<Self, OciUrlError> {
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| error(url, "it must start with oci://"))?
            .trim_end_matches('/');
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(error(url, "it names no registry (oci://REGISTRY/REPOSITORY)"));
        }
        // The image-reference grammar validates everything; a probe repository stands in for an
        // absent one, and the host must be what the grammar took as the registry.
        let probe = if rest.contains('/') {
            rest.to_owned()
        } else {
            format!("{rest}/probe")
        };
        let parsed = ImageReference::parse(&probe).map_err(|reason| error(url, reason))?;
        let first = probe.split('/').next().unwrap_or_default();
        if parsed.registry != first.to_ascii_lowercase() {
            return Err(error(
                url,
                format!(
                    "{first:?} is not a registry host: the registry comes first (oci://REGISTRY/REPOSITORY)"
                ),
            ));
        }
        let digest = parsed
            .digest
            .as_deref()
            .map(Digest::parse)
            .transpose()
            .map_err(|reason| error(url, reason))?;
        Ok(Self {
            registry: parsed.registry,
            repository: if rest.contains('/') {
                parsed.repository
            } else {
                String::new()
            },
            tag: parsed.tag,
            digest,
        })
    }

    /// The registry host (`HOST[:PORT]`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository (empty for a bare registry target).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository `name` under this namespace, tagged `tag`.
    pub fn child(&self, name: &str, tag: &str) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: if self.repository.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", self.repository)
            },
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// The same repository at `tag` (any digest dropped).
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// The client-side reference (`latest` when neither tag nor digest is given).
    pub fn reference(&self) -> Reference {
        client_reference(
            &self.registry,
            &self.repository,
            self.tag.as_deref(),
            self.digest.as_ref().map(Digest::as_str),
        )
    }

    /// `REGISTRY/REPOSITORY[:TAG][@DIGEST]`, without the scheme.
    pub fn without_scheme(&self) -> String {
        let mut text = self.registry.clone();
        if !self.repository.is_empty() {
            text.push('/');
            text.push_str(&self.repository);
        }
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest.as_str());
        }
        text
    }
}

impl fmt::Display for OciUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{SCHEME}{}", self.without_scheme())
    }
}

impl std::str::FromStr for OciUrl {
    type Err = OciUrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::parse(url)
    }
}

/// The client-side reference of `registry/repository[:tag][@digest]` (`latest` when neither tag
/// nor digest is given), built from parts already validated.
pub(crate) fn client_reference(
    registry: &str,
    repository: &str,
    tag: Option<&str>,
    digest: Option<&str>,
) -> Reference {
    let (registry, repository) = (registry.to_owned(), repository.to_owned());
    match (tag, digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag.to_owned(), digest.to_owned())
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.to_owned()),
        (tag, None) => Reference::with_tag(registry, repository, tag.unwrap_or("latest").to_owned()),
    }
}

fn error(url: &str, reason: impl ToString) -> OciUrlError {
    OciUrlError {
        url: url.to_owned(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn urls_parse_into_their_parts() {
        let url = OciUrl::parse("oci://127.0.0.1:5000/packages/demo:1.0.0").unwrap();
        assert_eq!(
            (url.registry(), url.repository(), url.tag(), url.digest()),
            ("127.0.0.1:5000", "packages/demo", Some("1.0.0"), None)
        );
        assert_eq!(url.to_string(), "oci://127.0.0.1:5000/packages/demo:1.0.0");
        let reference = url.reference();
        assert_eq!(
            (reference.registry(), reference.repository(), reference.tag()),
            ("127.0.0.1:5000", "packages/demo", Some("1.0.0"))
        );

        let pinned = OciUrl::parse(&format!("oci://ghcr.io/org/charts/podinfo@{DIGEST}")).unwrap();
        assert_eq!(pinned.digest().map(Digest::as_str), Some(DIGEST));
        assert_eq!(pinned.reference().digest(), Some(DIGEST));
        assert_eq!(
            OciUrl::parse("oci://ghcr.io/org/charts/").unwrap().repository(),
            "org/charts"
        );
    }

    #[test]
    fn namespaces_take_children() {
        let base = OciUrl::parse_namespace("oci://127.0.0.1:5000/packages").unwrap();
        assert_eq!(
            base.child("demo", "1.0.0").to_string(),
            "oci://127.0.0.1:5000/packages/demo:1.0.0"
        );
        let root = OciUrl::parse_namespace("oci://localhost:5000").unwrap();
        assert_eq!(root.repository(), "");
        assert_eq!(root.child("demo", "1").to_string(), "oci://localhost:5000/demo:1");
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, reason) in [
            ("https://ghcr.io/org/app", "must start with oci://"),
            ("oci://", "no registry"),
            ("oci://packages/demo:1", "is not a registry host"),
            ("oci://ghcr.io", "no repository"),
            ("oci://ghcr.io/Org/app", "lowercase"),
            ("oci://ghcr.io/app@sha256:abc", "digest"),
        ] {
            let error = OciUrl::parse(url).unwrap_err().to_string();
            assert!(error.contains(reason), "{url}: {error}");
            assert!(error.contains(&format!("{url:?}")), "{url}: {error}");
        }
        let error = OciUrl::parse_namespace("oci://ghcr.io/org:1").unwrap_err();
        assert!(error.to_string().contains("without tag or digest"), "{error}");
    }
}
