//! Docker Compose mode: the same services from docker-compose.yml, on the same ports.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::context::Context;
use crate::process::{self, find_program, succeeds_within, wait_until};
use crate::service::Service;

/// `docker info` answers (an engine is reachable) and the compose plugin exists.
pub fn engine_available() -> bool {
    let Some(docker) = find_program("docker") else {
        return false;
    };
    let limit = Duration::from_secs(15);
    succeeds_within(Command::new(&docker).arg("info"), limit) == Some(true)
        && succeeds_within(Command::new(&docker).args(["compose", "version"]), limit) == Some(true)
}

fn compose(ctx: &Context) -> Result<Command, String> {
    let docker = find_program("docker").ok_or("docker is not installed")?;
    let file: PathBuf = ctx.workspace_root.join("docker-compose.yml");
    let mut command = Command::new(docker);
    command
        .arg("compose")
        .arg("--file")
        .arg(&file)
        .arg("--project-directory")
        .arg(&ctx.workspace_root)
        .args(["--project-name", crate::compose::PROJECT]);
    Ok(command)
}

/// `docker compose up -d` for `services`, then waits until each answers its protocol.
pub fn up(ctx: &Context, services: &[Service]) -> Result<(), String> {
    if !engine_available() {
        return Err(
            "no Docker engine with the compose plugin answers (`docker info` and \
             `docker compose version` must both work); unset SESSIONS_SERVICES_MODE to run the \
             services natively"
                .into(),
        );
    }
    let names: Vec<&str> = services.iter().map(|s| s.name()).collect();
    ctx.log(format!("docker compose up -d {}", names.join(" ")));
    let mut command = compose(ctx)?;
    command.args(["up", "--detach"]).args(&names);
    process::run("docker compose up", &mut command)?;
    let mut errors = Vec::new();
    for &service in services {
        let no_log = ctx.run_dir.join("docker-has-no-log-file");
        match wait_until(ctx, service.name(), &no_log, None, || service.is_up()) {
            Ok(()) => ctx.log(format!(
                "{}: ready on {} (docker)",
                service.name(),
                service.address()
            )),
            Err(error) => {
                // The container's own log explains more than the probe.
                let logs = compose(ctx).and_then(|mut logs| {
                    process::run(
                        "docker compose logs",
                        logs.args(["logs", "--tail", "40", service.name()]),
                    )
                });
                let logs = logs.unwrap_or_else(|e| e);
                let first_line = error.lines().next().unwrap_or_default().to_string();
                errors.push(format!("{first_line}; container log:\n{logs}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// Removes the compose project (all services) or just the listed services' containers.
pub fn down(ctx: &Context, services: &[Service]) -> Result<(), String> {
    let mut command = compose(ctx)?;
    if services.len() == Service::ALL.len() {
        command.args(["down", "--volumes"]);
    } else {
        command
            .args(["rm", "--stop", "--force", "--volumes"])
            .args(services.iter().map(|s| s.name()));
    }
    process::run("docker compose down", &mut command)?;
    ctx.log("docker compose: containers removed");
    Ok(())
}
