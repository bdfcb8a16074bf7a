//! `cargo xtask fuzz`: every cargo-fuzz target of `fuzz/` for a fixed time, one summary,
//! and the figures as a Markdown table for the docs.
//!
//! Each target runs on its own (the machine's cores are shared) with libFuzzer's
//! `-max_total_time`, AddressSanitizer (cargo-fuzz's default) and debug assertions, so an
//! integer overflow is a crash too. New inputs go to `fuzz/generated/<target>`, kept between
//! runs; the committed seeds in `fuzz/corpus/<target>` are only read.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use crate::context::Context;

const USAGE: &str = "\
usage: cargo xtask fuzz [--seconds N] [--target NAME]... [--out PATH]

  --seconds N     how long each target runs (default 60)
  --target NAME   run only this target (repeatable); default: every target in fuzz/Cargo.toml
  --out PATH      where to write the Markdown table (default fuzz/results/latest.md when every
                  target runs; with --target, only when --out is given)
";

/// The toolchain cargo-fuzz needs (sanitizer flags are nightly-only).
const TOOLCHAIN: &str = "+nightly";

/// Build flags for every cargo-fuzz call, so `build` and `run` share one build: optimized,
/// with debug assertions (overflow checks) on.
const BUILD_FLAGS: [&str; 2] = ["--release", "--debug-assertions"];

/// Seconds one input may take before libFuzzer reports it as a hang.
const INPUT_TIMEOUT_SECS: u32 = 10;

struct Options {
    seconds: u64,
    targets: Vec<String>,
    out: Option<PathBuf>,
}

/// What one target's run did.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    /// How long libFuzzer ran, by its own count (absent when it stopped on a crash).
    seconds: Option<u64>,
    executions: u64,
    execs_per_second: u64,
    /// Code edges reached (libFuzzer's `cov`).
    edges: Option<u64>,
    /// Inputs in the corpus at the end.
    corpus: Option<u64>,
    /// Where libFuzzer wrote the input that failed, if one did.
    artifact: Option<String>,
    /// The panic or sanitizer message, if any.
    failure: Option<String>,
}

struct Outcome {
    target: String,
    /// How long it ran.
    seconds: u64,
    figures: Figures,
    crashed: bool,
    log: PathBuf,
}

pub fn command(ctx: &Context, args: &[String]) -> Result<ExitCode, String> {
    let options = parse_args(args)?;
    let fuzz_dir = ctx.workspace_root.join("fuzz");
    ensure_cargo_fuzz(ctx)?;

    let all = list_targets(ctx, &fuzz_dir)?;
    let targets = if options.targets.is_empty() {
        all.clone()
    } else {
        for name in &options.targets {
            if !all.contains(name) {
                return Err(format!(
                    "no fuzz target `{name}`; the targets are: {}",
                    all.join(", ")
                ));
            }
        }
        options.targets.clone()
    };
    let out = options.out.clone().or_else(|| {
        options
            .targets
            .is_empty()
            .then(|| fuzz_dir.join("results/latest.md"))
    });

    ctx.log(format!("building {} fuzz target(s)", targets.len()));
    let mut build = cargo_fuzz(ctx, &fuzz_dir, "build");
    build_options(&mut build);
    if let [only] = targets.as_slice() {
        build.arg(only);
    }
    let status = build
        .status()
        .map_err(|e| format!("cannot run cargo fuzz build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo fuzz build failed ({status})"));
    }

    let mut outcomes = Vec::new();
    for target in &targets {
        ctx.log(format!("{target}: fuzzing for {}s", options.seconds));
        let outcome = run_target(ctx, &fuzz_dir, target, options.seconds)?;
        ctx.log(format!(
            "{target}: {} executions, {}/s{}",
            group(outcome.figures.executions),
            group(outcome.figures.execs_per_second),
            if outcome.crashed { ", CRASHED" } else { "" }
        ));
        outcomes.push(outcome);
    }

    print!("\n{}", summary(&outcomes));
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| o.crashed).collect();
    for outcome in &crashed {
        eprintln!(
            "\n{}: {}\n  input: {}\n  log:   {}\n  reproduce (at the workspace root): cargo {TOOLCHAIN} fuzz run {} {} {}",
            outcome.target,
            outcome
                .figures
                .failure
                .as_deref()
                .unwrap_or("the fuzzer failed"),
            outcome
                .figures
                .artifact
                .as_deref()
                .unwrap_or("(none written; see the log)"),
            outcome.log.display(),
            BUILD_FLAGS.join(" "),
            outcome.target,
            outcome.figures.artifact.as_deref().unwrap_or("<input>"),
        );
    }
    if let Some(out) = out {
        let out = if out.is_absolute() {
            out
        } else {
            std::env::current_dir()
                .map_err(|e| format!("no current directory: {e}"))?
                .join(out)
        };
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let markdown = markdown(ctx, &options, &outcomes);
        fs::write(&out, &markdown).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        println!("table written to {}", out.display());
        // The published figures (every target, default file) go into the book too.
        if options.out.is_none() && options.targets.is_empty() {
            publish(ctx, &markdown)?;
        }
    }
    Ok(if crashed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Copies the results table into docs/fuzzing.md and docs/reliability.md, between their
/// `results:fuzz` markers.
fn publish(ctx: &Context, markdown: &str) -> Result<(), String> {
    for page in ["docs/fuzzing.md", "docs/reliability.md"] {
        let page = ctx.workspace_root.join(page);
        crate::docs::publish_results(&page, &[("fuzz", markdown)])?;
        println!("copied into {}", page.display());
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seconds: 60,
        targets: Vec::new(),
        out: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--seconds" => {
                let text = value("--seconds")?;
                options.seconds = text
                    .parse()
                    .ok()
                    .filter(|seconds| *seconds > 0)
                    .ok_or_else(|| format!("--seconds takes a positive number, got `{text}`"))?;
            }
            "--target" => options.targets.push(value("--target")?),
            "--out" => options.out = Some(PathBuf::from(value("--out")?)),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }
    Ok(options)
}

/// `cargo +nightly fuzz <subcommand>` at the workspace root on `fuzz_dir`. Builds go to a
/// directory of their own ([`build_options`]): sanitizer builds must not land in, or
/// rebuild, the workspace's.
fn cargo_fuzz(ctx: &Context, fuzz_dir: &Path, subcommand: &str) -> Command {
    // rustup's `cargo` proxy, not $CARGO (the stable cargo running xtask), so `+nightly`
    // works; and without the toolchain rustup chose for xtask.
    let mut command = Command::new("cargo");
    command
        .current_dir(&ctx.workspace_root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .args([TOOLCHAIN, "fuzz", subcommand, "--fuzz-dir"])
        .arg(fuzz_dir);
    command
}

/// [`BUILD_FLAGS`], and the build directory: `$CARGO_TARGET_DIR/fuzz` when the variable is
/// set (CI keeps its target directory between runs, not its checkout), else cargo-fuzz's
/// own `fuzz/target`. Either way apart from the workspace's builds.
fn build_options(command: &mut Command) {
    command.args(BUILD_FLAGS);
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
        command
            .arg("--target-dir")
            .arg(PathBuf::from(dir).join("fuzz"));
    }
}

fn ensure_cargo_fuzz(ctx: &Context) -> Result<(), String> {
    let installed = Command::new("cargo")
        .env_remove("RUSTUP_TOOLCHAIN")
        .args([TOOLCHAIN, "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed {
        return Ok(());
    }
    let nightly = Command::new("rustc")
        .env_remove("RUSTUP_TOOLCHAIN")
        .args([TOOLCHAIN, "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !nightly {
        return Err(
            "cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly".to_owned(),
        );
    }
    ctx.log("cargo-fuzz is missing: cargo install cargo-fuzz --locked");
    let status = Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo install cargo-fuzz failed ({status})"))
    }
}

fn list_targets(ctx: &Context, fuzz_dir: &Path) -> Result<Vec<String>, String> {
    let output = cargo_fuzz(ctx, fuzz_dir, "list")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo fuzz list: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo fuzz list failed ({})", output.status));
    }
    let targets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        return Err(format!(
            "no fuzz targets in {}/Cargo.toml",
            fuzz_dir.display()
        ));
    }
    Ok(targets)
}

fn run_target(
    ctx: &Context,
    fuzz_dir: &Path,
    target: &str,
    seconds: u64,
) -> Result<Outcome, String> {
    let generated = fuzz_dir.join("generated").join(target);
    let seeds = fuzz_dir.join("corpus").join(target);
    let logs = fuzz_dir.join("logs");
    for dir in [&generated, &seeds, &logs] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let log = logs.join(format!("{target}.log"));
    let log_file =
        File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let log_too = log_file
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut command = cargo_fuzz(ctx, fuzz_dir, "run");
    build_options(&mut command);
    command
        .arg(target)
        // The first corpus directory receives new inputs; the seeds stay as committed.
        .arg(&generated)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1")
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_too);
    let started = std::time::Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo fuzz run {target}: {e}"))?;
    let wall_seconds = started.elapsed().as_secs();
    let text = fs::read(&log)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    let figures = parse_log(&text);
    let crashed = !status.success() || figures.artifact.is_some();
    if crashed && figures.artifact.is_none() && figures.executions == 0 {
        // Not a finding: the run did not start (a build or usage error).
        return Err(format!(
            "cargo fuzz run {target} failed ({status}); log {}:\n{}",
            log.display(),
            crate::process::tail(&log, 25)
        ));
    }
    Ok(Outcome {
        target: target.to_owned(),
        seconds: figures.seconds.unwrap_or(wall_seconds),
        figures,
        crashed,
        log,
    })
}

/// Reads libFuzzer's output: the `stat::` lines of `-print_final_stats`, else the
/// `Done N runs in S second(s)` line; the last status line's `cov:` and `corp:`; the
/// artifact written for a failing input, and the message that came with it.
fn parse_log(text: &str) -> Figures {
    let mut figures = Figures::default();
    let mut done: Option<(u64, u64)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(value) = stat(line, "stat::number_of_executed_units:") {
            figures.executions = value;
        } else if let Some(value) = stat(line, "stat::average_exec_per_sec:") {
            figures.execs_per_second = value;
        } else if let Some(rest) = line.strip_prefix("Done ") {
            let mut words = rest.split_whitespace();
            let runs = words.next().and_then(|w| w.parse().ok());
            let secs = words.nth(2).and_then(|w| w.parse().ok());
            if let (Some(runs), Some(secs)) = (runs, secs) {
                done = Some((runs, secs));
            }
        } else if line.starts_with('#') && line.contains(" cov: ") {
            figures.edges = word_after(line, "cov:")
                .and_then(|edges| edges.parse().ok())
                .or(figures.edges);
            figures.corpus = word_after(line, "corp:")
                .and_then(|corpus| corpus.split('/').next()?.parse().ok())
                .or(figures.corpus);
        }
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            figures.artifact = Some(path.trim().to_owned());
        }
        if figures.failure.is_none()
            && (line.contains("panicked at")
                || line.starts_with("==") && line.contains("ERROR:")
                || line.starts_with("ERROR: libFuzzer"))
        {
            figures.failure = Some(line.to_owned());
        }
    }
    if let Some((runs, secs)) = done {
        figures.seconds = Some(secs);
        if figures.executions == 0 {
            figures.executions = runs;
            figures.execs_per_second = runs / secs.max(1);
        }
    }
    figures
}

fn stat(line: &str, name: &str) -> Option<u64> {
    line.strip_prefix(name)?.trim().parse().ok()
}

fn word_after(line: &str, label: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    words.find(|word| *word == label)?;
    words.next().map(str::to_owned)
}

/// The summary printed at the end of a run.
fn summary(outcomes: &[Outcome]) -> String {
    let mut text = format!(
        "{:<20} {:>8} {:>15} {:>10} {:>8}\n",
        "target", "seconds", "executions", "exec/s", "crashes"
    );
    for outcome in outcomes {
        let _ = writeln!(
            text,
            "{:<20} {:>8} {:>15} {:>10} {:>8}",
            outcome.target,
            outcome.seconds,
            group(outcome.figures.executions),
            group(outcome.figures.execs_per_second),
            u8::from(outcome.crashed)
        );
    }
    let _ = writeln!(
        text,
        "{:<20} {:>8} {:>15} {:>10} {:>8}",
        "total",
        outcomes.iter().map(|o| o.seconds).sum::<u64>(),
        group(outcomes.iter().map(|o| o.figures.executions).sum()),
        "",
        outcomes.iter().filter(|o| o.crashed).count()
    );
    text
}

/// The table for the docs, with what is needed to reproduce it.
fn markdown(ctx: &Context, options: &Options, outcomes: &[Outcome]) -> String {
    let first_line = |program: &str, args: &[&str]| {
        Command::new(program)
            .current_dir(&ctx.workspace_root)
            .env_remove("RUSTUP_TOOLCHAIN")
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .next()
                    .map(|line| line.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let date = first_line("date", &["-u", "+%Y-%m-%d"]);
    let commit = first_line("git", &["rev-parse", "--short", "HEAD"]);
    let rustc = first_line("rustc", &[TOOLCHAIN, "--version"]);
    let cargo_fuzz = first_line("cargo", &[TOOLCHAIN, "fuzz", "--version"]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut text = String::from("# Fuzzing results\n\n");
    let _ = writeln!(
        text,
        "Written by `cargo xtask fuzz --seconds {}` on {date} at commit `{commit}`: {rustc}, \
         {cargo_fuzz}, libFuzzer with AddressSanitizer and debug assertions, one target at a \
         time on a {cores}-core machine shared with other work. Each run starts from the seeds \
         in `fuzz/corpus/` and the inputs earlier runs kept in `fuzz/generated/`.\n",
        options.seconds
    );
    text.push_str("| target | seconds | executions | exec/s | edges | corpus | crashes |\n");
    text.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    let optional = |value: Option<u64>| value.map_or_else(|| "?".to_owned(), group);
    for outcome in outcomes {
        let _ = writeln!(
            text,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            outcome.target,
            outcome.seconds,
            group(outcome.figures.executions),
            group(outcome.figures.execs_per_second),
            optional(outcome.figures.edges),
            optional(outcome.figures.corpus),
            u8::from(outcome.crashed)
        );
    }
    let _ = writeln!(
        text,
        "| **total** | {} | **{}** | | | | **{}** |",
        outcomes.iter().map(|o| o.seconds).sum::<u64>(),
        group(outcomes.iter().map(|o| o.figures.executions).sum()),
        outcomes.iter().filter(|o| o.crashed).count()
    );
    text
}

/// `12345678` as `12,345,678`.
fn group(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "\
INFO: Seed: 1234
#2\tINITED cov: 38 ft: 39 corp: 1/1b exec/s: 0 rss: 30Mb
#617875\tDONE   cov: 831 ft: 1177 corp: 208/6987b lim: 66 exec/s: 29422 rss: 378Mb
Done 617875 runs in 21 second(s)
stat::number_of_executed_units: 617875
stat::average_exec_per_sec:     29422
stat::new_units_added:          200
";

    #[test]
    fn a_clean_run_gives_its_figures() {
        let figures = parse_log(CLEAN);
        assert_eq!(
            figures,
            Figures {
                seconds: Some(21),
                executions: 617_875,
                execs_per_second: 29_422,
                edges: Some(831),
                corpus: Some(208),
                artifact: None,
                failure: None,
            }
        );
    }

    #[test]
    fn a_crash_gives_its_input_and_message() {
        let log = "\
#1000\tNEW    cov: 10 ft: 10 corp: 5/20b lim: 4 exec/s: 0 rss: 30Mb
thread '<unnamed>' panicked at fuzz_targets/session_id.rs:38:70:
==16517== ERROR: libFuzzer: deadly signal
artifact_prefix='/w/fuzz/artifacts/session_id/'; Test unit written to /w/fuzz/artifacts/session_id/crash-801c
stat::number_of_executed_units: 1234
stat::average_exec_per_sec:     617
";
        let figures = parse_log(log);
        assert_eq!(
            figures.artifact.as_deref(),
            Some("/w/fuzz/artifacts/session_id/crash-801c")
        );
        assert_eq!(
            figures.failure.as_deref(),
            Some("thread '<unnamed>' panicked at fuzz_targets/session_id.rs:38:70:")
        );
        assert_eq!((figures.executions, figures.execs_per_second), (1234, 617));
        assert_eq!((figures.edges, figures.corpus), (Some(10), Some(5)));
        assert_eq!(figures.seconds, None, "no Done line after a crash");
    }

    #[test]
    fn without_final_stats_the_done_line_counts() {
        let figures = parse_log("Done 100 runs in 4 second(s)\n");
        assert_eq!((figures.executions, figures.execs_per_second), (100, 25));
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(12_345_678), "12,345,678");
    }

    #[test]
    fn options() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let options = parse_args(&args(&["--seconds", "5", "--target", "signer"])).unwrap();
        assert_eq!(
            (options.seconds, options.targets),
            (5, vec!["signer".into()])
        );
        assert!(parse_args(&args(&["--seconds", "0"])).is_err());
        assert!(parse_args(&args(&["--seconds"])).is_err());
        assert!(parse_args(&args(&["--jobs", "2"])).is_err());
    }
}
