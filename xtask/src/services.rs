//! `cargo xtask services up|down|status|install|env`.

use std::fs;
use std::process::ExitCode;

use crate::context::{Context, Mode};
use crate::service::{self, parse_list, Service};
use crate::{docker, install, native, venv};

pub fn command(ctx: &Context, args: &[String]) -> Result<ExitCode, String> {
    let Some((action, rest)) = args.split_first() else {
        return Err("usage: cargo xtask services up|down|status|install|env [SERVICE...]".into());
    };
    match action.as_str() {
        "up" => {
            let services = parse_list(rest)?;
            let _lock = ctx.lock()?;
            up(ctx, &services)?;
            print_settings(ctx, &services);
            Ok(ExitCode::SUCCESS)
        }
        "down" => {
            let services = parse_list(rest)?;
            let _lock = ctx.lock()?;
            down(ctx, &services)?;
            Ok(ExitCode::SUCCESS)
        }
        "install" => {
            let services = parse_list(rest)?;
            let _lock = ctx.lock()?;
            let failures = install::install(ctx, &services, true, false);
            if failures.is_empty() {
                ctx.log(format!(
                    "installed: {} and the Flask interop venv",
                    names(&services)
                ));
                return Ok(ExitCode::SUCCESS);
            }
            let report: Vec<String> = failures
                .iter()
                .map(|(owner, error)| format!("{}: {error}", owner.unwrap_or("flask-venv")))
                .collect();
            Err(report.join("\n"))
        }
        "status" => status(ctx, &parse_list(rest)?),
        "env" => {
            if !rest.is_empty() {
                return Err("`services env` takes no arguments".into());
            }
            print!("{}", env_file_text(&settings(ctx)));
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!(
            "unknown action `services {other}` (expected up, down, status, install or env)"
        )),
    }
}

/// Every connection setting, plus FLASK_PYTHON once the venv exists and PLAYWRIGHT_CORE,
/// CHROMIUM once the browser test's tools are installed.
pub fn settings(ctx: &Context) -> Vec<(&'static str, String)> {
    let mut vars = service::all_env_vars();
    if venv::FLASK.is_current(ctx) {
        vars.push((
            "FLASK_PYTHON",
            venv::FLASK.python(ctx).display().to_string(),
        ));
    }
    vars.extend(crate::browser::settings(ctx));
    vars
}

/// Shell-sourceable and dotenv-readable: `export KEY='value'`.
fn env_file_text(vars: &[(&str, String)]) -> String {
    vars.iter()
        .map(|(key, value)| format!("export {key}='{}'\n", value.replace('\'', r"'\''")))
        .collect()
}

/// Makes every service in `services` answer; reports every failure, not just the first.
/// Also builds the Flask interop venv (a failure there is only a warning here).
pub fn up(ctx: &Context, services: &[Service]) -> Result<(), String> {
    let already: Vec<Service> = services.iter().copied().filter(|s| s.is_up()).collect();
    let missing: Vec<Service> = services
        .iter()
        .copied()
        .filter(|s| !already.contains(s))
        .collect();
    let use_docker = !missing.is_empty()
        && match ctx.mode {
            Mode::Native => false,
            Mode::Docker => true,
            Mode::Auto => docker::engine_available(),
        };

    let mut failures: Vec<(String, String)> = Vec::new();
    if use_docker {
        for service in &already {
            ctx.log(format!(
                "{}: already answering on {}",
                service.name(),
                service.address()
            ));
        }
        if let Err(error) = docker::up(ctx, &missing) {
            failures.push(("docker compose".into(), error));
        }
        if let Err(error) = venv::ensure(ctx, &venv::FLASK) {
            ctx.log(format!(
                "warning: {error} (the Flask interop tests will fail)"
            ));
        }
    } else {
        let mut install_failures = install::install(ctx, services, true, true);
        if let Some(error) = install_failures.remove(&None) {
            ctx.log(format!(
                "warning: {error} (the Flask interop tests will fail)"
            ));
        }
        for &service in services {
            let result = match install_failures.remove(&Some(service.name())) {
                Some(error) => Err(error),
                None => native::start(ctx, service),
            };
            if let Err(error) = result {
                ctx.log(format!("{}: FAILED", service.name()));
                failures.push((service.name().to_string(), error));
            }
        }
    }
    write_env_file(ctx)?;
    if failures.is_empty() {
        ctx.log(format!(
            "services up in {:.1}s: {}",
            ctx.elapsed(),
            names(services)
        ));
        return Ok(());
    }
    let report: Vec<String> = failures
        .iter()
        .map(|(name, error)| format!("{name}: {error}"))
        .collect();
    Err(format!(
        "{} of {} services could not be started:\n{}",
        failures.len(),
        services.len(),
        report.join("\n")
    ))
}

fn names(services: &[Service]) -> String {
    services
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn write_env_file(ctx: &Context) -> Result<(), String> {
    let path = ctx.env_file();
    fs::write(&path, env_file_text(&settings(ctx)))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn print_settings(ctx: &Context, services: &[Service]) {
    eprintln!(
        "\nConnection settings (all of them are in {}; `. {0}` exports them):",
        ctx.env_file().display()
    );
    for service in services {
        for (key, value) in service.env_vars() {
            println!("{key}={value}");
        }
    }
    if venv::FLASK.is_current(ctx) {
        println!("FLASK_PYTHON={}", venv::FLASK.python(ctx).display());
    }
}

/// Stops what xtask started: native processes from pid files, and the compose project when a
/// Docker engine is available.
pub fn down(ctx: &Context, services: &[Service]) -> Result<(), String> {
    let mut errors = Vec::new();
    for &service in services.iter().rev() {
        if let Err(error) = native::stop(ctx, service) {
            errors.push(error);
        }
    }
    if ctx.mode != Mode::Native && docker::engine_available() {
        if let Err(error) = docker::down(ctx, services) {
            errors.push(error);
        }
    }
    if errors.is_empty() {
        ctx.log(format!("services down: {}", names(services)));
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

fn status(ctx: &Context, services: &[Service]) -> Result<ExitCode, String> {
    let mut all_up = true;
    for &service in services {
        let up = service.is_up();
        all_up &= up;
        let pids = native::tracked_pids(ctx, service);
        let origin = match (up, pids.is_empty()) {
            (true, false) => format!("started by xtask, pid {}", join_pids(&pids)),
            (true, true) => "not started by xtask".to_string(),
            (false, false) => format!(
                "process running but not answering, pid {}",
                join_pids(&pids)
            ),
            (false, true) => String::new(),
        };
        let state = if up { "UP" } else { "DOWN" };
        let origin = if origin.is_empty() {
            origin
        } else {
            format!("  ({origin})")
        };
        println!(
            "{:<15} {state:<5} {}{origin}",
            service.name(),
            service.address()
        );
    }
    Ok(if all_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn join_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_quotes_values_for_the_shell() {
        let text = env_file_text(&[("A", "x?y=1&z=2".to_string()), ("B", "it's".to_string())]);
        assert_eq!(text, "export A='x?y=1&z=2'\nexport B='it'\\''s'\n");
    }
}
