use super::*;

pub(super) fn scratch(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("jackal-archive-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    path
}

pub(super) fn package(root: &Path) -> PathBuf {
    let dir = root.join("package");
    std::fs::create_dir_all(dir.join("components")).unwrap();
    std::fs::create_dir_all(dir.join("images/blobs/sha256")).unwrap();
    std::fs::write(dir.join("jackal.yaml"), "kind: JackalPackageConfig\n").unwrap();
    std::fs::write(dir.join("checksums.txt"), "abc components/web.tar\n").unwrap();
    std::fs::write(dir.join("components/web.tar"), vec![7u8; 300_000]).unwrap();
    std::fs::write(dir.join("images/blobs/sha256/aa"), b"blob").unwrap();
    dir
}

/// A raw tar entry header (for archives no well-behaved writer produces).
pub(super) fn raw_entry(name: &str, kind: u8, content: &[u8], link: &str) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    let mut block = header.as_mut_bytes().to_vec();
    block[..name.len()].copy_from_slice(name.as_bytes());
    block[100..107].copy_from_slice(b"0000644");
    block[124..135].copy_from_slice(format!("{:011o}", content.len()).as_bytes());
    block[156] = kind;
    block[157..157 + link.len()].copy_from_slice(link.as_bytes());
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    header.as_mut_bytes().copy_from_slice(&block);
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(content);
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    bytes
}

fn hostile(root: &Path, name: &str, entries: &[Vec<u8>], compress: bool) -> PathBuf {
    let mut tar: Vec<u8> = entries.concat();
    tar.extend([0u8; 1024]);
    let path = root.join(name);
    let bytes = if compress {
        zstd::encode_all(tar.as_slice(), 3).unwrap()
    } else {
        tar
    };
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn writing_is_deterministic_and_round_trips() {
    let root = scratch("roundtrip");
    let dir = package(&root);
    let first = root.join("one.tar.zst");
    let second = root.join("two.tar.zst");
    write(&dir, &first, true).unwrap();
    // Touch the files: times must not matter.
    std::fs::write(dir.join("images/blobs/sha256/aa"), b"blob").unwrap();
    write(&dir, &second, true).unwrap();
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
        "same content, same bytes"
    );

    let leading = read_leading(&first, &[DEFINITION], 1 << 20).unwrap();
    assert_eq!(leading[DEFINITION], b"kind: JackalPackageConfig\n");
    let out = root.join("out");
    let mut files = extract(&first, &out, &Limits::default()).unwrap();
    assert_eq!(files[0], "jackal.yaml", "the definition comes first");
    files.sort();
    assert_eq!(
        files,
        [
            "checksums.txt",
            "components/web.tar",
            "images/blobs/sha256/aa",
            "jackal.yaml"
        ]
    );
    assert_eq!(
        std::fs::read(out.join("components/web.tar")).unwrap(),
        vec![7u8; 300_000]
    );

    let plain = root.join("plain.tar");
    write(&dir, &plain, false).unwrap();
    extract(&plain, &root.join("plain-out"), &Limits::default()).unwrap();
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn hostile_archives_are_refused_naming_the_entry() {
    let root = scratch("hostile");
    let outside = root.join("escaped");
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        (
            "parent",
            vec![raw_entry("../escaped", b'0', b"x", "")],
            "escapes the package",
        ),
        (
            "nested-parent",
            vec![raw_entry("images/../../escaped", b'0', b"x", "")],
            "escapes the package",
        ),
        (
            "absolute",
            vec![raw_entry("/tmp/escaped", b'0', b"x", "")],
            "escapes the package",
        ),
        (
            "symlink",
            vec![raw_entry("images/link", b'2', b"", "/etc/passwd")],
            "is a symbolic link",
        ),
        (
            "hardlink",
            vec![raw_entry("images/hard", b'1', b"", "../../escaped")],
            "is a hard link",
        ),
        (
            "device",
            vec![raw_entry("dev/null", b'3', b"", "")],
            "is a character device",
        ),
        ("fifo", vec![raw_entry("pipe", b'6', b"", "")], "is a FIFO"),
        (
            "duplicate",
            vec![
                raw_entry("jackal.yaml", b'0', b"a", ""),
                raw_entry("./jackal.yaml", b'0', b"b", ""),
            ],
            "appears twice",
        ),
        (
            "directory-then-file",
            vec![raw_entry("out", b'5', b"", ""), raw_entry("out", b'0', b"", "")],
            "is both a file and a directory",
        ),
        (
            "file-then-directory",
            vec![raw_entry("a", b'0', b"x", ""), raw_entry("a", b'5', b"", "")],
            "is both a file and a directory",
        ),
        (
            "file-then-child",
            vec![raw_entry("a", b'0', b"x", ""), raw_entry("a/b", b'0', b"y", "")],
            "is both a file and a directory",
        ),
        (
            "child-then-file",
            vec![raw_entry("a/b", b'0', b"y", ""), raw_entry("a", b'0', b"x", "")],
            "is both a file and a directory",
        ),
    ];
    for (name, entries, message) in cases {
        for compress in [false, true] {
            let archive = hostile(&root, &format!("{name}-{compress}.tar"), &entries, compress);
            let destination = root.join(format!("out-{name}-{compress}"));
            let error = extract(&archive, &destination, &Limits::default())
                .unwrap_err()
                .to_string();
            assert!(error.contains(message), "{name}: {error}");
            assert!(!destination.exists(), "{name}: a partial unpack was left behind");
            assert!(!outside.exists(), "{name}: wrote outside the destination");
        }
    }

    // Oversized entries and totals.
    let big = hostile(
        &root,
        "big.tar",
        &[raw_entry("components/a.tar", b'0', &[1u8; 5000], "")],
        false,
    );
    let small = Limits {
        max_entry: 4096,
        ..Limits::default()
    };
    let error = extract(&big, &root.join("out-big"), &small)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("\"components/a.tar\" is 5000 bytes, over the limit of 4096"),
        "{error}"
    );
    let many = hostile(
        &root,
        "many.tar",
        &[
            raw_entry("a", b'0', &[1u8; 3000], ""),
            raw_entry("b", b'0', &[1u8; 3000], ""),
        ],
        false,
    );
    let error = extract(
        &many,
        &root.join("out-many"),
        &Limits {
            max_total: 5000,
            ..Limits::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("more than 5000 bytes in total"), "{error}");

    // Truncated zstd and truncated tar.
    let dir = package(&root);
    let whole = root.join("whole.tar.zst");
    write(&dir, &whole, true).unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    let cut = root.join("cut.tar.zst");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let error = extract(&cut, &root.join("out-cut"), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("is truncated or corrupt"), "{error}");
    assert!(!root.join("out-cut").exists());
    let plain = root.join("whole.tar");
    write(&dir, &plain, false).unwrap();
    let bytes = std::fs::read(&plain).unwrap();
    let cut = root.join("cut.tar");
    std::fs::write(&cut, &bytes[..5000]).unwrap();
    let error = extract(&cut, &root.join("out-cut-tar"), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("truncated or corrupt"), "{error}");

    // An existing destination is never written into.
    std::fs::create_dir_all(root.join("exists")).unwrap();
    assert!(matches!(
        extract(&whole, &root.join("exists"), &Limits::default()),
        Err(ArchiveError::Exists(_))
    ));
    std::fs::remove_dir_all(root).unwrap();
}
