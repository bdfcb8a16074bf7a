//! Drives a real Flask app with Flask-Session 0.8 (`tests/flask/interop.py`) from the interop
//! tests, through the Python venv that `cargo xtask flask-venv` builds.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// What one step of `interop.py` printed.
#[derive(Debug, Clone)]
pub struct FlaskReply(pub Value);

impl FlaskReply {
    /// The HTTP status of the Flask response.
    pub fn status(&self) -> u64 {
        self.0["status"].as_u64().unwrap_or(0)
    }
    /// The session id in Flask's cookie after the request.
    pub fn sid(&self) -> Option<String> {
        self.0["sid"].as_str().map(str::to_owned)
    }
    /// The response body (JSON, or text as a JSON string).
    pub fn body(&self) -> &Value {
        &self.0["body"]
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flask/interop.py")
}

/// The venv's python: `FLASK_PYTHON`, set by `cargo xtask test`.
fn python() -> String {
    std::env::var("FLASK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "FLASK_PYTHON is not set: run the suite with `cargo xtask test`, or build the venv \
             with `cargo xtask flask-venv` and export the path it prints"
        )
    })
}

/// Runs `interop.py STEP [SID]` with the given environment (backend settings).
pub fn run(step: &str, sid: Option<&str>, env: &[(&str, String)]) -> FlaskReply {
    let mut command = Command::new(python());
    command.arg(script()).arg(step);
    if let Some(sid) = sid {
        command.arg(sid);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run the Flask interop script: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop.py {step} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    FlaskReply(
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("interop.py {step} printed {line:?}: {e}\n{stderr}")),
    )
}
