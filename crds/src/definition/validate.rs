//! Checks a package definition beyond its shape: names, uniqueness, combinations the original
//! tool refused. Every problem is reported at once, each with the path of the field.

use std::collections::BTreeSet;
use std::fmt;

use super::{Chart, Component, ManifestSet, PackageDefinition};

/// One thing wrong with a definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Field path (`components[1].charts[0].name`).
    pub field: String,
    /// What is wrong, lowercase.
    pub message: String,
    /// The line the field is written on (or, when it is missing, its nearest enclosing field's).
    pub line: Option<usize>,
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(formatter, "line {line}: ")?;
        }
        write!(formatter, "{}: {}", self.field, self.message)
    }
}

/// Why a definition cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The YAML does not parse into a definition.
    #[error("{message}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's message, with line, column and a snippet.
        message: String,
    },
    /// The definition parses but is invalid.
    #[error("{file} is not a valid package definition:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        file: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// The definition cannot be rendered.
    #[error("failed to render the package definition: {0}")]
    Render(String),
}

fn is_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 253
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[bytes.len() - 1] != b'-'
        && bytes[0] != b'-'
}

fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

impl PackageDefinition {
    /// Every problem of the definition (empty when it is valid).
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |field: String, message: &str| {
            problems.push(Problem {
                field,
                message: message.to_owned(),
                line: None,
            })
        };
        if !is_name(&self.metadata.name) {
            problem(
                "metadata.name".into(),
                "must be lowercase letters, digits and dashes, not starting or ending with a dash",
            );
        }
        if self.components.is_empty() {
            problem("components".into(), "a package needs at least one component");
        }
        let mut names = BTreeSet::new();
        for (index, component) in self.components.iter().enumerate() {
            let at = format!("components[{index}]");
            if !is_name(&component.name) {
                problem(
                    format!("{at}.name"),
                    "must be lowercase letters, digits and dashes",
                );
            }
            if !names.insert(component.name.as_str()) {
                problem(format!("{at}.name"), "another component has this name");
            }
            component_problems(component, &at, &mut problem);
        }
        let mut variable_names = BTreeSet::new();
        for (index, constant) in self.constants.iter().enumerate() {
            if !is_variable_name(&constant.name) {
                problem(
                    format!("constants[{index}].name"),
                    "must be upper-case letters, digits and underscores",
                );
            }
            if !variable_names.insert(("const", constant.name.as_str())) {
                problem(
                    format!("constants[{index}].name"),
                    "another constant has this name",
                );
            }
        }
        for (index, variable) in self.variables.iter().enumerate() {
            if !is_variable_name(&variable.name) {
                problem(
                    format!("variables[{index}].name"),
                    "must be upper-case letters, digits and underscores",
                );
            }
            if !variable_names.insert(("var", variable.name.as_str())) {
                problem(
                    format!("variables[{index}].name"),
                    "another variable has this name",
                );
            }
            if let Some(kind) = variable
                .kind
                .as_deref()
                .filter(|kind| !matches!(*kind, "raw" | "file"))
            {
                let _ = kind;
                problem(format!("variables[{index}].type"), "must be raw or file");
            }
        }
        problems
    }

    /// The definition, or every problem it has, each placed on its line of `text` (the YAML the
    /// definition was parsed from).
    pub fn validated(self, source: &str, text: &str) -> Result<Self, DefinitionError> {
        let mut problems = self.problems();
        for problem in &mut problems {
            problem.line = super::locate::line_of(text, &problem.field);
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(DefinitionError::Invalid {
                file: source.to_owned(),
                problems,
            })
        }
    }
}

fn component_problems(component: &Component, at: &str, problem: &mut impl FnMut(String, &str)) {
    if component.is_required() && (component.default || component.group.is_some()) {
        problem(
            format!("{at}.required"),
            "a required component cannot also be default or in a group",
        );
    }
    let mut charts = BTreeSet::new();
    for (index, chart) in component.charts.iter().enumerate() {
        let at = format!("{at}.charts[{index}]");
        chart_problems(chart, &at, problem);
        if !charts.insert(chart.name.as_str()) {
            problem(
                format!("{at}.name"),
                "another chart of this component has this name",
            );
        }
    }
    let mut manifests = BTreeSet::new();
    for (index, manifest) in component.manifests.iter().enumerate() {
        let at = format!("{at}.manifests[{index}]");
        manifest_problems(manifest, &at, problem);
        if !manifests.insert(manifest.name.as_str()) {
            problem(
                format!("{at}.name"),
                "another manifest set of this component has this name",
            );
        }
    }
    for (index, file) in component.files.iter().enumerate() {
        let at = format!("{at}.files[{index}]");
        match &file.shasum {
            Some(shasum) if !is_sha256(shasum) => {
                problem(format!("{at}.shasum"), "must be a sha256: 64 hex digits")
            }
            None if is_url(&file.source) => problem(
                format!("{at}.shasum"),
                "a file downloaded from a URL needs its sha256",
            ),
            _ => {}
        }
        if file.target.is_empty() {
            problem(format!("{at}.target"), "is required");
        }
    }
    for (index, archive) in component.image_archives.iter().enumerate() {
        if archive.images.is_empty() {
            problem(
                format!("{at}.imageArchives[{index}].images"),
                "name at least one image to take from the archive",
            );
        }
    }
}

fn chart_problems(chart: &Chart, at: &str, problem: &mut impl FnMut(String, &str)) {
    if !is_name(&chart.name) || chart.name.len() > 40 {
        problem(
            format!("{at}.name"),
            "must be at most 40 lowercase letters, digits and dashes",
        );
    }
    match (&chart.url, &chart.local_path) {
        (Some(_), Some(_)) => problem(format!("{at}.url"), "set either url or localPath, not both"),
        (None, None) => problem(
            format!("{at}.url"),
            "set url (a Helm repository, oci:// or git) or localPath",
        ),
        (Some(url), None) if chart.version.is_none() && !url.contains(".git") => problem(
            format!("{at}.version"),
            "a chart from a repository needs its version",
        ),
        _ => {}
    }
    if chart.namespace.as_deref().is_none_or(str::is_empty) {
        problem(format!("{at}.namespace"), "is required");
    }
}

fn manifest_problems(manifest: &ManifestSet, at: &str, problem: &mut impl FnMut(String, &str)) {
    if !is_name(&manifest.name) || manifest.name.len() > 40 {
        problem(
            format!("{at}.name"),
            "must be at most 40 lowercase letters, digits and dashes",
        );
    }
    if manifest.files.is_empty() && manifest.kustomizations.is_empty() {
        problem(format!("{at}.files"), "list at least one file or kustomization");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PackageDefinition, DefinitionError> {
        PackageDefinition::parse(text, "demo/jackal.yaml")?.validated("demo/jackal.yaml", text)
    }

    #[test]
    fn a_typical_definition_parses() {
        let definition = parse(
            r#"
kind: ZarfPackageConfig
metadata:
  name: podinfo
  version: 6.4.0
  description: podinfo for testing
components:
  - name: podinfo
    required: true
    charts:
      - name: podinfo
        version: 6.4.0
        namespace: podinfo
        url: https://stefanprodan.github.io/podinfo
        valuesFiles: [values.yaml]
    images:
      - ghcr.io/stefanprodan/podinfo:6.4.0
    actions:
      onDeploy:
        after:
          - wait:
              cluster: {kind: deployment, name: podinfo, namespace: podinfo, condition: available}
  - name: extras
    only:
      cluster: {architecture: amd64}
      flavor: upstream
    manifests:
      - name: config
        namespace: podinfo
        files: [config.yaml]
    files:
      - source: https://example.com/tool
        shasum: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        target: /usr/local/bin/tool
        executable: true
variables:
  - name: DOMAIN
    default: example.com
constants:
  - name: VERSION
    value: "6.4.0"
"#,
        )
        .unwrap();
        assert_eq!(definition.kind, super::super::PackageKind::Package);
        assert_eq!(definition.components[0].charts[0].values_files, ["values.yaml"]);
        assert!(
            definition.components[0].actions.is_some(),
            "actions are carried verbatim"
        );
        assert_eq!(
            definition.components[1].only.as_ref().unwrap().flavor.as_deref(),
            Some("upstream")
        );
        // It renders and parses back to the same definition.
        let yaml = definition.to_yaml().unwrap();
        assert_eq!(PackageDefinition::parse(&yaml, "again").unwrap(), definition);
    }

    #[test]
    fn unknown_fields_are_reported_with_file_line_and_field() {
        let error = parse("kind: JackalPackageConfig\nmetadata:\n  name: demo\ncomponents:\n  - name: web\n    imagez: [nginx]\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 6")
                && error.contains("unknown field `imagez`")
                && error.contains("demo/jackal.yaml"),
            "{error}"
        );
        let error = parse("kind: Banana\nmetadata: {name: demo}\ncomponents: []\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 1") && error.contains("Banana"), "{error}");
    }

    #[test]
    fn every_problem_is_listed_with_its_line_and_field() {
        let error = parse(
            r#"
kind: JackalPackageConfig
metadata: {name: Demo_Package}
components:
  - name: web
    required: true
    default: true
    charts:
      - {name: chart, url: https://charts.example.com}
      - {name: chart, localPath: ./chart, url: https://x, namespace: a, version: "1"}
    manifests:
      - {name: empty}
    files:
      - {source: "https://example.com/f", target: /f}
  - name: web
variables:
  - {name: lower, type: yaml}
"#,
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "line 3: metadata.name: must be lowercase",
            "line 6: components[0].required: a required component cannot also be default",
            "line 9: components[0].charts[0].version: a chart from a repository needs its version",
            "line 9: components[0].charts[0].namespace: is required",
            "line 10: components[0].charts[1].url: set either url or localPath, not both",
            "line 10: components[0].charts[1].name: another chart of this component has this name",
            "line 12: components[0].manifests[0].files: list at least one file",
            "line 14: components[0].files[0].shasum: a file downloaded from a URL needs its sha256",
            "line 15: components[1].name: another component has this name",
            "line 17: variables[0].name: must be upper-case",
            "line 17: variables[0].type: must be raw or file",
        ] {
            assert!(error.contains(expected), "missing {expected:?} in:\n{error}");
        }
    }

    #[test]
    fn newer_zarf_fields_are_accepted_and_kept() {
        let text = r#"
kind: ZarfPackageConfig
metadata: {name: newer}
build:
  terminal: host
  user: me
  architecture: amd64
  timestamp: "2026-01-01T00:00:00Z"
  version: v0.60.0
  provenanceFiles: [zarf.yaml.sig]
  versionRequirements: [{version: v0.60.0, reason: values}]
values:
  files: [values.yaml]
  schema: values.schema.json
documentation:
  readme: README.md
components:
  - name: app
    required: true
    stateAccess: [registryCredentials]
"#;
        let definition = parse(text).expect("newer fields parse");
        assert_eq!(
            definition
                .build
                .as_ref()
                .map(|build| build.provenance_files.clone()),
            Some(vec!["zarf.yaml.sig".to_owned()])
        );
        assert_eq!(definition.components[0].state_access.len(), 1);
        let rendered = definition.to_yaml().expect("render");
        for kept in [
            "schema: values.schema.json",
            "readme: README.md",
            "registryCredentials",
        ] {
            assert!(rendered.contains(kept), "{kept:?} is kept:\n{rendered}");
        }
    }

    #[test]
    fn hostile_yaml_is_refused_not_expanded() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
        assert!(PackageDefinition::parse(bomb, "bomb.yaml").is_err());
        let deep = format!(
            "kind: JackalPackageConfig\nmetadata: {{name: x}}\ncomponents: {}{}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(PackageDefinition::parse(&deep, "deep.yaml").is_err());
    }
}
