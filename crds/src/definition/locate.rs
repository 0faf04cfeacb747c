//! Where a field of a `jackal.yaml` is written: the line a validation problem points at. The YAML
//! is read again as a tree of spanned nodes (only when there are problems to place).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML node with the positions of its children.
enum Node {
    Map(Vec<(String, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Leaf,
}

/// One step of a field path: `components`, `[1]`.
#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The line (1-based) where `field` (`components[1].charts[0].name`) is written in `text`; when
/// the field itself is absent, the line of the nearest enclosing field that is there.
pub(super) fn line_of(text: &str, field: &str) -> Option<usize> {
    let root: Spanned<Node> = serde_saphyr::from_str(text).ok()?;
    let mut current = &root;
    let mut line = None;
    for step in steps(field) {
        let next = match (&current.value, step) {
            (Node::Map(entries), Step::Key(key)) => {
                entries.iter().find(|(name, _)| name == key).map(|(_, node)| node)
            }
            (Node::Seq(items), Step::Index(index)) => items.get(index),
            _ => None,
        };
        match next {
            Some(node) => {
                current = node;
                line = Some(node.referenced.line()).filter(|line| *line > 0).or(line);
            }
            None => break,
        }
    }
    line.map(|line| line as usize)
}

fn steps(field: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in field.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(key, rest)| (key, rest));
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(index) = index.parse() {
                steps.push(Step::Index(index));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    steps
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = sequence.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            entries.push((key.0, map.next_value::<Spanned<Node>>()?));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key as text (keys that are not scalars become empty and match nothing).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let node = serde_json::Value::deserialize(deserializer)?;
        Ok(Key(match node {
            serde_json::Value::String(text) => text,
            serde_json::Value::Number(number) => number.to_string(),
            serde_json::Value::Bool(flag) => flag.to_string(),
            _ => String::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "kind: JackalPackageConfig
metadata:
  name: Bad_Name
components:
  - name: first
  - name: second
    charts:
      - name: chart
        namespace: x
";

    #[test]
    fn fields_are_found_by_path() {
        assert_eq!(line_of(TEXT, "metadata.name"), Some(3));
        assert_eq!(line_of(TEXT, "components[1].name"), Some(6));
        assert_eq!(line_of(TEXT, "components[1].charts[0].namespace"), Some(9));
        // An absent field points at its nearest enclosing field.
        assert_eq!(line_of(TEXT, "components[1].charts[0].version"), Some(8));
        assert_eq!(line_of(TEXT, "variables[0].name"), None);
        assert_eq!(line_of("not: [valid", "not"), None);
    }

    #[test]
    fn paths_split_into_keys_and_indexes() {
        assert_eq!(
            steps("components[1].charts[0].name"),
            vec![
                Step::Key("components"),
                Step::Index(1),
                Step::Key("charts"),
                Step::Index(0),
                Step::Key("name")
            ]
        );
    }
}
