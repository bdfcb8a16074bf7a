//! Python virtual environments: the DynamoDB and MongoDB emulators and the Flask interop client.
//! Each venv records what it was built from and is rebuilt when that changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::context::Context;
use crate::process::{self, is_executable};

/// What to install into one venv.
pub struct VenvSpec {
    /// Directory under the tools dir.
    pub dir_name: &'static str,
    /// What it is for, in messages.
    pub purpose: &'static str,
    /// pip requirement specifiers, pinned so every machine gets the same code.
    pub requirements: &'static [&'static str],
    /// Oldest CPython that works.
    pub min_python: (u32, u32),
    /// A file inside the venv that must exist once installed.
    pub marker: &'static str,
}

/// moto's server mode: DynamoDB API on 8000 (TTL configuration and transactions work).
pub const MOTO: VenvSpec = VenvSpec {
    dir_name: "venv-moto",
    purpose: "DynamoDB emulator (moto_server)",
    requirements: &["moto[dynamodb]==5.2.5", "flask==3.1.3", "flask-cors==6.0.5"],
    min_python: (3, 9),
    marker: "bin/moto_server",
};

/// mongoeco's MongoDB wire-protocol server (needs CPython 3.13+).
pub const MONGOECO: VenvSpec = VenvSpec {
    dir_name: "venv-mongoeco",
    purpose: "MongoDB emulator (mongoeco)",
    requirements: &["mongoeco[wire]==4.11.0"],
    min_python: (3, 13),
    marker: "bin/python",
};

/// Flask-Session 0.8 and the client libraries of every backend, for the interop tests.
pub const FLASK: VenvSpec = VenvSpec {
    dir_name: "venv-flask",
    purpose: "Flask interop tests (Flask-Session 0.8)",
    requirements: &[
        "Flask-Session==0.8.0",
        "Flask==3.1.3",
        "redis==8.1.0",
        "pymemcache==4.0.0",
        "Flask-SQLAlchemy==3.1.1",
        "SQLAlchemy==2.0.58",
        "psycopg2-binary==2.9.13",
        "PyMySQL==1.2.4",
        "boto3==1.44.8",
        // Flask-Session 0.8.0's DynamoDB backend imports these type stubs at run time.
        "mypy-boto3-dynamodb==1.43.124",
        "pymongo==4.20.1",
    ],
    min_python: (3, 9),
    marker: "bin/python",
};

const STAMP: &str = ".xtask-requirements";

impl VenvSpec {
    pub fn dir(&self, ctx: &Context) -> PathBuf {
        ctx.tools_dir.join(self.dir_name)
    }

    pub fn python(&self, ctx: &Context) -> PathBuf {
        self.dir(ctx).join("bin/python")
    }

    fn stamp_text(&self) -> String {
        self.requirements.join("\n") + "\n"
    }

    /// Installed from exactly these requirements.
    pub fn is_current(&self, ctx: &Context) -> bool {
        let dir = self.dir(ctx);
        is_executable(&dir.join("bin/python"))
            && dir.join(self.marker).exists()
            && fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| s == self.stamp_text())
    }
}

/// Builds the venv unless it is current; returns its python.
pub fn ensure(ctx: &Context, spec: &VenvSpec) -> Result<PathBuf, String> {
    if spec.is_current(ctx) {
        return Ok(spec.python(ctx));
    }
    let base = find_python(spec.min_python).ok_or_else(|| missing_python_message(spec))?;
    build(ctx, spec, &base)?;
    Ok(spec.python(ctx))
}

pub fn missing_python_message(spec: &VenvSpec) -> String {
    let (major, minor) = spec.min_python;
    let hint = if spec.min_python >= (3, 13) {
        "Debian 12 ships 3.11: install one with pyenv (`pyenv install 3.13`), or run the \
         services with Docker (SESSIONS_SERVICES_MODE=docker)"
    } else {
        "install python3 and python3-venv"
    };
    format!(
        "{}: needs CPython >= {major}.{minor} with the venv module and none was found on PATH \
         or in ~/.pyenv/versions; {hint}",
        spec.purpose
    )
}

fn build(ctx: &Context, spec: &VenvSpec, base_python: &Path) -> Result<(), String> {
    let dir = spec.dir(ctx);
    let log = ctx.run_dir.join(format!("install-{}.log", spec.dir_name));
    ctx.log(format!(
        "{}: creating {} with {} (log {})",
        spec.purpose,
        dir.display(),
        base_python.display(),
        log.display()
    ));
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    let result = process::run(
        &format!("python -m venv {}", dir.display()),
        Command::new(base_python).arg("-m").arg("venv").arg(&dir),
    )
    .and_then(|_| {
        process::run(
            &format!("pip install into {}", dir.display()),
            Command::new(dir.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(["--no-input"])
                .args(spec.requirements),
        )
    });
    let _ = fs::write(&log, result.as_deref().unwrap_or_else(|error| error));
    if let Err(error) = result {
        return Err(format!("{}: {error}", spec.purpose));
    }
    fs::write(dir.join(STAMP), spec.stamp_text())
        .map_err(|e| format!("cannot write {}: {e}", dir.join(STAMP).display()))?;
    ctx.log(format!("{}: installed", spec.purpose));
    Ok(())
}

/// A CPython of at least `min` that can create venvs (has `venv` and `ensurepip`).
///
/// pyenv puts shims such as `python3.13` on PATH that fail unless that version is selected,
/// so every candidate is actually run.
pub fn find_python(min: (u32, u32)) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = vec![PathBuf::from("python3")];
    if min.0 == 3 {
        for minor in (min.1..=20).rev() {
            candidates.push(PathBuf::from(format!("python3.{minor}")));
        }
    }
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pyenv")));
    if let Some(root) = pyenv_root {
        let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(root.join("versions"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let key: Vec<u32> = name
                    .split('.')
                    .map(|p| p.parse().ok())
                    .collect::<Option<_>>()?;
                let new_enough = key.len() >= 2 && (key[0], key[1]) >= min;
                new_enough.then(|| (key, entry.path().join("bin/python3")))
            })
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, path)| path));
    }
    candidates.push(PathBuf::from("/usr/bin/python3"));
    candidates
        .into_iter()
        .find_map(|candidate| python_at_least(&candidate, min))
}

/// The real interpreter path behind `candidate` if it is new enough and can create venvs.
fn python_at_least(candidate: &Path, min: (u32, u32)) -> Option<PathBuf> {
    let output = Command::new(candidate)
        .args([
            "-c",
            "import sys, venv, ensurepip; print(sys.executable); print(*sys.version_info[:2])",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let executable = PathBuf::from(lines.next()?.trim());
    let mut version = lines.next()?.split_whitespace().map(|p| p.parse::<u32>());
    let (major, minor) = (version.next()?.ok()?, version.next()?.ok()?);
    ((major, minor) >= min && is_executable(&executable)).then_some(executable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_are_pinned() {
        for spec in [&MOTO, &MONGOECO, &FLASK] {
            for requirement in spec.requirements {
                assert!(requirement.contains("=="), "{} is not pinned", requirement);
            }
        }
    }

    #[test]
    fn flask_session_is_the_version_the_layouts_follow() {
        assert!(FLASK.requirements.contains(&"Flask-Session==0.8.0"));
    }

    #[test]
    fn impossible_python_version_is_not_found() {
        assert_eq!(find_python((9, 0)), None);
    }
}
