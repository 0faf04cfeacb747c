//! Which namespaces Jackal acts in: the webhook's namespace selector (what the API server sends it)
//! and the same decision made in code (where the pull-Secret controller puts Secrets). Both live
//! here so that they cannot drift; neither the webhook nor a controller owns them.

use std::collections::BTreeMap;

use jackal_crds::init::NamespaceSelection;
use jackal_crds::names::{AGENT_LABEL, AGENT_OPT_IN_VALUE, AGENT_OPT_OUT_VALUES, NAMESPACE};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Namespaces never rewritten, whatever the policy: Jackal's own (the registry and the operator
/// live there) and the control plane's.
pub const EXCLUDED_NAMESPACES: [&str; 3] = [NAMESPACE, "kube-system", "kube-node-lease"];

/// Whether pods in a namespace with `name` and `labels` are rewritten under `selection`.
pub fn namespace_is_rewritten(
    name: &str,
    labels: &BTreeMap<String, String>,
    selection: NamespaceSelection,
) -> bool {
    if EXCLUDED_NAMESPACES.contains(&name) {
        return false;
    }
    let agent = labels.get(AGENT_LABEL).map(String::as_str);
    match selection {
        NamespaceSelection::All => !agent.is_some_and(|value| AGENT_OPT_OUT_VALUES.contains(&value)),
        NamespaceSelection::OptIn => agent == Some(AGENT_OPT_IN_VALUE),
    }
}

/// The namespace selector making the decision of [`namespace_is_rewritten`] in the API server.
pub fn namespace_selector(selection: NamespaceSelection) -> LabelSelector {
    selector(vec![
        requirement("kubernetes.io/metadata.name", "NotIn", &EXCLUDED_NAMESPACES),
        match selection {
            NamespaceSelection::All => requirement(AGENT_LABEL, "NotIn", &AGENT_OPT_OUT_VALUES),
            NamespaceSelection::OptIn => requirement(AGENT_LABEL, "In", &[AGENT_OPT_IN_VALUE]),
        },
    ])
}

/// A selector requiring every one of `requirements`.
pub fn selector(requirements: Vec<LabelSelectorRequirement>) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(requirements),
        match_labels: None,
    }
}

/// `key operator values` (`In`, `NotIn`).
pub fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: Some(values.iter().map(|value| (*value).to_owned()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluates a selector of `In`/`NotIn` expressions against a namespace, as the API server
    /// does (the name is the `kubernetes.io/metadata.name` label it sets on every namespace).
    fn matches(selector: &LabelSelector, name: &str, labels: &BTreeMap<String, String>) -> bool {
        let mut labels = labels.clone();
        labels.insert("kubernetes.io/metadata.name".into(), name.into());
        selector.match_expressions.iter().flatten().all(|requirement| {
            let value = labels.get(&requirement.key);
            let listed = value.is_some_and(|value| requirement.values.iter().flatten().any(|v| v == value));
            match requirement.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                other => panic!("unexpected operator {other}"),
            }
        })
    }

    #[test]
    fn the_decision_in_code_matches_the_selector() {
        let labels = |value: &str| BTreeMap::from([("jackal.dev/agent".to_owned(), value.to_owned())]);
        let none = BTreeMap::new();
        for (name, labels, selection, expected) in [
            ("shop", &none, NamespaceSelection::All, true),
            ("shop", &labels("skip"), NamespaceSelection::All, false),
            ("shop", &labels("ignore"), NamespaceSelection::All, false),
            ("kube-system", &none, NamespaceSelection::All, false),
            (
                "kube-node-lease",
                &labels("mutate"),
                NamespaceSelection::All,
                false,
            ),
            ("jackal", &labels("mutate"), NamespaceSelection::OptIn, false),
            ("shop", &none, NamespaceSelection::OptIn, false),
            ("shop", &labels("mutate"), NamespaceSelection::OptIn, true),
        ] {
            let context = format!("{name} {labels:?} {selection:?}");
            assert_eq!(
                namespace_is_rewritten(name, labels, selection),
                expected,
                "{context}"
            );
            assert_eq!(
                matches(&namespace_selector(selection), name, labels),
                expected,
                "selector: {context}"
            );
        }
    }
}
