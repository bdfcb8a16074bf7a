//! The names the code reads and the table of docs/configuration.md list the same variables.

use std::collections::BTreeSet;

/// The variables of the table under "## Every environment variable": the first cell of
/// each row, a name in backticks.
fn documented_names(markdown: &str) -> Vec<String> {
    let section = markdown
        .split("\n## ")
        .find(|section| section.starts_with("Every environment variable"))
        .expect("docs/configuration.md has a section \"## Every environment variable\"");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |").map(|(name, _)| name.to_owned()))
        .collect()
}

#[test]
fn the_configuration_table_lists_exactly_the_names_read() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
    let markdown =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"));
    let documented = documented_names(&markdown);
    let read = session_any::env_names();

    let mut seen = BTreeSet::new();
    for name in &documented {
        assert!(seen.insert(name), "{name} is in the table twice");
    }
    let documented: BTreeSet<&String> = documented.iter().collect();
    let read: BTreeSet<&String> = read.iter().collect();
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(
        undocumented.is_empty() && unread.is_empty(),
        "read but not in docs/configuration.md: {undocumented:?}; \
         in the table but read by nothing: {unread:?}"
    );
}

#[test]
fn the_parser_sees_rows_and_nothing_else() {
    let markdown = "# T\n\n## Every environment variable\n\n| Variable | A |\n|---|---|\n\
                    | `ONE` | x |\n| `TWO` | `y` |\nnot a row `THREE` |\n\n## Next\n\n| `FOUR` | z |\n";
    assert_eq!(documented_names(markdown), ["ONE", "TWO"]);
}
