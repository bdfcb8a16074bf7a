//! Settings shared by every command: directories, deadlines, logging.

use std::fmt::Display;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where things live and how long to wait, read once from the environment.
pub struct Context {
    /// The workspace checkout (holds docker-compose.yml and scripts/).
    pub workspace_root: PathBuf,
    /// Pid files, logs, throwaway data and the env file. Cleared by nothing; small.
    pub run_dir: PathBuf,
    /// Python venvs. Kept between runs so a warm `services up` installs nothing.
    pub tools_dir: PathBuf,
    /// How long to wait for one service to answer.
    pub timeout: Duration,
    /// `auto`, `native` or `docker`.
    pub mode: Mode,
    started: Instant,
}

/// How the services are run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Docker Compose when a Docker engine answers, native processes otherwise.
    Auto,
    /// Native processes (apt and PyPI packages), bound to 127.0.0.1.
    Native,
    /// Docker Compose with docker-compose.yml.
    Docker,
}

impl Context {
    pub fn from_env() -> Result<Self, String> {
        // `cargo run` (the `cargo xtask` alias) sets CARGO_MANIFEST_DIR at run time too; it
        // wins over the compile-time path, because checkouts that share a target dir (a
        // clean CI clone beside a working copy) also share the uplifted xtask binary.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let workspace_root = manifest_dir
            .parent()
            .ok_or("xtask is not inside a workspace")?
            .to_path_buf();
        let run_dir = env_path("SESSIONS_RUN_DIR", "/tmp/sessions-services");
        let tools_dir = env_path("SESSIONS_TOOLS_DIR", "/var/tmp/sessions-tools");
        let timeout = match std::env::var("SESSIONS_SERVICES_TIMEOUT") {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| {
                    format!("SESSIONS_SERVICES_TIMEOUT must be a number of seconds, got `{text}`")
                })?,
            Err(_) => Duration::from_secs(90),
        };
        let mode = match std::env::var("SESSIONS_SERVICES_MODE").as_deref() {
            Err(_) | Ok("") | Ok("auto") => Mode::Auto,
            Ok("native") => Mode::Native,
            Ok("docker") => Mode::Docker,
            Ok(other) => {
                return Err(format!(
                    "SESSIONS_SERVICES_MODE must be auto, native or docker, got `{other}`"
                ))
            }
        };
        for dir in [&run_dir, &tools_dir] {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        Ok(Self {
            workspace_root,
            run_dir,
            tools_dir,
            timeout,
            mode,
            started: Instant::now(),
        })
    }

    /// Progress message on stderr, with the time since the command started.
    pub fn log(&self, message: impl Display) {
        eprintln!(
            "[xtask {:5.1}s] {message}",
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Seconds since the command started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The file holding the connection settings (`export KEY='value'` lines).
    pub fn env_file(&self) -> PathBuf {
        self.run_dir.join("env")
    }

    /// Holds an exclusive lock on the run directory until dropped, so that two `services up`
    /// (two terminals, two test runs) do not start the same server twice.
    pub fn lock(&self) -> Result<File, String> {
        let path = self.run_dir.join(".lock");
        let file =
            File::create(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                self.log("another xtask holds the services lock; waiting for it");
                file.lock()
                    .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
        Ok(file)
    }
}

fn env_path(name: &str, default: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(default),
    }
}

/// True when this process runs as root (the owner of /proc/self is the effective uid).
pub fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
