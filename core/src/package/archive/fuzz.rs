//! Bounded fuzzing of the archive reader: generated hostile archives (random paths, entry types,
//! links and sizes) and random corruptions of real packages. Whatever the input, reading never
//! panics, never writes outside the destination, leaves no destination behind when it refuses,
//! and names the archive in every refusal; the streaming verifier never accepts what extraction
//! refuses. `PROPTEST_CASES` raises the number of cases.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::tests::{raw_entry, scratch};
use super::*;

/// A small package that verifies: a definition whose aggregate checksum covers `checksums.txt`,
/// which lists a component and a blob.
fn package(root: &Path) -> PathBuf {
    let sha256 = |bytes: &[u8]| crate::oci::Digest::of(bytes).hex().to_owned();
    let dir = root.join("package");
    std::fs::create_dir_all(dir.join("components")).unwrap();
    std::fs::create_dir_all(dir.join("images/blobs/sha256")).unwrap();
    let component = vec![7u8; 300_000];
    let blob = b"blob".to_vec();
    std::fs::write(dir.join("components/web.tar"), &component).unwrap();
    std::fs::write(dir.join("images/blobs/sha256/aa"), &blob).unwrap();
    let checksums = format!(
        "{} components/web.tar\n{} images/blobs/sha256/aa\n",
        sha256(&component),
        sha256(&blob)
    );
    std::fs::write(dir.join("checksums.txt"), &checksums).unwrap();
    let definition = format!(
        "kind: JackalPackageConfig\nmetadata:\n  name: fuzzed\n  aggregateChecksum: {}\ncomponents:\n  - name: web\n",
        sha256(checksums.as_bytes())
    );
    std::fs::write(dir.join("jackal.yaml"), definition).unwrap();
    dir
}

/// Every path under `root` (relative), directories included, without following links.
fn tree(root: &Path) -> Vec<(PathBuf, std::fs::FileType)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                pending.push(path.clone());
            }
            found.push((path.strip_prefix(root).map(Path::to_owned).unwrap_or(path), kind));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Extracts `archive` (inside `root`) into `root/out` and checks the invariants.
fn check_extract(root: &Path, archive: &Path, limits: &Limits) -> Result<(), TestCaseError> {
    let destination = root.join("out");
    let before: Vec<PathBuf> = tree(root).into_iter().map(|(path, _)| path).collect();
    let result = extract(archive, &destination, limits);
    let result_was_ok = result.is_ok();
    let after = tree(root);
    let outside: Vec<PathBuf> = after
        .iter()
        .map(|(path, _)| path.clone())
        .filter(|path| !path.starts_with("out"))
        .collect();
    prop_assert_eq!(&outside, &before, "something was written outside the destination");
    match result {
        Ok(files) => {
            for (path, kind) in &after {
                prop_assert!(
                    kind.is_dir() || kind.is_file(),
                    "{} is neither a file nor a directory",
                    path.display()
                );
            }
            for file in &files {
                prop_assert!(destination.join(file).is_file(), "listed {file} is not a file");
            }
        }
        Err(error) => {
            prop_assert!(
                !destination.exists(),
                "a refused archive left {} behind",
                destination.display()
            );
            let message = error.to_string();
            prop_assert!(
                message.contains(&archive.display().to_string()),
                "the error does not name the archive: {message}"
            );
        }
    }
    // read_leading and the streaming verifier take the same input without unpacking: they must
    // not panic either, and the verifier must not accept what extraction refuses.
    let _ = read_leading(archive, &[DEFINITION, SIGNATURE, CHECKSUMS], 1 << 20);
    let options = crate::package::verify::VerifyOptions::default();
    let verified = crate::package::verify::verify_file(archive, &options, |_, _| true);
    prop_assert!(
        verified.is_err() || result_was_ok,
        "verify_file accepted an archive extract refused"
    );
    Ok(())
}

fn path_piece() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "..",
        ".",
        "",
        "/",
        "//",
        "a",
        "b",
        "jackal.yaml",
        "checksums.txt",
        "images",
        "blobs",
        "x\\..",
        "...",
        "\u{e9}",
        "a b",
        "out",
        "-",
    ])
    .prop_map(str::to_owned)
}

fn entry_path() -> impl Strategy<Value = String> {
    (prop::bool::ANY, prop::collection::vec(path_piece(), 1..5)).prop_map(|(absolute, pieces)| {
        let joined = pieces.join("/");
        let path = if absolute { format!("/{joined}") } else { joined };
        path.chars().take(99).collect()
    })
}

#[derive(Clone, Debug)]
struct Entry {
    path: String,
    kind: u8,
    size: usize,
    link: String,
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        entry_path(),
        prop::sample::select(b"0012234567xgLK\0".to_vec()),
        0usize..3000,
        entry_path(),
    )
        .prop_map(|(path, kind, size, link)| Entry {
            path,
            kind,
            size,
            link,
        })
}

/// Byte-level damage to an archive.
#[derive(Clone, Debug)]
enum Damage {
    Flip { at: usize, mask: u8 },
    Truncate { at: usize },
    Overwrite { at: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        any::<usize>().prop_map(|at| Damage::Truncate { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    if bytes.is_empty() {
        return;
    }
    match damage {
        Damage::Flip { at, mask } => {
            let at = at % bytes.len();
            bytes[at] ^= mask;
        }
        Damage::Truncate { at } => bytes.truncate(at % bytes.len()),
        Damage::Overwrite { at, bytes: new } => {
            let at = at % bytes.len();
            let end = (at + new.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&new[..end - at]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn generated_hostile_archives_stay_inside(
        entries in prop::collection::vec(entry(), 1..8),
        compress in prop::bool::ANY,
        max_entry in 100u64..4000,
        max_entries in 1usize..10,
    ) {
        let root = scratch("fuzz-generated");
        let raw: Vec<Vec<u8>> = entries
            .iter()
            .map(|entry| raw_entry(&entry.path, entry.kind, &vec![b'x'; entry.size], &entry.link))
            .collect();
        let mut tar: Vec<u8> = raw.concat();
        tar.extend([0u8; 1024]);
        let bytes = if compress { zstd::encode_all(tar.as_slice(), 1).unwrap() } else { tar };
        let archive = root.join("package.tar.zst");
        std::fs::write(&archive, bytes).unwrap();
        let limits = Limits { max_entry, max_total: max_entry * 3, max_entries };
        let outcome = check_extract(&root, &archive, &limits);
        let _ = std::fs::remove_dir_all(&root);
        outcome?;
    }

    #[test]
    fn damaged_packages_are_refused_or_read_whole(
        compress in prop::bool::ANY,
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let root = scratch("fuzz-damaged");
        let source = package(&root);
        let archive = root.join("package.tar.zst");
        write(&source, &archive, compress).unwrap();
        std::fs::remove_dir_all(&source).unwrap();
        let mut bytes = std::fs::read(&archive).unwrap();
        for damage in &damages {
            apply(&mut bytes, damage);
        }
        std::fs::write(&archive, &bytes).unwrap();
        let outcome = check_extract(&root, &archive, &Limits::default());
        let _ = std::fs::remove_dir_all(&root);
        outcome?;
    }
}

/// `PROPTEST_CASES` when set (a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

/// The damaged-package property means something only if the undamaged package verifies.
#[test]
fn the_undamaged_fixture_verifies() {
    let root = scratch("fuzz-fixture");
    let source = package(&root);
    let archive = root.join("package.tar.zst");
    write(&source, &archive, true).unwrap();
    let options = crate::package::verify::VerifyOptions::default();
    let verified = crate::package::verify::verify_file(&archive, &options, |_, _| false).unwrap();
    assert_eq!(verified.verified.files, 2);
    let _ = std::fs::remove_dir_all(&root);
}
