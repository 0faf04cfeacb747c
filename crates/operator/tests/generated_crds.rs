//! The CRD YAML committed into the Helm chart and `config/crd/` is exactly what the code generates,
//! so installing either never disagrees with the types the operator and plugin compile against.

use std::path::Path;

const COMMITTED_DIRS: [&str; 2] = ["charts/jackal/crds", "config/crd"];

#[test]
fn committed_crds_match_the_generated_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
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
