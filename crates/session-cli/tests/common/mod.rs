//! Running the built binary, shared by the integration tests.
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::Value;

/// Runs the binary with exactly `vars` as its environment.
pub fn run(vars: &[(&str, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_session-cli"))
        .env_clear()
        .envs(vars.iter().map(|(name, value)| (*name, value)))
        .args(args)
        .output()
        .expect("run session-cli")
}

/// Stdout of a run that must succeed (and write nothing to stderr).
pub fn ok(vars: &[(&str, String)], args: &[&str]) -> String {
    let output = run(vars, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?} failed: {stderr}");
    // The spinner is never drawn when stdout is not a terminal.
    assert!(stderr.is_empty(), "{args:?} wrote to stderr: {stderr:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The JSON of a run with `--json` that must succeed.
pub fn ok_json(vars: &[(&str, String)], args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let stdout = ok(vars, &all);
    assert_eq!(stdout.trim_end().lines().count(), 1, "{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{stdout:?}: {e}"))
}

/// The one-line error of a run that must fail (not a panic).
pub fn fails(vars: &[(&str, String)], args: &[&str]) -> String {
    let output = run(vars, args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{args:?} succeeded: {stderr}");
    assert_ne!(output.status.code(), Some(101), "panicked: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(stderr.starts_with("session-cli: error: "), "{stderr}");
    stderr
}
