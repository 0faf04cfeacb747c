//! The Dockerfile's final stage builds the same image as `scripts/operator-image`: the files
//! `images/operator.env` lists at the same paths, the same user, entrypoint, command and label
//! keys. (Building it needs a container engine, which the test machines do not have.)

use std::collections::BTreeMap;

use anyhow::Context;
use jackal_tests::repository_root;

use crate::Definition;

/// The instructions of the Dockerfile's last stage, continuation lines joined.
fn final_stage() -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(repository_root().join("Dockerfile"))?;
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let joined = std::mem::take(&mut current);
                let (keyword, rest) = joined.split_once(char::is_whitespace).unwrap_or((&joined, ""));
                if keyword.eq_ignore_ascii_case("FROM") {
                    instructions.clear();
                }
                instructions.push((keyword.to_ascii_uppercase(), rest.trim().to_owned()));
            }
        }
    }
    Ok(instructions)
}

/// Splits `a="b c" d=e` into words, keeping quoted spaces and dropping the quotes.
fn words(text: &str) -> Vec<String> {
    let mut words = vec![String::new()];
    let mut quoted = false;
    for character in text.chars() {
        match character {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if words.last().is_some_and(|word| !word.is_empty()) {
                    words.push(String::new());
                }
            }
            c => {
                if let Some(word) = words.last_mut() {
                    word.push(c);
                }
            }
        }
    }
    words.retain(|word| !word.is_empty());
    words
}

#[test]
fn dockerfile_final_stage_matches_the_image_definition() -> anyhow::Result<()> {
    let definition = Definition::read()?;
    let stage = final_stage()?;
    let all = |keyword: &str| {
        stage
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, rest)| rest.clone())
            .collect::<Vec<_>>()
    };

    let mut copied: Vec<String> = all("COPY")
        .iter()
        .filter_map(|rest| words(rest).last().cloned())
        .collect();
    copied.sort();
    let mut defined: Vec<String> = definition.files()?.into_iter().map(|(_, path, _)| path).collect();
    defined.sort();
    assert_eq!(copied, defined, "COPY destinations of the final stage");

    assert_eq!(all("USER"), [definition.get("IMAGE_USER")?], "USER");
    let entrypoint = format!("[\"{}\"]", definition.get("IMAGE_ENTRYPOINT")?);
    assert_eq!(all("ENTRYPOINT"), [entrypoint], "ENTRYPOINT");
    assert_eq!(
        all("CMD"),
        [format!("[\"{}\"]", definition.get("IMAGE_CMD")?)],
        "CMD"
    );

    let labels: BTreeMap<String, String> = all("LABEL")
        .iter()
        .flat_map(|rest| words(rest))
        .map(|word| {
            word.split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .with_context(|| format!("LABEL {word:?} is not KEY=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(
        labels.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "org.opencontainers.image.description",
            "org.opencontainers.image.revision",
            "org.opencontainers.image.source",
            "org.opencontainers.image.title",
            "org.opencontainers.image.version",
        ],
        "LABEL keys"
    );
    assert_eq!(
        labels["org.opencontainers.image.title"],
        definition.get("IMAGE_TITLE")?
    );
    assert_eq!(
        labels["org.opencontainers.image.description"],
        definition.get("IMAGE_DESCRIPTION")?
    );
    Ok(())
}
