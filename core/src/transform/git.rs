//! Git URLs mapped to the cluster's git server, the way the original tool named mirrored
//! repositories: `<server>/<user>/<repository>-<crc32 of the source URL>`, so two sources with the
//! same repository name never collide and the mapping is deterministic and idempotent.

/// The git server repositories are mirrored to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitServer {
    /// Base URL (`http://jackal-git.jackal.svc:3000`), without a trailing slash.
    pub url: String,
    /// The account owning the mirrors.
    pub user: String,
}

/// The mirror URL of `source` on `server`; `None` when `source` is not an http(s), ssh or git URL.
/// URLs already on the server come back unchanged.
pub fn git_url(source: &str, server: &GitServer) -> Option<String> {
    let base = server.url.trim_end_matches('/');
    if source.starts_with(&format!("{base}/")) {
        return Some(source.to_owned());
    }
    let path = ["https://", "http://", "ssh://", "git://"]
        .iter()
        .find_map(|scheme| source.strip_prefix(scheme).map(str::to_owned))
        .or_else(|| scp_like(source))?;
    let path = path.as_str();
    // Drop credentials, the ref suffix and the .git suffix; keep the host and path.
    let path = path
        .rsplit_once('@')
        .filter(|(user, _)| !user.contains('/'))
        .map_or(path, |(_, rest)| rest);
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let name = path
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty() && path.contains('/'))?;
    let checksum = crc32(path.as_bytes());
    Some(format!("{base}/{}/{name}-{checksum}", server.user))
}

/// `git@github.com:org/repo.git` (scp-like syntax) → `github.com/org/repo.git`.
fn scp_like(source: &str) -> Option<String> {
    let (user_host, path) = source.split_once(':')?;
    let (_, host) = user_host.split_once('@')?;
    if source.contains("://") {
        return None;
    }
    Some(format!("{host}/{path}"))
}

/// CRC-32 (IEEE), as decimal text.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> GitServer {
        GitServer {
            url: "http://jackal-git.jackal.svc:3000".into(),
            user: "jackal-git-user".into(),
        }
    }

    #[test]
    fn git_urls_map_to_named_mirrors() {
        let podinfo = git_url("https://github.com/stefanprodan/podinfo.git", &server()).unwrap();
        assert!(
            podinfo.starts_with("http://jackal-git.jackal.svc:3000/jackal-git-user/podinfo-"),
            "{podinfo}"
        );
        // The same repository however it is written.
        for variant in [
            "https://github.com/stefanprodan/podinfo",
            "https://github.com/stefanprodan/podinfo/",
            "https://user:token@github.com/stefanprodan/podinfo.git",
            "ssh://git@github.com/stefanprodan/podinfo.git",
            "https://github.com/stefanprodan/podinfo.git?ref=main",
        ] {
            assert_eq!(
                git_url(variant, &server()).as_deref(),
                Some(podinfo.as_str()),
                "{variant}"
            );
        }
        // Idempotent, and distinct sources do not collide.
        assert_eq!(git_url(&podinfo, &server()).as_deref(), Some(podinfo.as_str()));
        let fork = git_url("https://gitlab.com/someone/podinfo.git", &server()).unwrap();
        assert_ne!(fork, podinfo);
        assert_eq!(
            git_url("git@github.com:stefanprodan/podinfo.git", &server()).as_deref(),
            Some(podinfo.as_str())
        );
        assert_eq!(git_url("oci://ghcr.io/x", &server()), None);
        assert_eq!(git_url("https://github.com", &server()), None);
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
