//! Rendering of the CustomResourceDefinitions generated from `jackal-crds`, for `jackal-operator crd`
//! and for the copies committed into `charts/jackal/crds/` and `config/crd/`.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Every definition as one multi-document YAML stream.
pub fn render_all() -> anyhow::Result<String> {
    let mut out = String::new();
    for crd in jackal_crds::all() {
        out.push_str("---\n");
        out.push_str(&jackal_crds::to_yaml(&crd).context("failed to render a definition as YAML")?);
    }
    Ok(out)
}

/// Writes each definition to `<dir>/<plural>.<group>.yaml`, returning the paths written.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let mut written = Vec::new();
    for crd in jackal_crds::all() {
        let path = dir.join(jackal_crds::file_name(&crd));
        let yaml = jackal_crds::to_yaml(&crd).context("failed to render a definition as YAML")?;
        std::fs::write(&path, yaml).with_context(|| format!("failed to write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
