//! Bounded fuzzing of the package definition parser: arbitrary text and random mutations of real
//! definitions never panic, and every refusal names the file (and, for syntax, the line).
//! `PROPTEST_CASES` raises the number of cases for a longer run.

use jackal_crds::definition::PackageDefinition;
use proptest::prelude::*;

const SOURCE: &str = "fuzz/jackal.yaml";
const DEMO: &str = include_str!("../../tests/fixtures/packages/demo/jackal.yaml");
const ORIGINAL: &str = include_str!("../../tests/fixtures/packages/original-example/jackal.yaml");

/// One edit of a definition's text.
#[derive(Clone, Debug)]
enum Edit {
    Delete { at: usize, length: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    SwapLines { first: usize, second: usize },
    Indent { line: usize, spaces: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    let yamlish = prop::sample::select(vec![
        ":",
        "- ",
        "  ",
        "\n",
        "&a ",
        "*a",
        "!!binary ",
        "{",
        "}",
        "[",
        "]",
        "'",
        "\"",
        "#",
        "|",
        ">",
        "---\n",
        "~",
        "null",
        "true",
        "0x",
        "1e999",
        "\t",
        "\u{feff}",
        "components:",
        "name: x",
        "only: {cluster: {architecture: riscv}}",
        "shasum: zz",
        "images: [a]",
        "required: maybe",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, length)| Edit::Delete { at, length }),
        (any::<usize>(), prop_oneof![yamlish, "\\PC{0,12}"]).prop_map(|(at, text)| Edit::Insert { at, text }),
        any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(first, second)| Edit::SwapLines { first, second }),
        (any::<usize>(), 0usize..9).prop_map(|(line, spaces)| Edit::Indent { line, spaces }),
    ]
}

fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let count = lines.len().max(1);
    match edit {
        Edit::Delete { at, length } => {
            let start = boundary(text, *at);
            let end = boundary(text, start + length).max(start);
            format!("{}{}", &text[..start], &text[end..])
        }
        Edit::Insert { at, text: inserted } => {
            let at = boundary(text, *at);
            format!("{}{inserted}{}", &text[..at], &text[at..])
        }
        Edit::DuplicateLine { line } => {
            if let Some(copy) = lines.get(line % count).cloned() {
                lines.insert(line % count, copy);
            }
            lines.join("\n")
        }
        Edit::SwapLines { first, second } => {
            if !lines.is_empty() {
                lines.swap(first % count, second % count);
            }
            lines.join("\n")
        }
        Edit::Indent { line, spaces } => {
            if let Some(target) = lines.get_mut(line % count) {
                *target = format!("{}{}", " ".repeat(*spaces), target.trim_start());
            }
            lines.join("\n")
        }
    }
}

/// Parses and validates as `package create` does; the error, if any, must name the file.
fn check(text: &str) -> Result<(), TestCaseError> {
    let result =
        PackageDefinition::parse(text, SOURCE).and_then(|definition| definition.validated(SOURCE, text));
    if let Err(error) = result {
        let message = error.to_string();
        prop_assert!(
            message.contains(SOURCE),
            "the error does not name the file: {message}"
        );
        prop_assert!(!message.contains("<input>"), "the error names <input>: {message}");
    }
    Ok(())
}

proptest! {
    // Failures print the minimal input; integration tests have no lib.rs to store regressions by.
    #![proptest_config(ProptestConfig { cases: cases(512), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check(&text)?;
    }

    #[test]
    fn mutated_definitions_never_panic(
        original in prop::bool::ANY,
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let mut text = if original { ORIGINAL } else { DEMO }.to_owned();
        for edit in &edits {
            text = apply(&text, edit);
        }
        check(&text)?;
    }

    #[test]
    fn syntax_errors_name_a_line(line in 0usize..40) {
        // An unclosed flow sequence inserted on some line is always a syntax error.
        let text = apply(DEMO, &Edit::Insert { at: line_start(DEMO, line), text: "broken: [\n".to_owned() });
        let error = PackageDefinition::parse(&text, SOURCE).err();
        prop_assert!(error.is_some(), "an unclosed '[' parsed");
        let message = error.map(|error| error.to_string()).unwrap_or_default();
        prop_assert!(message.contains("line"), "no line in: {message}");
    }
}

fn line_start(text: &str, line: usize) -> usize {
    text.split_inclusive('\n').take(line).map(str::len).sum()
}

/// `PROPTEST_CASES` when set (a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

/// Found by the fuzzer: the parser's message for an empty file did not name it.
#[test]
fn an_empty_definition_names_the_file() {
    for text in ["", "\n", "# only a comment\n"] {
        let error =
            PackageDefinition::parse(text, SOURCE).and_then(|definition| definition.validated(SOURCE, text));
        let message = error.err().map(|error| error.to_string()).unwrap_or_default();
        assert!(message.contains(SOURCE), "{text:?} gave {message:?}");
    }
}
