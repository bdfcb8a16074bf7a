//! `cargo xtask test`: every service up, the Flask venv and the browser test's tools
//! (Chromium, Node.js, playwright-core) installed, then `cargo test --workspace`
//! with the connection settings exported, ending with one summary line.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

use crate::context::Context;
use crate::service::Service;
use crate::{browser, services, venv};

/// The integration-test targets that need no server, per package: they use the memory
/// store, a temporary directory, SQLite, or only the files of the repository. Unit tests
/// (`--lib --bins`) of every package need none either.
pub const OFFLINE_TARGETS: &[(&str, &[&str])] = &[
    (
        "session-core",
        &[
            "cache_and_groups",
            "decisions",
            "lifecycle",
            "memory_conformance",
            "metrics",
        ],
    ),
    (
        "session-filesystem",
        &[
            "concurrency",
            "conformance",
            "owners",
            "processes",
            "relative_dir",
            "storage",
        ],
    ),
    (
        "session-cachelib",
        &["conformance", "processes", "relative_dir", "storage"],
    ),
    ("session-sql", &["sqlite"]),
    ("session-any", &["conformance", "docs"]),
    ("session-axum", &["layer", "plain_http"]),
    ("session-actix", &["middleware", "plain_http"]),
    ("session-example-actix", &["binary"]),
];

pub fn run(ctx: &Context, cargo_args: &[String]) -> Result<ExitCode, String> {
    if cargo_args.first().map(String::as_str) == Some("--offline") {
        return run_offline(ctx, &cargo_args[1..]);
    }
    {
        let _lock = ctx.lock()?;
        services::up(ctx, &Service::ALL).map_err(|e| {
            format!("{e}\nnot running the tests: their backing services are not all up")
        })?;
        venv::ensure(ctx, &venv::FLASK)?;
        browser::ensure(ctx)?;
        services::write_env_file(ctx)?;
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["test", "--workspace"]).args(cargo_args);
    for (key, value) in services::settings(ctx) {
        match std::env::var(key) {
            Ok(existing) if existing != value => {
                ctx.log(format!("keeping {key}={existing} from the environment"))
            }
            _ => {
                command.env(key, value);
            }
        }
    }
    let shown: Vec<&str> = cargo_args.iter().map(String::as_str).collect();
    ctx.log(format!("cargo test --workspace {}", shown.join(" ")));

    // libtest writes its results to stdout: pass them through and add them up.
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let mut totals = Totals::default();
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let _ = out.write_all(&line);
            let _ = out.write_all(b"\n");
            totals.add_line(&String::from_utf8_lossy(&line));
        }
        let _ = out.flush();
    }
    let status = child.wait().map_err(|e| format!("cargo test: {e}"))?;

    let outcome = if status.success() { "PASSED" } else { "FAILED" };
    println!(
        "\nxtask test: {outcome}: {} passed, {} failed, {} ignored, {} filtered out in {} test binaries; {:.0}s total ({status})",
        totals.passed, totals.failed, totals.ignored, totals.filtered, totals.suites, ctx.elapsed()
    );
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `cargo xtask test --offline`: every test that needs no server, with no service started.
/// The connection settings point at a closed port, so a test that needs a server after all
/// fails (and names it) instead of quietly using one that happens to run here.
fn run_offline(ctx: &Context, extra: &[String]) -> Result<ExitCode, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut runs: Vec<Vec<String>> = vec![["--workspace", "--lib", "--bins"]
        .map(String::from)
        .to_vec()];
    for (package, targets) in OFFLINE_TARGETS {
        let mut args = vec!["-p".to_string(), package.to_string()];
        for target in *targets {
            args.push("--test".into());
            args.push(target.to_string());
        }
        runs.push(args);
    }
    let mut totals = Totals::default();
    let mut failed = Vec::new();
    for args in &runs {
        let mut command = Command::new(&cargo);
        command.arg("test").args(args).args(extra);
        for (key, value) in unreachable_settings() {
            command.env(key, value);
        }
        ctx.log(format!("cargo test {}", args.join(" ")));
        let status = pass_through(&mut command, &mut totals)?;
        if !status.success() {
            failed.push(args.join(" "));
        }
    }
    let outcome = if failed.is_empty() {
        "PASSED"
    } else {
        "FAILED"
    };
    println!(
        "\nxtask test --offline: {outcome}: {} passed, {} failed, {} ignored in {} test binaries, no server used; {:.0}s total",
        totals.passed, totals.failed, totals.ignored, totals.suites, ctx.elapsed()
    );
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "failed: cargo test {}",
            failed.join("\nfailed: cargo test ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Every connection setting the tests read, pointed at port 9 of the loopback (closed).
fn unreachable_settings() -> Vec<(&'static str, String)> {
    crate::service::all_env_vars()
        .into_iter()
        .map(|(key, value)| {
            let value = match key {
                "AWS_ACCESS_KEY_ID"
                | "AWS_SECRET_ACCESS_KEY"
                | "AWS_REGION"
                | "AWS_DEFAULT_REGION" => value,
                _ => {
                    // Replace every port of the URL or server list by 9.
                    let mut out = String::new();
                    let mut rest = value.as_str();
                    while let Some(at) = rest.find("127.0.0.1:") {
                        out.push_str(&rest[..at + "127.0.0.1:".len()]);
                        out.push('9');
                        rest = rest[at + "127.0.0.1:".len()..]
                            .trim_start_matches(|c: char| c.is_ascii_digit());
                    }
                    out.push_str(rest);
                    out
                }
            };
            (key, value)
        })
        .chain([(
            "FLASK_PYTHON",
            "/nonexistent/offline-mode/python".to_string(),
        )])
        .collect()
}

/// Runs `command`, passing its stdout through and adding its `test result:` lines up.
fn pass_through(
    command: &mut Command,
    totals: &mut Totals,
) -> Result<std::process::ExitStatus, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let _ = out.write_all(&line);
            let _ = out.write_all(b"\n");
            totals.add_line(&String::from_utf8_lossy(&line));
        }
        let _ = out.flush();
    }
    child.wait().map_err(|e| format!("cargo test: {e}"))
}

/// Sums of libtest's `test result:` lines.
#[derive(Default, Debug, PartialEq)]
struct Totals {
    suites: u64,
    passed: u64,
    failed: u64,
    ignored: u64,
    filtered: u64,
}

impl Totals {
    /// `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; finished in 0.01s`
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        self.suites += 1;
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(number)) = (words.next(), words.next()) else {
                continue;
            };
            let (number, label) = match (number.parse::<u64>(), label) {
                (Ok(n), label) => (n, label),
                // "2 filtered out": the number is one word further.
                (Err(_), "out") => match words.next().map(str::parse::<u64>) {
                    Some(Ok(n)) => (n, "filtered"),
                    _ => continue,
                },
                _ => continue,
            };
            match label {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                "ignored" => self.ignored += number,
                "filtered" => self.filtered += number,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_are_summed() {
        let mut totals = Totals::default();
        totals.add_line("test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; finished in 0.01s");
        totals.add_line("test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s");
        totals.add_line("running 7 tests");
        assert_eq!(
            totals,
            Totals {
                suites: 2,
                passed: 8,
                failed: 2,
                ignored: 1,
                filtered: 2
            }
        );
    }

    #[test]
    fn offline_settings_point_every_service_at_a_closed_port() {
        let settings = unreachable_settings();
        let get = |key: &str| settings.iter().find(|(k, _)| *k == key).unwrap().1.clone();
        assert_eq!(
            get("REDIS_CLUSTER_URL"),
            "redis-cluster://127.0.0.1:9?node=127.0.0.1:9&node=127.0.0.1:9"
        );
        assert_eq!(
            get("POSTGRES_URL"),
            "postgres://sessions:sessions@127.0.0.1:9/sessions"
        );
        assert_eq!(get("MEMCACHED_SERVERS"), "127.0.0.1:9");
        assert_eq!(get("DYNAMODB_ENDPOINT"), "http://127.0.0.1:9");
        for (key, value) in &settings {
            assert!(
                !value.contains(":6379") && !value.contains(":5432"),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn offline_targets_exist() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (package, targets) in OFFLINE_TARGETS {
            let dir = ["crates", "examples"]
                .iter()
                .map(|parent| root.join(parent).join(package))
                .find(|dir| dir.is_dir())
                .unwrap_or_else(|| panic!("no directory for {package}"));
            for target in *targets {
                let file = dir.join("tests").join(format!("{target}.rs"));
                assert!(file.is_file(), "{}", file.display());
            }
        }
    }

    #[test]
    fn other_lines_are_ignored() {
        let mut totals = Totals::default();
        totals.add_line("test it_works ... ok");
        totals.add_line("   Doc-tests session_core");
        assert_eq!(totals, Totals::default());
    }
}
