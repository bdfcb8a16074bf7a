//! Drives headless Chromium through the example app's page (`GET /ui`) with
//! `tests/browser/drive.cjs` (playwright-core on node), for `tests/tests/browser.rs`.
//!
//! Tools, installed by `cargo xtask browser-tools` (and by `cargo xtask test`):
//! `node` on `PATH` (or `NODE`), Chromium at `/usr/bin/chromium` (or `CHROMIUM`), and
//! playwright-core at `PLAYWRIGHT_CORE` (default: the tools dir's `browser/node_modules`).
//! A missing tool fails the test with a message saying how to install it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one browser run may take before the test fails (a run takes about 3 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

const INSTALL_HINT: &str = "run `cargo xtask browser-tools` (as root: Debian's chromium, nodejs \
     and npm with apt, then playwright-core from tests/browser/package-lock.json into \
     /var/tmp/sessions-tools/browser), or run the suite with `cargo xtask test`";

/// One browser run at a time: Chromium is heavy for two cores, and the timings stay honest.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The programs a browser run needs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `node`.
    pub node: PathBuf,
    /// The Chromium binary.
    pub chromium: PathBuf,
    /// The playwright-core package directory.
    pub playwright_core: PathBuf,
}

impl Tools {
    /// Finds the tools; panics with how to install the missing one.
    pub fn find() -> Tools {
        let node = std::env::var_os("NODE")
            .map(PathBuf::from)
            .or_else(|| on_path("node"))
            .unwrap_or_else(|| panic!("node is not installed: {INSTALL_HINT}"));
        let chromium = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        assert!(
            chromium.is_file(),
            "Chromium is not installed at {}: {INSTALL_HINT}",
            chromium.display()
        );
        let playwright_core = std::env::var_os("PLAYWRIGHT_CORE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let tools = std::env::var_os("SESSIONS_TOOLS_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/var/tmp/sessions-tools"));
                tools.join("browser/node_modules/playwright-core")
            });
        assert!(
            playwright_core.join("package.json").is_file(),
            "playwright-core is not installed at {} (PLAYWRIGHT_CORE): {INSTALL_HINT}",
            playwright_core.display()
        );
        Tools {
            node,
            chromium,
            playwright_core,
        }
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/drive.cjs")
}

/// What to open, and how.
#[derive(Debug, Clone)]
pub struct Run {
    /// The app's base URL as the browser should see it (`http://127.0.0.1:PORT`).
    pub url: String,
    /// The session cookie's name, to pick it out of the browser's cookie jar.
    pub cookie: String,
    /// Chromium `--host-resolver-rules`, e.g. `MAP demo.test 127.0.0.1`.
    pub host_rules: Option<String>,
}

/// What the browser saw and held, as `drive.cjs` reported it, with the run's duration.
#[derive(Debug, Clone)]
pub struct Report {
    /// The whole report (`ui`, `steps`, `errors`, `sessionResponses`, ...).
    pub json: Value,
    /// Wall time of the run, browser start included.
    pub took: Duration,
}

impl Report {
    /// The step called `name` (`start`, `login`, `count1`..`count3`, `reload`, `logout`).
    pub fn step(&self, name: &str) -> &Value {
        self.json["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|step| step["name"] == name))
            .unwrap_or_else(|| panic!("no step {name:?} in {:#}", self.json))
    }

    /// The session cookies the browser held after step `name`.
    pub fn cookies(&self, name: &str) -> Vec<Value> {
        self.step(name)["cookies"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Runs `drive.cjs` once; panics (failing the test) when node fails or times out.
pub async fn drive(tools: &Tools, run: &Run) -> Report {
    let _one = ONE_BROWSER.lock().await;
    let mut options = serde_json::json!({ "url": run.url, "cookie": run.cookie });
    if let Some(rules) = &run.host_rules {
        options["hostRules"] = Value::from(rules.as_str());
    }
    let started = Instant::now();
    let child = tokio::process::Command::new(&tools.node)
        .arg(script())
        .arg(options.to_string())
        .env("PLAYWRIGHT_CORE", &tools.playwright_core)
        .env("CHROMIUM", &tools.chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", tools.node.display()));
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the browser run did not finish in {RUN_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("waiting for node: {e}"));
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "drive.cjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    let json = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("drive.cjs printed {line:?}: {e}\n{stderr}"));
    Report { json, took }
}
