//! `cargo xtask`: the project's automation entry point.
//!
//! ```text
//! cargo xtask services up [SERVICE...]      install what is missing, start, wait, print URLs
//! cargo xtask services down [SERVICE...]    stop what `up` started
//! cargo xtask services status [SERVICE...]  UP/DOWN per service
//! cargo xtask services install [SERVICE...] install only (apt packages, venvs), start nothing
//! cargo xtask services env                  print the connection settings as shell exports
//! cargo xtask flask-venv                    build the Python venv for the Flask interop tests
//! cargo xtask browser-tools                 install Chromium, Node.js, playwright-core (browser test)
//! cargo xtask demo                          Redis + Flask venv + the Flask-to-Rust migration demo
//! cargo xtask test [CARGO TEST ARGS...]     services + venv + `cargo test --workspace`
//! cargo xtask test --offline                the tests that need no server, nothing started
//! cargo xtask bench [RUNNER ARGS...]        Redis up + the load benchmark (bench/, release build)
//! cargo xtask bench memory [ARGS...]        Redis up + the benchmark's memory check alone
//! cargo xtask bench callgrind [ARGS...]     Redis up + instructions per request (callgrind)
//! cargo xtask fuzz [--seconds N] [--target NAME] [--out PATH]   the cargo-fuzz targets of fuzz/
//! cargo xtask compose-check               docker-compose.yml valid and in step with the native mode
//! cargo xtask docs [--check-only]          the book: mdbook build + link, anchor and SUMMARY checks
//! cargo xtask publish-check [--no-verify]   `cargo package` every published crate, verified
//! cargo xtask faults [--quick] [--only NAMES] the example under load while its store fails
//! cargo xtask soak [--minutes M]           two example processes under a mixed load
//! ```
//!
//! Standard library only, so that it compiles in seconds before every test run.

mod browser;
mod compose;
mod context;
mod demo;
mod docker;
mod docs;
mod faults;
mod fuzz;
mod install;
mod native;
mod netns;
mod probe;
mod process;
mod publish;
mod redis_topology;
mod service;
mod services;
mod soak;
mod test_runner;
mod venv;

use std::process::ExitCode;

use context::Context;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  services up [SERVICE...]      install what is missing, start the backing services, wait until
                                they answer, print the connection URLs (default: all services)
  services down [SERVICE...]    stop the services that `services up` started
  services status [SERVICE...]  print UP or DOWN for each service (exit 1 if any is down)
  services install [SERVICE...] install what the services need without starting them
  services env                  print the connection settings as shell `export` lines
  flask-venv                    create the Python venv for the Flask interop tests, print FLASK_PYTHON
  browser-tools                 install the browser test's tools (Chromium and Node.js with apt,
                                playwright-core with npm ci), print PLAYWRIGHT_CORE
  demo                          Redis up + flask-venv + the Flask-to-Rust migration demo
                                (examples/flask-migration) on http://127.0.0.1:8080 (PORT)
  test [ARGS...]                services up + flask-venv + browser-tools + `cargo test --workspace ARGS...`
  test --offline [ARGS...]      every test that needs no server (unit tests, memory store,
                                files, SQLite); starts nothing, needs no root and no Docker
  bench [ARGS...]               Redis up + the load benchmark in bench/ (see bench/README.md)
  bench memory [ARGS...]        Redis up + only the benchmark's memory check of the session cache
  bench callgrind [ARGS...]     Redis up + each server's instructions per request under callgrind
  fuzz [--seconds N] [--target NAME] [--out PATH]
                                run the fuzz targets of fuzz/ (N seconds each, default 60), print
                                executions and crashes, write the table to fuzz/results/latest.md
  compose-check                 `docker-compose config` on docker-compose.yml (Debian's package,
                                no engine needed), then check its services, ports and credentials
                                against the native mode and the docs' `docker compose up` lines
  docs [--check-only]           build docs/ as an mdBook (mdbook from crates.io, pinned, installed
                                once) into the target dir; fail on a broken link or anchor or a
                                page missing from docs/SUMMARY.md
  publish-check [--no-verify]   `cargo package` every published crate in dependency order and
                                build each from its archive; check README, CHANGELOG, licences
  faults [--quick] [--only NAME[,NAME...]]
                                kill, stall and slow private store servers under the example app,
                                kill the master of a private Redis Cluster and Sentinel setup,
                                write reliability/results/latest.md (--quick: Redis, PostgreSQL;
                                --only: the backends whose name contains a NAME, e.g. cluster,
                                sentinel, postgres; printed, no file written)
  soak [--minutes M]            two example processes per store (Redis, PostgreSQL) under a mixed
                                load, write reliability/results/soak.md

services: redis redis-cluster redis-sentinel memcached postgres mariadb dynamodb mongodb

environment:
  SESSIONS_SERVICES_MODE   auto (default: Docker Compose when an engine answers), native, docker
  SESSIONS_RUN_DIR         pid files, logs, throwaway data, env file (default /tmp/sessions-services)
  SESSIONS_TOOLS_DIR       Python venvs and playwright-core, kept between runs (default /var/tmp/sessions-tools)
  SESSIONS_SERVICES_TIMEOUT  seconds to wait for each service (default 90)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return Ok(ExitCode::from(2));
    };
    match command.as_str() {
        "services" => {
            let ctx = Context::from_env()?;
            services::command(&ctx, rest)
        }
        "flask-venv" => {
            if !rest.is_empty() {
                return Err(format!("`flask-venv` takes no arguments\n\n{USAGE}"));
            }
            let ctx = Context::from_env()?;
            let _lock = ctx.lock()?;
            let python = venv::ensure(&ctx, &venv::FLASK)?;
            println!("FLASK_PYTHON={}", python.display());
            Ok(ExitCode::SUCCESS)
        }
        "browser-tools" => {
            if !rest.is_empty() {
                return Err(format!("`browser-tools` takes no arguments\n\n{USAGE}"));
            }
            let ctx = Context::from_env()?;
            let _lock = ctx.lock()?;
            browser::ensure(&ctx)?;
            println!(
                "PLAYWRIGHT_CORE={}",
                browser::playwright_core(&ctx).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        "demo" => {
            let ctx = Context::from_env()?;
            demo::run(&ctx, rest)
        }
        "test" => {
            let ctx = Context::from_env()?;
            test_runner::run(&ctx, rest)
        }
        "bench" => {
            let ctx = Context::from_env()?;
            bench(&ctx, rest)
        }
        "fuzz" => {
            let ctx = Context::from_env()?;
            fuzz::command(&ctx, rest)
        }
        "compose-check" => {
            let ctx = Context::from_env()?;
            compose::command(&ctx, rest)
        }
        "docs" => {
            let ctx = Context::from_env()?;
            docs::command(&ctx, rest)
        }
        "publish-check" => {
            let ctx = Context::from_env()?;
            publish::command(&ctx, rest)
        }
        "faults" => faults::command(&Context::from_env()?, rest),
        "soak" => soak::command(&Context::from_env()?, rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    }
}

/// `cargo xtask bench`: Redis up, then the load benchmark of `bench/` (a separate workspace,
/// built in release into its own target directory so it never disturbs the test build).
fn bench(ctx: &Context, runner_args: &[String]) -> Result<ExitCode, String> {
    {
        let _lock = ctx.lock()?;
        services::up(ctx, &[service::Service::Redis])?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var_os("SESSIONS_BENCH_TARGET_DIR")
        .unwrap_or_else(|| "/var/tmp/sessions-bench-target".into());
    let manifest = ctx.workspace_root.join("bench/Cargo.toml");
    let mut command = std::process::Command::new(cargo);
    command
        .args(["run", "--release", "--manifest-path"])
        .arg(&manifest)
        .args(["-p", "bench-runner", "--"])
        .args(runner_args)
        .env("CARGO_TARGET_DIR", target);
    for (key, value) in services::settings(ctx) {
        if std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run the benchmark: {e}"))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
