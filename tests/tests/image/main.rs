//! The operator image as the test cluster builds it offline (`scripts/operator-image`): the
//! connected registry holds exactly the build of this checkout, its config and single layer are
//! what `images/operator.env` defines (non-root user, entrypoint, labels, static binaries and
//! nothing else), the node runs it as non-root, and the Dockerfile's final stage agrees with the
//! same definition.
//!
//! An image that was not built is a failure that names the script, never a skip.

mod dockerfile;
mod node;
mod registry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use jackal_tests::repository_root;

/// The definition of the image's contents, shared with scripts/operator-image and the Dockerfile.
const DEFINITION: &str = "images/operator.env";

/// `images/operator.env`: what the image holds and how it starts.
struct Definition {
    values: BTreeMap<String, String>,
}

impl Definition {
    fn read() -> anyhow::Result<Self> {
        let path = repository_root().join(DEFINITION);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
        let values = text
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
            .map(|line| {
                line.split_once('=')
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
                    .with_context(|| format!("{DEFINITION}: {line:?} is not KEY=VALUE"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { values })
    }

    fn get(&self, key: &str) -> anyhow::Result<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("{DEFINITION} does not set {key}"))
    }

    /// The files: (source name, absolute path in the image, mode).
    fn files(&self) -> anyhow::Result<Vec<(String, String, u32)>> {
        self.get("IMAGE_FILES")?
            .split_whitespace()
            .map(|entry| {
                let mut parts = entry.split(':');
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(source), Some(path), Some(mode), None) => Ok((
                        source.to_owned(),
                        path.to_owned(),
                        u32::from_str_radix(mode, 8)
                            .with_context(|| format!("{entry}: mode is not octal"))?,
                    )),
                    _ => bail!("{DEFINITION}: {entry:?} is not SOURCE:PATH:MODE"),
                }
            })
            .collect()
    }

    /// The reference the image is built under: the repository tagged with the workspace version.
    fn reference(&self) -> anyhow::Result<String> {
        Ok(format!(
            "{}:{}",
            self.get("IMAGE_REPOSITORY")?,
            env!("CARGO_PKG_VERSION")
        ))
    }
}

/// The image scripts/operator-image built in this checkout.
struct Built {
    reference: String,
    digest: String,
    archive: PathBuf,
}

/// Where scripts/operator-image writes the image (testbed/lib.sh `operator_image_dir`).
fn image_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                repository_root().join(dir)
            }
        })
        .unwrap_or_else(|| repository_root().join("target"))
        .join("operator-image")
}

fn built() -> anyhow::Result<Built> {
    let dir = image_dir();
    let listing = dir.join("images.txt");
    if !listing.exists() {
        bail!(
            "the operator image is not built ({} is missing): run `scripts/operator-image` \
             (`scripts/test` does)",
            listing.display()
        );
    }
    let text = std::fs::read_to_string(&listing)?;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [reference, digest, archive] = fields.as_slice() else {
        bail!(
            "{} is not one `REFERENCE DIGEST ARCHIVE` line: {text:?}",
            listing.display()
        );
    };
    let expected = Definition::read()?.reference()?;
    ensure!(
        *reference == expected,
        "{} holds {reference}, not {expected}: rebuild with `scripts/operator-image`",
        listing.display()
    );
    Ok(Built {
        reference: (*reference).to_owned(),
        digest: (*digest).to_owned(),
        archive: dir.join("archives").join(archive),
    })
}

/// Fails unless `bytes` are an x86-64 ELF executable that needs no dynamic loader (no
/// `PT_INTERP` program header: static, or static-pie).
fn require_static_executable(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let u16_at = |offset: usize| -> anyhow::Result<u16> {
        let raw = bytes
            .get(offset..offset + 2)
            .with_context(|| format!("{}: truncated ELF header", path.display()))?;
        Ok(u16::from_le_bytes([raw[0], raw[1]]))
    };
    let u32_at = |offset: usize| -> anyhow::Result<u32> {
        let raw = bytes
            .get(offset..offset + 4)
            .with_context(|| format!("{}: truncated ELF program header", path.display()))?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    };
    ensure!(
        bytes.starts_with(b"\x7fELF\x02\x01"),
        "{} is not a 64-bit little-endian ELF file",
        path.display()
    );
    ensure!(u16_at(18)? == 62, "{} is not built for x86-64", path.display());
    let program_headers = u32_at(32)? as usize | ((u32_at(36)? as usize) << 32);
    let (entry_size, count) = (usize::from(u16_at(54)?), usize::from(u16_at(56)?));
    for index in 0..count {
        const PT_INTERP: u32 = 3;
        ensure!(
            u32_at(program_headers + index * entry_size)? != PT_INTERP,
            "{} is dynamically linked (it names an interpreter)",
            path.display()
        );
    }
    Ok(())
}

#[test]
fn static_check_refuses_a_dynamically_linked_executable() -> anyhow::Result<()> {
    // This test binary is linked against glibc: it names the dynamic loader.
    let path = std::env::current_exe()?;
    let error = require_static_executable(&path, &std::fs::read(&path)?)
        .expect_err("a glibc executable is not static");
    assert!(error.to_string().contains("dynamically linked"), "{error}");
    assert!(require_static_executable(&path, b"#!/bin/sh\n").is_err());
    Ok(())
}
