//! Tampered and hostile packages: a changed file, an unlisted file, changed checksums, a path
//! escaping the package, a truncated archive, something that is not a package at all. Each is
//! refused with a message naming the culprit (by verify and by publish, which then tags nothing),
//! and nothing is written outside the scratch space.

use std::path::Path;

use jackal_core::package::archive;
use jackal_tests::{Scratch, connected_registry, http, jackal};

use crate::{create_ok, demo, stderr};

fn verify(package: &Path) -> anyhow::Result<(bool, String)> {
    let result = jackal(&["package", "verify", package.to_str().unwrap_or_default()])?;
    Ok((result.status.success(), stderr(&result)))
}

/// Publishing `package` (named `name`) must fail with `expected` in the message and leave no tag.
async fn publish_refused(package: &Path, name: &str, expected: &str) -> anyhow::Result<()> {
    let namespace = format!("tampered-{name}-{}", std::process::id());
    let target = format!("oci://{}/{namespace}", connected_registry());
    let result = jackal(&[
        "package",
        "publish",
        package.to_str().unwrap_or_default(),
        &target,
    ])?;
    let message = stderr(&result);
    assert!(
        !result.status.success() && message.contains(expected),
        "publish of {name}: {message}"
    );
    let manifest = http::get(
        &connected_registry(),
        &format!("/v2/{namespace}/demo/manifests/1.0.0"),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
    )
    .await?;
    assert_eq!(manifest.status, 404, "a refused publish of {name} left a tag");
    Ok(())
}

/// Unpacks `package`, lets `change` alter it, and packs it again (deterministically).
fn tamper(
    package: &Path,
    scratch: &Path,
    name: &str,
    change: impl FnOnce(&Path) -> std::io::Result<()>,
) -> anyhow::Result<std::path::PathBuf> {
    let unpacked = scratch.join(format!("{name}-unpacked"));
    archive::extract(package, &unpacked, &archive::Limits::default())?;
    change(&unpacked)?;
    let tampered = scratch.join(format!("{name}.tar.zst"));
    archive::write(&unpacked, &tampered, true)?;
    Ok(tampered)
}

#[tokio::test]
async fn tampered_packages_are_refused_naming_the_file() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-tampered")?;
    let package = create_ok(&demo(), &scratch.path().join("created"), &[])?;
    assert!(verify(&package)?.0);

    let changed = tamper(&package, scratch.path(), "changed", |root| {
        let path = root.join("components/web.tar");
        let mut bytes = std::fs::read(&path)?;
        bytes[600] ^= 0xff;
        std::fs::write(path, bytes)
    })?;
    let (ok, message) = verify(&changed)?;
    assert!(
        !ok && message.contains("components/web.tar is corrupt: expected sha256"),
        "{message}"
    );
    publish_refused(
        &changed,
        "changed",
        "components/web.tar is corrupt: expected sha256",
    )
    .await?;

    let extra = tamper(&package, scratch.path(), "extra", |root| {
        std::fs::write(root.join("components/evil.tar"), b"x")
    })?;
    let (ok, message) = verify(&extra)?;
    assert!(
        !ok && message.contains("components/evil.tar is in the package but not in checksums.txt"),
        "{message}"
    );
    publish_refused(
        &extra,
        "extra",
        "components/evil.tar is in the package but not in checksums.txt",
    )
    .await?;

    let checksums = tamper(&package, scratch.path(), "checksums", |root| {
        let path = root.join("checksums.txt");
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(path, text.replacen('0', "1", 1))
    })?;
    let (ok, message) = verify(&checksums)?;
    assert!(
        !ok && message.contains("does not match the aggregate checksum"),
        "{message}"
    );
    publish_refused(&checksums, "checksums", "does not match the aggregate checksum").await?;

    let missing = tamper(&package, scratch.path(), "missing", |root| {
        std::fs::remove_file(root.join("components/config.tar"))
    })?;
    let (ok, message) = verify(&missing)?;
    assert!(
        !ok && message.contains("components/config.tar is listed in checksums.txt but missing"),
        "{message}"
    );
    publish_refused(
        &missing,
        "missing",
        "components/config.tar is listed in checksums.txt but missing",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn hostile_archives_are_refused_and_nothing_escapes() -> anyhow::Result<()> {
    let scratch = Scratch::new("package-hostile")?;
    let outside = std::env::temp_dir().join(format!("jackal-escaped-{}", std::process::id()));
    let _ = std::fs::remove_file(&outside);
    // A tar whose entry climbs out of wherever it is unpacked.
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    let mut raw = header.as_bytes().to_vec();
    let name = format!("../../../../../../{}", outside.display());
    raw[..name.len()].copy_from_slice(name.as_bytes());
    let mut fixed = tar::Header::new_gnu();
    fixed.as_mut_bytes().copy_from_slice(&raw);
    fixed.set_cksum();
    let mut tar_bytes = fixed.as_bytes().to_vec();
    tar_bytes.extend(b"evil");
    tar_bytes.resize(1024, 0);
    tar_bytes.extend([0u8; 1024]);
    let escaping = scratch.path().join("escaping.tar.zst");
    std::fs::write(&escaping, zstd::encode_all(tar_bytes.as_slice(), 3)?)?;
    let (ok, message) = verify(&escaping)?;
    assert!(!ok && message.contains("escapes the package"), "{message}");
    assert!(!outside.exists(), "a file was written outside the package");

    let package = create_ok(&demo(), &scratch.path().join("created"), &[])?;
    let bytes = std::fs::read(&package)?;
    let truncated = scratch.path().join("truncated.tar.zst");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3])?;
    let (ok, message) = verify(&truncated)?;
    assert!(!ok && message.contains("is truncated or corrupt"), "{message}");

    let garbage = scratch.path().join("garbage.tar.zst");
    std::fs::write(&garbage, vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5, 6, 7, 8])?;
    let (ok, message) = verify(&garbage)?;
    assert!(
        !ok && message.contains("garbage.tar.zst is truncated or corrupt"),
        "{message}"
    );

    let empty = scratch.path().join("empty.tar");
    std::fs::write(&empty, [0u8; 1024])?;
    let (ok, message) = verify(&empty)?;
    assert!(
        !ok && message.contains("the package has no jackal.yaml"),
        "{message}"
    );
    Ok(())
}
