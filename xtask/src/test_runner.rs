//! `cargo xtask test`: every service up, the Flask venv and the browser test's tools
//! (Chromium, Node.js, playwright-core) installed, then `cargo test --workspace`
//! with the connection settings exported, ending with one summary line.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

use crate::context::Context;
use crate::service::Service;
use crate::{browser, services, venv};

pub fn run(ctx: &Context, cargo_args: &[String]) -> Result<ExitCode, String> {
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
    fn other_lines_are_ignored() {
        let mut totals = Totals::default();
        totals.add_line("test it_works ... ok");
        totals.add_line("   Doc-tests session_core");
        assert_eq!(totals, Totals::default());
    }
}
