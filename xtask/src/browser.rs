//! The browser test's tools: Debian's Chromium (apt), Node.js and npm (apt when missing),
//! and playwright-core, pinned by tests/browser/package-lock.json, installed with `npm ci`
//! into `<tools dir>/browser`. `cargo xtask test` and `cargo xtask browser-tools` call
//! [`ensure`]; [`settings`] passes the paths to the test (`PLAYWRIGHT_CORE`, `CHROMIUM`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::context::Context;
use crate::install;
use crate::process::{self, find_program};

/// Where Debian's chromium package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The oldest Node.js the pinned playwright-core runs on (its `engines` field).
const MIN_NODE_MAJOR: u32 = 20;

/// The package files that pin playwright-core, relative to the workspace root.
const PACKAGE_FILES: [&str; 2] = [
    "tests/browser/package.json",
    "tests/browser/package-lock.json",
];

fn dir(ctx: &Context) -> PathBuf {
    ctx.tools_dir.join("browser")
}

/// The installed playwright-core package directory.
pub fn playwright_core(ctx: &Context) -> PathBuf {
    dir(ctx).join("node_modules/playwright-core")
}

/// `PLAYWRIGHT_CORE` and `CHROMIUM` for the test, once both are installed.
pub fn settings(ctx: &Context) -> Vec<(&'static str, String)> {
    if is_current(ctx) && Path::new(CHROMIUM).exists() {
        vec![
            (
                "PLAYWRIGHT_CORE",
                playwright_core(ctx).display().to_string(),
            ),
            ("CHROMIUM", CHROMIUM.to_owned()),
        ]
    } else {
        vec![]
    }
}

/// playwright-core is installed from exactly the lock file in the repository.
fn is_current(ctx: &Context) -> bool {
    let installed = |name: &str| fs::read(dir(ctx).join(name)).ok();
    PACKAGE_FILES.iter().all(|file| {
        let name = Path::new(file).file_name().and_then(|n| n.to_str());
        let wanted = fs::read(ctx.workspace_root.join(file)).ok();
        wanted.is_some() && name.and_then(installed) == wanted
    }) && playwright_core(ctx).join("package.json").is_file()
}

/// Installs what is missing: the apt packages, then playwright-core.
pub fn ensure(ctx: &Context) -> Result<(), String> {
    let mut packages = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        packages.push("chromium");
    }
    // NodeSource's nodejs (the machine image's) carries npm; Debian's ships it apart.
    if find_program("node").is_none() {
        packages.extend(["nodejs", "npm"]);
    } else if find_program("npm").is_none() {
        packages.push("npm");
    }
    if !packages.is_empty() {
        install::apt_install(ctx, &packages).map_err(|e| format!("browser test tools: {e}"))?;
    }
    check_node()?;
    if is_current(ctx) {
        return Ok(());
    }
    let target = dir(ctx);
    ctx.log(format!(
        "browser test: npm ci (playwright-core) into {}",
        target.display()
    ));
    fs::create_dir_all(&target).map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    for file in PACKAGE_FILES {
        let from = ctx.workspace_root.join(file);
        let name = Path::new(file).file_name().unwrap_or_default();
        fs::copy(&from, target.join(name))
            .map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    }
    let npm = find_program("npm").ok_or("npm is not installed: apt-get install npm")?;
    // No install scripts: playwright-core has none, and none may fetch a browser build.
    let output = process::run(
        "npm ci",
        Command::new(npm).current_dir(&target).args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
        ]),
    )
    .map_err(|e| format!("browser test tools: {e}"))?;
    let _ = fs::write(ctx.run_dir.join("install-browser.log"), output);
    if !is_current(ctx) {
        return Err(format!(
            "browser test tools: npm ci finished but {} is missing",
            playwright_core(ctx).display()
        ));
    }
    ctx.log("browser test: playwright-core installed");
    Ok(())
}

/// Node.js is new enough for the pinned playwright-core.
fn check_node() -> Result<(), String> {
    let node = find_program("node").ok_or("node is not installed: apt-get install nodejs npm")?;
    let version = process::run("node --version", Command::new(&node).arg("--version"))?;
    match node_major(&version) {
        Some(major) if major >= MIN_NODE_MAJOR => Ok(()),
        _ => Err(format!(
            "browser test: playwright-core needs Node.js >= {MIN_NODE_MAJOR}, {} is {}: \
             install a newer Node.js (NodeSource's nodejs package, or nvm) and run again",
            node.display(),
            version.trim()
        )),
    }
}

/// `v20.20.2` → 20.
fn node_major(version: &str) -> Option<u32> {
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_versions_are_read() {
        assert_eq!(node_major("v20.20.2\n"), Some(20));
        assert_eq!(node_major("v18.19.0"), Some(18));
        assert_eq!(node_major("20.1"), None);
        assert_eq!(node_major(""), None);
    }
}
