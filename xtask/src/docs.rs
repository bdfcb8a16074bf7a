//! `cargo xtask docs`: builds docs/ as an mdBook and checks it.
//!
//! - mdbook comes from crates.io at a pinned version, installed once under the tools
//!   directory (`cargo install --locked`), so every machine renders the same book.
//! - Every page of docs/ is listed in docs/SUMMARY.md (a page nobody can reach from the
//!   book's navigation is an error), except the few in [`NOT_IN_BOOK`].
//! - Every relative link and anchor of every page resolves: the file exists, and the anchor
//!   is a heading of the Markdown page it points into (ids as mdbook and GitHub make them).
//! - The pages stay readable on GitHub, where links may leave docs/ (a crate's README, a
//!   results file). In the built HTML such links would point nowhere, so they are rewritten
//!   to the repository's web address, and images from outside docs/ are copied in.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::context::Context;
use crate::{process, publish};

/// The mdbook release the book is built with.
pub const MDBOOK_VERSION: &str = "0.5.4";

/// Markdown files under docs/ that are not book pages.
const NOT_IN_BOOK: &[&str] = &["SUMMARY.md", "README.md"];

/// Subdirectory of the book output that receives images linked from outside docs/.
const COPIED_DIR: &str = "repository-files";

/// Replaces what stands between `<!-- results:NAME:begin -->` and `<!-- results:NAME:end -->`
/// in the page `text` with the results file `results`, less its `# ` title (the page's
/// section heading says it already). The commands that measure (`faults`, `soak`, `fuzz`)
/// publish their tables into the docs this way.
pub fn splice_results(text: &str, name: &str, results: &str) -> Result<String, String> {
    let body = results
        .split_once('\n')
        .filter(|(first, _)| first.starts_with("# "))
        .map_or(results, |(_, rest)| rest)
        .trim();
    let (begin, end) = (
        format!("<!-- results:{name}:begin -->"),
        format!("<!-- results:{name}:end -->"),
    );
    match (text.find(&begin), text.find(&end)) {
        (Some(start), Some(stop)) if start < stop => Ok(format!(
            "{}{begin}\n{body}\n{}",
            &text[..start],
            &text[stop..]
        )),
        _ => Err(format!("no {begin} ... {end} markers")),
    }
}

/// Splices each `(name, results)` of `tables` into the page at `path` ([`splice_results`]),
/// reading and writing the page once.
pub fn publish_results(path: &Path, tables: &[(&str, &str)]) -> Result<(), String> {
    let mut text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for (name, results) in tables {
        text =
            splice_results(&text, name, results).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn command(ctx: &Context, args: &[String]) -> Result<ExitCode, String> {
    let mut check_only = false;
    for arg in args {
        match arg.as_str() {
            "--check-only" => check_only = true,
            other => {
                return Err(format!(
                    "`docs` takes only --check-only (links and SUMMARY.md, no build), got `{other}`"
                ))
            }
        }
    }
    let docs = ctx.workspace_root.join("docs");
    let problems = check_sources(&docs)?;
    if !problems.is_empty() {
        return Err(format!(
            "the book's sources have {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ));
    }
    let pages = markdown_files(&docs).len();
    if check_only {
        println!(
            "xtask docs: {pages} pages, every one in SUMMARY.md, every link and anchor resolves"
        );
        return Ok(ExitCode::SUCCESS);
    }

    let mdbook = ensure_mdbook(ctx)?;
    let out = publish::target_dir(ctx)?.join("book");
    ctx.log(format!("mdbook build docs -d {}", out.display()));
    process::run(
        "mdbook build",
        Command::new(&mdbook)
            .current_dir(&ctx.workspace_root)
            .arg("build")
            .arg(&docs)
            .arg("--dest-dir")
            .arg(&out),
    )?;
    let repository = repository_url(&ctx.workspace_root)?;
    let rewritten = rewrite_outside_links(&out, &docs, &ctx.workspace_root, &repository)?;
    println!(
        "xtask docs: {pages} pages built into {}; every link and anchor resolves; {rewritten} \
         links out of docs/ point at the repository; {:.0}s",
        out.join("index.html").display(),
        ctx.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}

/// The pinned mdbook, installed under the tools directory when missing.
fn ensure_mdbook(ctx: &Context) -> Result<PathBuf, String> {
    let root = ctx.tools_dir.join(format!("mdbook-{MDBOOK_VERSION}"));
    let binary = root.join("bin/mdbook");
    if binary.is_file() {
        return Ok(binary);
    }
    let build_dir = ctx.tools_dir.join("mdbook-build");
    ctx.log(format!(
        "installing mdbook {MDBOOK_VERSION} from crates.io into {} (once; a few minutes)",
        root.display()
    ));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let result = process::run(
        "cargo install mdbook",
        Command::new(cargo)
            .args(["install", "--locked", "mdbook", "--version", MDBOOK_VERSION])
            // Only the renderer and its search index: no `serve`/`watch` (a web server and
            // a file watcher the check never uses).
            .args(["--no-default-features", "--features", "search"])
            .arg("--root")
            .arg(&root)
            .arg("--target-dir")
            .arg(&build_dir),
    );
    let _ = fs::remove_dir_all(&build_dir);
    result?;
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!("cargo install mdbook left no {}", binary.display()))
    }
}

/// Every problem of the Markdown sources: pages missing from SUMMARY.md, SUMMARY.md entries
/// without a page, links to missing files, anchors that are not headings.
pub fn check_sources(docs: &Path) -> Result<Vec<String>, String> {
    let summary_path = docs.join("SUMMARY.md");
    let summary = fs::read_to_string(&summary_path)
        .map_err(|e| format!("cannot read {}: {e}", summary_path.display()))?;
    let mut problems = Vec::new();
    let listed: BTreeSet<PathBuf> = links(&summary)
        .into_iter()
        .filter(|link| !is_external(&link.target))
        .map(|link| normalize(&docs.join(link.target.split('#').next().unwrap_or_default())))
        .collect();
    for page in markdown_files(docs) {
        let name = page.strip_prefix(docs).unwrap_or(&page);
        let ignored = NOT_IN_BOOK.iter().any(|n| Path::new(n) == name);
        if !ignored && !listed.contains(&normalize(&page)) {
            problems.push(format!(
                "docs/{} is not in docs/SUMMARY.md: add it to the book's table of contents",
                name.display()
            ));
        }
    }
    let mut headings: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for page in markdown_files(docs) {
        let text = fs::read_to_string(&page)
            .map_err(|e| format!("cannot read {}: {e}", page.display()))?;
        let shown = page
            .strip_prefix(docs.parent().unwrap_or(docs))
            .unwrap_or(&page)
            .display()
            .to_string();
        for link in links(&text) {
            if is_external(&link.target) {
                continue;
            }
            let (path, anchor) = match link.target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (link.target.as_str(), None),
            };
            let target = if path.is_empty() {
                page.clone()
            } else {
                normalize(&page.parent().unwrap_or(docs).join(percent_decode(path)))
            };
            if !target.exists() {
                problems.push(format!(
                    "{shown}:{}: link to `{}`: no such file ({})",
                    link.line,
                    link.target,
                    target.display()
                ));
                continue;
            }
            let Some(anchor) = anchor.filter(|a| !a.is_empty()) else {
                continue;
            };
            if target.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let ids = match headings.get(&target) {
                Some(ids) => ids,
                None => {
                    let text = fs::read_to_string(&target).unwrap_or_default();
                    headings.entry(target.clone()).or_insert(heading_ids(&text))
                }
            };
            if !ids.contains(anchor) {
                let near: Vec<&String> = ids
                    .iter()
                    .filter(|id| id.contains(anchor) || anchor.contains(id.as_str()))
                    .take(3)
                    .collect();
                problems.push(format!(
                    "{shown}:{}: link to `{}`: {} has no heading `#{anchor}`{}",
                    link.line,
                    link.target,
                    target.file_name().unwrap_or_default().to_string_lossy(),
                    if near.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (did you mean {})",
                            near.iter()
                                .map(|id| format!("#{id}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ));
            }
        }
    }
    Ok(problems)
}

/// A link of a Markdown page: its target and the line it is on.
#[derive(Debug, PartialEq)]
pub struct Link {
    pub target: String,
    pub line: usize,
}

/// The targets of inline links and images (`[text](target)`, `![alt](target "title")`) and
/// of link reference definitions (`[name]: target`), outside code blocks and code spans.
pub fn links(markdown: &str) -> Vec<Link> {
    let mut found = Vec::new();
    let mut fence: Option<&str> = None;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") {
            fence = Some("```");
            continue;
        }
        if trimmed.starts_with("~~~") {
            fence = Some("~~~");
            continue;
        }
        let line_no = index + 1;
        if let Some(rest) = trimmed.strip_prefix('[') {
            if let Some((_, target)) = rest.split_once("]: ") {
                if !rest.starts_with('^') {
                    if let Some(target) = target.split_whitespace().next() {
                        found.push(Link {
                            target: target.trim_matches(['<', '>']).to_string(),
                            line: line_no,
                        });
                    }
                    continue;
                }
            }
        }
        let text = without_code_spans(line);
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let inside = after[..end].trim();
            let target = inside
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_matches(['<', '>']);
            if !target.is_empty() {
                found.push(Link {
                    target: target.to_string(),
                    line: line_no,
                });
            }
            rest = &after[end..];
        }
    }
    found
}

/// `line` with the contents of its code spans blanked (`` `a](b)` `` is not a link).
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for ch in line.chars() {
        if ch == '`' {
            in_code = !in_code;
            out.push(ch);
        } else if in_code {
            out.push(' ');
        } else {
            out.push(ch);
        }
    }
    out
}

/// The ids mdbook (and GitHub) give the headings of a page: the heading text without its
/// Markdown, lower-cased, spaces as `-`, other punctuation dropped; repeats get `-1`, `-2`.
pub fn heading_ids(markdown: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !trimmed.starts_with('#') {
            continue;
        }
        let text = trimmed.trim_start_matches('#');
        if !text.starts_with(' ') {
            continue;
        }
        let id = heading_id(text.trim());
        let seen = counts.entry(id.clone()).or_insert(0);
        ids.insert(if *seen == 0 {
            id.clone()
        } else {
            format!("{id}-{seen}")
        });
        *seen += 1;
    }
    ids
}

/// mdbook's `normalize_id` applied to the heading's visible text.
pub fn heading_id(heading: &str) -> String {
    // Link text stays, link targets go: `[a](b)` reads as `a`.
    let mut visible = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        visible.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](") {
            Some(close) if after[close..].contains(')') => {
                visible.push_str(&after[..close]);
                let tail = &after[close + 2..];
                rest = tail.split_once(')').map_or("", |(_, t)| t);
            }
            _ => {
                visible.push('[');
                rest = after;
            }
        }
    }
    visible.push_str(rest);
    visible
        .chars()
        .filter_map(|ch| {
            if ch.is_alphanumeric() || ch == '_' || ch == '-' {
                Some(ch.to_lowercase().collect::<String>())
            } else if ch.is_whitespace() {
                Some("-".to_string())
            } else {
                None
            }
        })
        .collect()
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// `%20` and friends in a link path.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(value) = u8::from_str_radix(&path[i + 1..i + 3], 16) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a/b/../c` → `a/c`, without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Every `.md` file under `dir`, sorted.
pub fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// `repository` of the workspace's `[workspace.package]`.
fn repository_url(root: &Path) -> Result<String, String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    manifest
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "repository").then(|| value.trim().trim_matches('"').to_string())
        })
        .ok_or_else(|| "the workspace Cargo.toml has no repository".to_string())
}

/// In the built book, links that leave docs/ go to the repository's web view and images from
/// outside docs/ are copied into the book. Returns how many were changed.
fn rewrite_outside_links(
    out: &Path,
    docs: &Path,
    root: &Path,
    repository: &str,
) -> Result<usize, String> {
    let mut changed = 0;
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "html") {
                continue;
            }
            let html = fs::read_to_string(&path).map_err(|e| e.to_string())?;
            // The page's place in docs/: the same relative path as in the output.
            let relative_dir = path
                .parent()
                .and_then(|p| p.strip_prefix(out).ok())
                .unwrap_or(Path::new(""))
                .to_path_buf();
            let depth = relative_dir.components().count();
            let mut result = String::with_capacity(html.len());
            let mut rest = html.as_str();
            let mut page_changed = 0;
            loop {
                let next = ["href=\"", "src=\""]
                    .iter()
                    .filter_map(|attr| rest.find(attr).map(|at| (at, *attr)))
                    .min();
                let Some((at, attr)) = next else { break };
                let value_start = at + attr.len();
                let Some(len) = rest[value_start..].find('"') else {
                    break;
                };
                let value = &rest[value_start..value_start + len];
                result.push_str(&rest[..value_start]);
                let source = normalize(
                    &docs
                        .join(&relative_dir)
                        .join(value.split('#').next().unwrap_or_default()),
                );
                let leaves = value.starts_with("../")
                    && !is_external(value)
                    && value.split('/').take_while(|p| *p == "..").count() > depth;
                match leaves.then(|| source.strip_prefix(root).ok()).flatten() {
                    Some(repo_path) if attr == "src=\"" && source.is_file() => {
                        let copy = out.join(COPIED_DIR).join(repo_path);
                        if let Some(parent) = copy.parent() {
                            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                        }
                        fs::copy(&source, &copy).map_err(|e| e.to_string())?;
                        result.push_str(&"../".repeat(depth));
                        result.push_str(&format!("{COPIED_DIR}/{}", repo_path.display()));
                        page_changed += 1;
                    }
                    Some(repo_path) => {
                        let mut repo_path = repo_path.to_path_buf();
                        let md = repo_path.with_extension("md");
                        if repo_path.extension().is_some_and(|e| e == "html")
                            && root.join(&md).is_file()
                        {
                            repo_path = md;
                        }
                        let anchor = value.split_once('#').map(|(_, a)| format!("#{a}"));
                        result.push_str(&format!(
                            "{repository}/blob/main/{}{}",
                            repo_path.display(),
                            anchor.unwrap_or_default()
                        ));
                        page_changed += 1;
                    }
                    None => result.push_str(value),
                }
                rest = &rest[value_start + len..];
            }
            result.push_str(rest);
            if page_changed > 0 {
                fs::write(&path, result).map_err(|e| e.to_string())?;
                changed += page_changed;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_replace_what_stands_between_their_markers() {
        let page = "intro\n<!-- results:fuzz:begin -->\nold\n<!-- results:fuzz:end -->\nafter\n";
        let spliced = splice_results(page, "fuzz", "# Fuzzing results\n\nnew table\n").unwrap();
        assert_eq!(
            spliced,
            "intro\n<!-- results:fuzz:begin -->\nnew table\n<!-- results:fuzz:end -->\nafter\n"
        );
        // Another name's markers, or none, are an error naming the markers.
        let error = splice_results(page, "soak", "x").unwrap_err();
        assert!(error.contains("results:soak:begin"), "{error}");
    }

    #[test]
    fn the_book_sources_have_no_broken_link_and_no_unlisted_page() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let problems = check_sources(&docs).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn links_outside_code_are_found_with_their_line() {
        let text = "# T\n\nSee [a](a.md#x) and ![c](../c.svg \"t\").\n`[no](code.md)`\n\
                    ```\n[no](block.md)\n```\n[ref]: ref.md\n";
        let targets: Vec<(String, usize)> = links(text)
            .into_iter()
            .map(|l| (l.target, l.line))
            .collect();
        assert_eq!(
            targets,
            [
                ("a.md#x".to_string(), 3),
                ("../c.svg".to_string(), 3),
                ("ref.md".to_string(), 8)
            ]
        );
    }

    #[test]
    fn heading_ids_are_mdbooks() {
        let ids = heading_ids(
            "# Configuration reference\n## The store (`SESSION_TYPE`)\n## Every environment variable\n\
             ## [Linked](x.md) heading\n## Repeat\n## Repeat\n```\n# not a heading\n```\n#hashtag\n",
        );
        let expected: BTreeSet<String> = [
            "configuration-reference",
            "the-store-session_type",
            "every-environment-variable",
            "linked-heading",
            "repeat",
            "repeat-1",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn broken_links_anchors_and_unlisted_pages_are_each_named() {
        let dir = std::env::temp_dir().join(format!("xtask-docs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("guide")).unwrap();
        fs::write(dir.join("SUMMARY.md"), "# S\n\n- [A](a.md)\n").unwrap();
        fs::write(
            dir.join("a.md"),
            "# A\n\n## Real part\n\n[ok](#real-part) [bad](#missing) [gone](nope.md) \
             [b](guide/b.md#top)\n",
        )
        .unwrap();
        fs::write(dir.join("guide/b.md"), "# Top\n").unwrap();
        let problems = check_sources(&dir).unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].contains("docs/guide/b.md is not in docs/SUMMARY.md"),
            "{problems:#?}"
        );
        assert!(
            problems[1].contains("a.md:5: link to `#missing`"),
            "{problems:#?}"
        );
        assert!(
            problems[2].contains("link to `nope.md`: no such file"),
            "{problems:#?}"
        );
    }
}
