//! The CRD YAML committed into the Helm chart and `config/crd/` is exactly what the code generates,
//! so installing either never disagrees with the types the operator and plugin compile against;
//! the `crd` command prints and writes the same.

use std::path::Path;

const COMMITTED_DIRS: [&str; 2] = ["charts/jackal/crds", "config/crd"];

#[test]
fn committed_crds_match_the_generated_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in COMMITTED_DIRS {
        let mut expected_files = Vec::new();
        for crd in jackal_crds::all() {
            let file = jackal_crds::file_name(&crd);
            let generated = jackal_crds::to_yaml(&crd).expect("generated CRD renders as YAML");
            let committed = std::fs::read_to_string(root.join(dir).join(&file)).unwrap_or_default();
            assert!(
                committed == generated,
                "{dir}/{file} is missing or stale: run `make generate` and commit the result"
            );
            expected_files.push(file);
        }
        let mut present: Vec<String> = std::fs::read_dir(root.join(dir))
            .expect("committed CRD directory exists")
            .map(|entry| {
                entry
                    .expect("readable entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
            .collect();
        present.sort();
        expected_files.sort();
        assert_eq!(
            present, expected_files,
            "{dir} holds CRDs the code no longer generates"
        );
    }
}

/// `jackal-operator crd` (what `make generate` and `kubectl apply -f -` use) prints the same CRDs,
/// and `--output-dir` writes the same files that are committed.
#[test]
fn the_crd_command_prints_and_writes_the_committed_crds() {
    let binary = env!("CARGO_BIN_EXE_jackal-operator");
    let printed = std::process::Command::new(binary)
        .arg("crd")
        .output()
        .expect("jackal-operator runs");
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let printed = String::from_utf8(printed.stdout).expect("UTF-8 YAML");
    for crd in jackal_crds::all() {
        let generated = jackal_crds::to_yaml(&crd).expect("generated CRD renders as YAML");
        assert!(
            printed.contains(&generated),
            "{} is not printed as generated",
            jackal_crds::file_name(&crd)
        );
    }

    let directory = std::env::temp_dir().join(format!("jackal-crd-command-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    let written = std::process::Command::new(binary)
        .arg("crd")
        .arg("--output-dir")
        .arg(&directory)
        .output()
        .expect("jackal-operator runs");
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for crd in jackal_crds::all() {
        let file = jackal_crds::file_name(&crd);
        let committed = std::fs::read_to_string(root.join("config/crd").join(&file)).unwrap_or_default();
        let fresh = std::fs::read_to_string(directory.join(&file)).unwrap_or_default();
        assert!(
            !fresh.is_empty() && fresh == committed,
            "{file} written differs from the committed one"
        );
    }
    let _ = std::fs::remove_dir_all(&directory);
}
