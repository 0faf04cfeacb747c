//! Bad payloads are refused before anything is served, with the message that names the fault:
//! a corrupt, missing or reordered chunk, a wrong chunk count, hostile archive entries, a blob
//! whose bytes do not match its name, a lone zero block and bytes after the end of the archive
//! (each under a payload digest that matches, so the archive check itself must catch it).

use std::path::Path;

use jackal_core::payload::{CHUNK_PREFIX, chunk_name};
use jackal_tests::Scratch;
use jackal_tests::injector;
use sha2::{Digest, Sha256};

use crate::Fixture;

fn verify(chunks: &Path, args: &[&str]) -> anyhow::Result<(i32, String)> {
    let output = injector::run(chunks, args)?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn a_good_payload_verifies() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-good")?;
    let (code, log) = verify(
        &fixture.chunks(),
        &["--verify-only", fixture.summary.digest.as_str()],
    )?;
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains(&format!("payload {} verified", fixture.summary.digest)),
        "{log}"
    );
    assert!(log.contains("3 images"), "{log}");
    Ok(())
}

#[tokio::test]
async fn corrupt_missing_and_reordered_chunks_are_refused() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-bad-chunks")?;
    let digest = fixture.summary.digest.to_string();
    let chunks = fixture.chunks();
    let count = fixture.summary.chunks;
    assert!(count > 10, "the fixture should span many chunks, has {count}");
    let mismatch = format!("payload digest mismatch: expected {digest}, got sha256:");

    // A flipped byte.
    let file = chunks.join(chunk_name(3));
    let original = std::fs::read(&file)?;
    let mut corrupt = original.clone();
    corrupt[100] ^= 0x01;
    std::fs::write(&file, &corrupt)?;
    let (code, log) = verify(&chunks, &["--verify-only", &digest])?;
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(&mismatch) && log.contains(&format!("({count} chunks,")),
        "{log}"
    );
    std::fs::write(&file, &original)?;

    // Two chunks swapped.
    let (first, second) = (chunks.join(chunk_name(1)), chunks.join(chunk_name(2)));
    let (one, two) = (std::fs::read(&first)?, std::fs::read(&second)?);
    std::fs::write(&first, &two)?;
    std::fs::write(&second, &one)?;
    let (code, log) = verify(&chunks, &["--verify-only", &digest])?;
    assert!(code == 1 && log.contains(&mismatch), "{log}");
    std::fs::write(&first, &one)?;
    std::fs::write(&second, &two)?;

    // A chunk missing in the middle, then at the end (only the digest or the count can tell).
    let middle = chunks.join(chunk_name(5));
    let kept = std::fs::read(&middle)?;
    std::fs::remove_file(&middle)?;
    let (code, log) = verify(&chunks, &["--verify-only", &digest])?;
    assert!(
        code == 1 && log.contains("chunk payload-00005 is missing"),
        "{log}"
    );
    std::fs::write(&middle, &kept)?;
    let last = chunks.join(chunk_name(count - 1));
    let kept = std::fs::read(&last)?;
    std::fs::remove_file(&last)?;
    let (code, log) = verify(&chunks, &["--verify-only", &digest])?;
    assert!(
        code == 1 && log.contains(&mismatch) && log.contains(&format!("({} chunks,", count - 1)),
        "{log}"
    );
    let expected_count = count.to_string();
    let (code, log) = verify(&chunks, &["--verify-only", "--chunks", &expected_count, &digest])?;
    assert!(
        code == 1 && log.contains(&format!("expected {count} chunks, found {}", count - 1)),
        "{log}"
    );
    std::fs::write(&last, &kept)?;

    // No chunks at all, and a wrong digest argument.
    let empty = Scratch::new("injector-empty")?;
    let (code, log) = verify(empty.path(), &["--verify-only", &digest])?;
    assert!(
        code == 1 && log.contains(&format!("no payload chunks (files named {CHUNK_PREFIX}<number>)")),
        "{log}"
    );
    let (code, log) = verify(&chunks, &["--verify-only", "sha256:nope"])?;
    assert!(code == 2 && log.contains("is not a sha256 digest"), "{log}");

    // Intact again: it verifies.
    assert_eq!(verify(&chunks, &["--verify-only", &digest])?.0, 0);
    Ok(())
}

/// A ustar header with a valid checksum, for archives no well-behaved writer would produce.
fn raw_header(name: &str, size: usize, kind: u8, link: &str) -> Vec<u8> {
    let mut block = vec![0u8; 512];
    block[..name.len()].copy_from_slice(name.as_bytes());
    block[100..107].copy_from_slice(b"0000644");
    block[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    block[156] = kind;
    block[157..157 + link.len()].copy_from_slice(link.as_bytes());
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    block
}

#[tokio::test]
async fn hostile_archives_are_refused_and_nothing_is_written() -> anyhow::Result<()> {
    let scratch = Scratch::new("injector-hostile")?;
    let outside = scratch.path().join("outside");
    let escape = format!(
        "../{}",
        outside.file_name().and_then(|n| n.to_str()).unwrap_or_default()
    );
    let cases: [(&str, u8, &str, &str); 6] = [
        (escape.as_str(), b'0', "", "escapes the payload"),
        ("/etc/cron.d/evil", b'0', "", "escapes the payload"),
        ("blobs/sha256/link", b'2', "/etc/shadow", "is a symbolic link"),
        ("blobs/sha256/hard", b'1', "../../outside", "is a hard link"),
        ("dev/console", b'3', "", "is a character device"),
        ("config.json", b'0', "", "is not part of an OCI image layout"),
    ];
    for (name, kind, link, message) in cases {
        let chunks = scratch.path().join("chunks");
        let _ = std::fs::remove_dir_all(&chunks);
        std::fs::create_dir_all(&chunks)?;
        let mut archive = raw_header(name, 5, kind, link);
        archive.extend(b"evil\n");
        archive.resize(1024, 0);
        archive.extend([0u8; 1024]);
        std::fs::write(chunks.join(chunk_name(0)), &archive)?;
        let digest = format!(
            "sha256:{}",
            Sha256::digest(&archive)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let (code, log) = verify(&chunks, &[&digest])?;
        assert_eq!(code, 1, "{name}: {log}");
        assert!(log.contains(message) && log.contains(name), "{name}: {log}");
        assert!(!log.contains("serving"), "{name} was served: {log}");
        assert!(!outside.exists(), "{name} wrote outside the payload");
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// An archive entry: header, content, padding to the block.
fn entry(name: &str, content: &[u8]) -> Vec<u8> {
    let mut bytes = raw_header(name, content.len(), b'0', "");
    bytes.extend_from_slice(content);
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    bytes
}

#[tokio::test]
async fn mislabelled_blobs_lone_zero_blocks_and_trailing_bytes_are_refused() -> anyhow::Result<()> {
    let scratch = Scratch::new("injector-archive-ends")?;
    let layout = entry("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = entry("index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
    let end = [0u8; 1024];
    let promised = format!("blobs/sha256/{}", sha256_hex(b"the real layer"));

    let mislabelled = [
        layout.clone(),
        entry(&promised, b"evil bytes"),
        index.clone(),
        end.to_vec(),
    ]
    .concat();
    let lone_zero = [layout.clone(), vec![0u8; 512], index.clone(), end.to_vec()].concat();
    let trailing = [
        layout.clone(),
        index.clone(),
        end.to_vec(),
        vec![0u8; 100],
        b"junk".to_vec(),
    ]
    .concat();
    let appended = [layout.clone(), end.to_vec(), index.clone(), end.to_vec()].concat();
    let cases = [
        (
            "mislabelled blob",
            mislabelled,
            format!(
                "entry \"{promised}\" does not hold the blob its name promises: its bytes hash to sha256:{}",
                sha256_hex(b"evil bytes")
            ),
        ),
        (
            "lone zero block",
            lone_zero,
            format!(
                "a lone zero block at offset {} (after entry \"oci-layout\")",
                layout.len()
            ),
        ),
        (
            "trailing bytes",
            trailing,
            format!(
                "non-zero bytes at offset {}, after the end-of-archive marker",
                layout.len() + index.len() + end.len() + 100
            ),
        ),
        (
            "an archive after the end marker",
            appended,
            format!(
                "non-zero bytes at offset {}, after the end-of-archive marker",
                layout.len() + end.len()
            ),
        ),
    ];
    for (case, archive, message) in cases {
        let chunks = scratch.path().join("chunks");
        let _ = std::fs::remove_dir_all(&chunks);
        std::fs::create_dir_all(&chunks)?;
        // Split in two chunks so the faults straddle a boundary no differently from real payloads.
        let (first, second) = archive.split_at(700);
        std::fs::write(chunks.join(chunk_name(0)), first)?;
        std::fs::write(chunks.join(chunk_name(1)), second)?;
        let digest = format!("sha256:{}", sha256_hex(&archive));
        let (code, log) = verify(&chunks, &[&digest])?;
        assert_eq!(code, 1, "{case}: {log}");
        assert!(
            log.contains(&format!("invalid payload archive: {message}")),
            "{case}: {log}"
        );
        assert!(!log.contains("serving"), "{case} was served: {log}");
    }
    Ok(())
}

/// Every chunk stays open while served: the injector raises its soft open-file limit to the hard
/// one by itself, and when even the hard limit is too low it says so instead of a bare errno.
#[tokio::test]
async fn an_open_file_limit_below_the_chunk_count_is_explained() -> anyhow::Result<()> {
    let fixture = Fixture::new("injector-file-limit")?;
    let digest = fixture.summary.digest.to_string();
    let count = fixture.summary.chunks;
    let limit = count / 2;
    assert!(limit > 10, "the fixture should span many chunks, has {count}");
    let run = |limits: String| -> anyhow::Result<(i32, String)> {
        let output = std::process::Command::new("prlimit")
            .arg(limits)
            .arg(injector::binary()?)
            .arg("--dir")
            .arg(fixture.chunks())
            .args(["--verify-only", &digest])
            .output()?;
        Ok((
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    };
    // A soft limit below the chunk count is raised to the hard one.
    let (code, log) = run(format!("--nofile={limit}:{}", count * 2))?;
    assert_eq!(code, 0, "{log}");
    // A hard limit below it is explained.
    let (code, log) = run(format!("--nofile={limit}:{limit}"))?;
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(&format!(
            "the hard open-file limit (RLIMIT_NOFILE) is below the {count} chunks"
        )),
        "{log}"
    );
    Ok(())
}
