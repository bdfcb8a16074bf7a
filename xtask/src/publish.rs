//! `cargo xtask publish-check`: every library crate packages and builds as crates.io would
//! see it.
//!
//! One `cargo package --workspace` call, without the members marked `publish = false`:
//! cargo packages the crates in dependency order and resolves the path dependencies between
//! them through a local overlay registry, so crates that are not on crates.io yet verify
//! too. Before it, each published member's files and metadata are checked (a missing
//! CHANGELOG.md or licence file is named at once, not after minutes of building); after it,
//! each `.crate` archive is listed to prove that the files really went in.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::context::Context;
use crate::process;

/// Files every published crate ships (the licence files are symlinks to the root's copies;
/// cargo packages a symlink as the file it points to).
const REQUIRED_FILES: [&str; 4] = ["README.md", "CHANGELOG.md", "LICENSE-MIT", "LICENSE-APACHE"];

/// `[package]` keys crates.io and docs.rs show; `.workspace = true` counts as set.
const REQUIRED_KEYS: [&str; 7] = [
    "description",
    "license",
    "repository",
    "readme",
    "keywords",
    "categories",
    "rust-version",
];

/// One workspace member, as far as publishing is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub dir: PathBuf,
    pub published: bool,
    manifest: String,
}

pub fn command(ctx: &Context, args: &[String]) -> Result<ExitCode, String> {
    let mut verify = true;
    for arg in args {
        match arg.as_str() {
            "--no-verify" => verify = false,
            other => {
                return Err(format!(
                    "`publish-check` takes only --no-verify, got `{other}`"
                ))
            }
        }
    }
    let members = members(&ctx.workspace_root)?;
    let (published, unpublished): (Vec<&Member>, Vec<&Member>) =
        members.iter().partition(|m| m.published);
    let problems: Vec<String> = published
        .iter()
        .flat_map(|m| metadata_problems(m))
        .collect();
    if !problems.is_empty() {
        return Err(format!(
            "not ready to publish:\n  {}",
            problems.join("\n  ")
        ));
    }
    ctx.log(format!(
        "packaging {} crates{} (not published: {})",
        published.len(),
        if verify {
            " and building each from its archive"
        } else {
            ""
        },
        unpublished
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let version = workspace_version(&ctx.workspace_root);
    let target = target_dir(ctx)?;
    for member in &published {
        forget_extracted_sources(ctx, &member.name, &version);
        forget_registry_builds(ctx, &target, &member.name, &version);
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut package = Command::new(&cargo);
    package
        .current_dir(&ctx.workspace_root)
        .args(["package", "--workspace", "--allow-dirty"]);
    for member in &unpublished {
        package.args(["--exclude", &member.name]);
    }
    if !verify {
        package.arg("--no-verify");
    }
    let status = package
        .status()
        .map_err(|e| format!("cannot run cargo package: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo package failed ({status}); the error above names the crate"
        ));
    }

    let package_dir = target.join("package");
    let mut missing = Vec::new();
    for member in &published {
        let version = manifest_value(&member.manifest, "version")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| workspace_version(&ctx.workspace_root));
        let archive = package_dir.join(format!("{}-{version}.crate", member.name));
        let listing = process::run(
            &format!("tar -tzf {}", archive.display()),
            Command::new("tar").arg("-tzf").arg(&archive),
        )?;
        let root = format!("{}-{version}/", member.name);
        for file in REQUIRED_FILES {
            if !listing.lines().any(|line| line == format!("{root}{file}")) {
                missing.push(format!(
                    "{}: {file} is not in {}",
                    member.name,
                    archive.display()
                ));
            }
        }
    }
    if !missing.is_empty() {
        return Err(missing.join("\n"));
    }
    println!(
        "xtask publish-check: {} crates packaged{}, each with its README, CHANGELOG and licence files; {:.0}s",
        published.len(),
        if verify { " and verified" } else { " (not verified)" },
        ctx.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}

/// Removes cargo's extracted copies of `name`-`version` under `$CARGO_HOME/registry/src`.
///
/// Verification unpacks each archive from cargo's local overlay registry into the same
/// directory every run, and cargo does not unpack again over an earlier extraction of the
/// same name and version: without this, a crate is verified against the sources of an
/// older run (seen here: session-core verified with a cache module removed weeks before).
/// Removing the copies only makes cargo unpack them again when they are next needed.
fn forget_extracted_sources(ctx: &Context, name: &str, version: &str) {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let Some(sources) = cargo_home.map(|home| home.join("registry/src")) else {
        return;
    };
    for registry in fs::read_dir(&sources).into_iter().flatten().flatten() {
        let stale = registry.path().join(format!("{name}-{version}"));
        if stale.is_dir() {
            if let Err(error) = fs::remove_dir_all(&stale) {
                ctx.log(format!("cannot remove {}: {error}", stale.display()));
            }
        }
    }
}

/// Makes cargo rebuild what an earlier run compiled of `name`-`version` from the overlay
/// registry.
///
/// cargo takes a registry crate of a given name and version to be immutable, so it never
/// checks its sources again: a build of it in the target directory stays fresh for ever.
/// Without this, a crate is verified against its dependency as an earlier run packaged it
/// (seen here: session-actix verified against a session-core without the function it
/// calls). Those builds are the units whose dep-info (`debug/deps/<crate>-<hash>.d`) names
/// the extracted copy under `registry/src`; removing their fingerprints (`debug/.fingerprint/
/// <name>-<hash>`) makes cargo compile them again. Workspace builds name the checkout
/// instead and stay.
fn forget_registry_builds(ctx: &Context, target: &Path, name: &str, version: &str) {
    let deps = target.join("debug").join("deps");
    let crate_name = name.replace('-', "_");
    let extracted = format!("/{name}-{version}/");
    for entry in fs::read_dir(&deps).into_iter().flatten().flatten() {
        let file = entry.file_name();
        let Some(hash) = file
            .to_str()
            .and_then(|file| file.strip_prefix(&format!("{crate_name}-")))
            .and_then(|rest| rest.strip_suffix(".d"))
        else {
            continue;
        };
        let Ok(dep_info) = fs::read_to_string(entry.path()) else {
            continue;
        };
        let from_registry = dep_info
            .lines()
            .any(|line| line.contains("/registry/src/") && line.contains(&extracted));
        if !from_registry {
            continue;
        }
        let fingerprint = target
            .join("debug")
            .join(".fingerprint")
            .join(format!("{name}-{hash}"));
        if fingerprint.is_dir() {
            if let Err(error) = fs::remove_dir_all(&fingerprint) {
                ctx.log(format!("cannot remove {}: {error}", fingerprint.display()));
            }
        }
    }
}

/// What keeps `member` from being published as it should: missing files or metadata.
pub fn metadata_problems(member: &Member) -> Vec<String> {
    let mut problems = Vec::new();
    for file in REQUIRED_FILES {
        // `is_file` follows symlinks: a dangling link is missing too.
        if !member.dir.join(file).is_file() {
            problems.push(format!(
                "{}: no {file} in {}",
                member.name,
                member.dir.display()
            ));
        }
    }
    let package = table(&member.manifest, "package");
    for key in REQUIRED_KEYS {
        if !package.lines().any(|line| {
            let line = line.trim_start();
            line.starts_with(&format!("{key} "))
                || line.starts_with(&format!("{key}.workspace"))
                || line.starts_with(&format!("{key}="))
        }) {
            problems.push(format!(
                "{}: Cargo.toml [package] has no `{key}`",
                member.name
            ));
        }
    }
    if !member.manifest.contains("[package.metadata.docs.rs]") {
        problems.push(format!(
            "{}: Cargo.toml has no [package.metadata.docs.rs] table",
            member.name
        ));
    }
    problems
}

/// The workspace members (globs of `members` expanded), in the order listed.
pub fn members(root: &Path) -> Result<Vec<Member>, String> {
    let manifest_path = root.join("Cargo.toml");
    let manifest = fs::read_to_string(&manifest_path)
        .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
    let workspace = table(&manifest, "workspace");
    let list = workspace
        .split_once("members")
        .and_then(|(_, rest)| rest.split_once('['))
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .ok_or("the workspace Cargo.toml has no `members = [...]`")?;
    let mut dirs = Vec::new();
    for entry in list.split(',') {
        let entry = entry.trim().trim_matches('"');
        if entry.is_empty() {
            continue;
        }
        if let Some(parent) = entry.strip_suffix("/*") {
            let mut found: Vec<PathBuf> = fs::read_dir(root.join(parent))
                .map_err(|e| format!("cannot list {parent}: {e}"))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect();
            found.sort();
            dirs.extend(found);
        } else {
            dirs.push(root.join(entry));
        }
    }
    dirs.into_iter()
        .map(|dir| {
            let path = dir.join("Cargo.toml");
            let manifest = fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let package = table(&manifest, "package");
            let name = manifest_value(package, "name")
                .ok_or_else(|| format!("{}: no package name", path.display()))?;
            let published = manifest_value(package, "publish").as_deref() != Some("false");
            Ok(Member {
                name,
                dir,
                published,
                manifest,
            })
        })
        .collect()
}

/// The lines of `[name]` up to the next table header.
fn table<'a>(manifest: &'a str, name: &str) -> &'a str {
    let header = format!("[{name}]");
    let Some(start) = manifest
        .match_indices(&header)
        .find(|(at, _)| *at == 0 || manifest[..*at].ends_with('\n'))
        .map(|(at, _)| at + header.len())
    else {
        return "";
    };
    let rest = &manifest[start..];
    let end = rest.find("\n[").map_or(rest.len(), |at| at + 1);
    &rest[..end]
}

/// `key = "value"` or `key = value` in `text`, unquoted.
fn manifest_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn workspace_version(root: &Path) -> String {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    manifest_value(table(&manifest, "workspace.package"), "version").unwrap_or_default()
}

/// Where cargo puts `package/`: CARGO_TARGET_DIR, else cargo's own answer.
pub fn target_dir(ctx: &Context) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return Ok(if dir.is_relative() {
            ctx.workspace_root.join(dir)
        } else {
            dir
        });
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let metadata = process::run(
        "cargo metadata",
        Command::new(cargo).current_dir(&ctx.workspace_root).args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
        ]),
    )?;
    metadata
        .split_once("\"target_directory\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(dir, _)| PathBuf::from(dir))
        .ok_or_else(|| "cargo metadata names no target_directory".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn only_the_libraries_and_the_cli_are_published() {
        let members = members(&root()).unwrap();
        let mut unpublished: Vec<&str> = members
            .iter()
            .filter(|m| !m.published)
            .map(|m| m.name.as_str())
            .collect();
        unpublished.sort();
        assert_eq!(
            unpublished,
            [
                "flask-migration",
                "session-example",
                "session-example-actix",
                "session-example-ui",
                "session-tests",
                "xtask"
            ]
        );
        assert!(members
            .iter()
            .any(|m| m.name == "session-core" && m.published));
    }

    #[test]
    fn every_published_crate_has_its_files_and_metadata() {
        let problems: Vec<String> = members(&root())
            .unwrap()
            .iter()
            .filter(|m| m.published)
            .flat_map(metadata_problems)
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_crate_without_a_changelog_or_keywords_is_named() {
        let dir = std::env::temp_dir().join(format!("xtask-publish-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for file in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
            fs::write(dir.join(file), "x").unwrap();
        }
        let member = Member {
            name: "demo".into(),
            dir: dir.clone(),
            published: true,
            manifest: "[package]\nname = \"demo\"\ndescription = \"d\"\nlicense.workspace = true\n\
                       repository.workspace = true\nreadme = \"README.md\"\ncategories = []\n\
                       rust-version.workspace = true\n\n[dependencies]\nkeywords = 1\n"
                .into(),
        };
        let problems = metadata_problems(&member);
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(
            problems,
            [
                format!("demo: no CHANGELOG.md in {}", dir.display()),
                "demo: Cargo.toml [package] has no `keywords`".to_string(),
                "demo: Cargo.toml has no [package.metadata.docs.rs] table".to_string(),
            ]
        );
    }
}
