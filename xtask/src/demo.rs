//! `cargo xtask demo`: the Flask-to-Rust migration demo (examples/flask-migration). Redis up,
//! the Flask venv built, then `cargo run -p flask-migration`, which prints its URL and which
//! routes go to Flask and which to Rust.

use std::process::{Command, ExitCode};

use crate::context::Context;
use crate::service::Service;
use crate::{services, venv};

pub fn run(ctx: &Context, args: &[String]) -> Result<ExitCode, String> {
    if !args.is_empty() {
        return Err(
            "`demo` takes no arguments (set PORT, HOST or SECRET_KEY in the environment)"
                .to_owned(),
        );
    }
    let python = {
        let _lock = ctx.lock()?;
        services::up(ctx, &[Service::Redis])?;
        venv::ensure(ctx, &venv::FLASK)?
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["run", "-p", "flask-migration"])
        .env("FLASK_PYTHON", &python);
    for (key, value) in services::settings(ctx) {
        if key == "REDIS_URL" && std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    ctx.log("cargo run -p flask-migration (Ctrl-C stops the demo)");
    let status = command
        .status()
        .map_err(|e| format!("cannot run the demo: {e}"))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
