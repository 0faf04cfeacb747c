//! The injector's command line, parsed by hand to keep the binary small.

use std::path::PathBuf;

use crate::error::Error;

/// Shown with `--help` and after a usage error.
pub const USAGE: &str = "\
usage: jackal-injector [OPTIONS] DIGEST

Rebuilds the payload from its chunks (files named payload-<number>), checks that its sha256 is
DIGEST (sha256:<64 hex digits>, or the bare hex), and serves the OCI images it holds as a
read-only registry.

options:
  --dir DIR        directory holding the chunks (default: the working directory; env JACKAL_INJECTOR_DIR)
  --listen ADDR    address to serve on (default 0.0.0.0:5000; env JACKAL_INJECTOR_LISTEN)
  --chunks N       fail unless exactly N chunks are present
  --verify-only    check the payload and exit without serving
  -h, --help       show this text";

/// Validated settings.
#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    /// Where the chunks are.
    pub directory: PathBuf,
    /// Where to listen.
    pub listen: String,
    /// `sha256:<hex>` of the whole payload.
    pub digest: String,
    /// Exact number of chunks, when known.
    pub expected_chunks: Option<usize>,
    /// Exit after verification.
    pub verify_only: bool,
}

impl Config {
    /// Parses arguments (without the program name); `Ok(None)` means help was asked for.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Option<Self>, Error> {
        let mut directory = std::env::var_os("JACKAL_INJECTOR_DIR").map(PathBuf::from);
        let mut listen = std::env::var("JACKAL_INJECTOR_LISTEN").ok();
        let mut digest = None;
        let mut expected_chunks = None;
        let mut verify_only = false;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| Error::Usage(format!("{name} needs a value")))
            };
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--dir" => directory = Some(PathBuf::from(value("--dir")?)),
                "--listen" => listen = Some(value("--listen")?),
                "--chunks" => {
                    let count = value("--chunks")?;
                    let count = count
                        .parse()
                        .map_err(|_| Error::Usage(format!("--chunks takes a number, not {count:?}")))?;
                    expected_chunks = Some(count);
                }
                "--verify-only" => verify_only = true,
                other if other.starts_with('-') => {
                    return Err(Error::Usage(format!("unknown option {other}")));
                }
                other if digest.is_none() => digest = Some(normalize_digest(other)?),
                other => return Err(Error::Usage(format!("unexpected argument {other:?}"))),
            }
        }
        let digest = digest.ok_or_else(|| Error::Usage("the payload DIGEST is required".into()))?;
        Ok(Some(Self {
            directory: directory.unwrap_or_else(|| PathBuf::from(".")),
            listen: listen.unwrap_or_else(|| "0.0.0.0:5000".into()),
            digest,
            expected_chunks,
            verify_only,
        }))
    }
}

/// Accepts `sha256:<hex>` or a bare hex digest; returns the prefixed, lowercase form.
fn normalize_digest(text: &str) -> Result<String, Error> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text).to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Usage(format!(
            "{text:?} is not a sha256 digest (sha256: followed by 64 hex digits)"
        )));
    }
    Ok(format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(args: &[&str]) -> Result<Option<Config>, Error> {
        Config::from_args(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn defaults_and_options() {
        let config = parse(&[HEX]).unwrap().unwrap();
        assert_eq!(config.digest, format!("sha256:{HEX}"));
        assert_eq!(config.listen, "0.0.0.0:5000");
        assert_eq!(config.directory, PathBuf::from("."));

        let digest = format!("sha256:{}", HEX.to_uppercase());
        let config = parse(&[
            "--dir",
            "/chunks",
            "--listen",
            "127.0.0.1:1",
            "--chunks",
            "3",
            "--verify-only",
            &digest,
        ])
        .unwrap()
        .unwrap();
        assert_eq!(config.digest, format!("sha256:{HEX}"));
        assert_eq!(config.expected_chunks, Some(3));
        assert!(config.verify_only);
        assert_eq!(config.directory, PathBuf::from("/chunks"));
    }

    #[test]
    fn bad_usage_is_explained() {
        for (args, message) in [
            (vec![], "DIGEST is required"),
            (vec!["sha256:abc"], "is not a sha256 digest"),
            (vec![HEX, HEX], "unexpected argument"),
            (vec!["--chunks", "many", HEX], "--chunks takes a number"),
            (vec!["--dir"], "--dir needs a value"),
            (vec!["--frobnicate", HEX], "unknown option --frobnicate"),
        ] {
            let error = parse(&args).unwrap_err().to_string();
            assert!(error.contains(message), "{args:?}: {error}");
        }
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
