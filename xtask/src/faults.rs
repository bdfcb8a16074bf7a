//! `cargo xtask faults`: the example app under load while its store fails.
//!
//! Every row starts a private server (its own data directory and free port under
//! `/var/tmp/sessions-faults`, never the shared services other work uses): Redis,
//! PostgreSQL, MariaDB, memcached, or the MongoDB (mongoeco) and DynamoDB (moto) emulators
//! in their venvs. Then the example app on it with a short `SESSION_STORE_TIMEOUT`, and
//! concurrent clients that log in and increment counters. Then one fault: the server is
//! killed (`kill -9` of its process group) and restarted, stalled (`SIGSTOP`, then
//! `SIGCONT`), or slowed (a proxy in this process adds a delay to every chunk it
//! forwards). The row passes when every response is 200 or 503 within the timeout plus a
//! margin, the first 200 comes within 2 s of the server's return, no counter lost an
//! acknowledged increment (acknowledged <= final <= attempted; after a kill only on a
//! server that keeps its data, see `Backend::durable`), and the app's log holds no
//! panic. The table goes to `reliability/results/latest.md`; the exit status is non-zero
//! when a row fails.
//!
//! The machinery (servers, proxy, HTTP client, the app process) is shared with
//! `cargo xtask soak` ([`crate::soak`]).

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::{is_root, Context};
use crate::probe;
use crate::process::find_program;
use crate::venv::{self, VenvSpec};

/// `SESSION_STORE_TIMEOUT` of the app under test: short, so a row takes seconds.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// What a response may take beyond the store timeout before it counts as a hang.
pub const MARGIN: Duration = Duration::from_secs(3);
/// The first 200 must come this soon after the server is back.
const RECOVERY_TARGET: Duration = Duration::from_secs(2);
/// Sessions under load in each row, and client threads per session.
const SESSIONS: usize = 6;
const THREADS_PER_SESSION: usize = 2;
/// Where the private servers and app logs live; removed at the start of each run.
pub const WORK_DIR: &str = "/var/tmp/sessions-faults";

/// A store the example can run on, with a server this module can start privately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Redis,
    Postgres,
    Mariadb,
    Memcached,
    /// The mongoeco emulator (`scripts/mongoeco_server.py`); Debian has no mongod.
    Mongodb,
    /// The moto emulator (`scripts/moto_server.py`).
    Dynamodb,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Redis => "Redis",
            Backend::Postgres => "PostgreSQL",
            Backend::Mariadb => "MariaDB",
            Backend::Memcached => "Memcached",
            Backend::Mongodb => "MongoDB (mongoeco)",
            Backend::Dynamodb => "DynamoDB (moto)",
        }
    }

    /// A name for files and directories.
    fn slug(self) -> String {
        format!("{self:?}").to_lowercase()
    }

    /// Whether a restarted server still holds what was acknowledged, after a `kill -9` of
    /// the process (not of the machine: the operating system's page cache survives). Redis
    /// runs with an fsync'd append-only file here, PostgreSQL commits to its WAL, MariaDB
    /// writes InnoDB's redo log at every commit, mongoeco keeps its data in SQLite and moto's
    /// launcher writes its tables to a file before each answer; memcached keeps nothing.
    fn durable(self) -> bool {
        self != Backend::Memcached
    }

    /// An emulated server's Python venv and launcher (relative to the workspace root).
    fn emulator(self) -> Option<(&'static VenvSpec, &'static str)> {
        match self {
            Backend::Mongodb => Some((&venv::MONGOECO, "scripts/mongoeco_server.py")),
            Backend::Dynamodb => Some((&venv::MOTO, "scripts/moto_server.py")),
            _ => None,
        }
    }

    /// Whether a server on `port` answers its protocol's simplest request.
    fn answers(self, port: u16) -> bool {
        match self {
            Backend::Redis => probe::redis_ping(port),
            Backend::Postgres => probe::postgres_accepting(port),
            Backend::Mariadb => probe::mysql_greeting(port),
            Backend::Memcached => probe::memcached_version(port).is_some(),
            Backend::Mongodb => probe::mongodb_ping(port),
            Backend::Dynamodb => probe::dynamodb_list_tables(port),
        }
    }

    /// The example's environment for a server (or proxy) on `port`.
    pub fn app_env(self, port: u16) -> Vec<(&'static str, String)> {
        match self {
            Backend::Redis => vec![
                ("SESSION_TYPE", "redis".into()),
                ("SESSION_REDIS_URL", format!("redis://127.0.0.1:{port}")),
            ],
            Backend::Postgres => vec![
                ("SESSION_TYPE", "sqlalchemy".into()),
                (
                    "SESSION_SQL_URL",
                    format!("postgres://sessions@127.0.0.1:{port}/postgres"),
                ),
            ],
            Backend::Mariadb => vec![
                ("SESSION_TYPE", "sqlalchemy".into()),
                (
                    "SESSION_SQL_URL",
                    format!("mysql://sessions@127.0.0.1:{port}/sessions"),
                ),
            ],
            Backend::Memcached => vec![
                ("SESSION_TYPE", "memcached".into()),
                ("SESSION_MEMCACHED_SERVERS", format!("127.0.0.1:{port}")),
            ],
            Backend::Mongodb => vec![
                ("SESSION_TYPE", "mongodb".into()),
                (
                    "SESSION_MONGODB_URL",
                    format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
                ),
            ],
            // The emulator checks no signature; dummy credentials as `services env` gives.
            Backend::Dynamodb => vec![
                ("SESSION_TYPE", "dynamodb".into()),
                (
                    "SESSION_DYNAMODB_ENDPOINT",
                    format!("http://127.0.0.1:{port}"),
                ),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_ACCESS_KEY_ID", "dummy".into()),
                ("AWS_SECRET_ACCESS_KEY", "dummy".into()),
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill,
    Stall,
    Latency,
}

impl Fault {
    fn describe(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9, restart after 3 s",
            Fault::Stall => "SIGSTOP 4 s, SIGCONT",
            Fault::Latency => "+300 ms per chunk, 5 s",
        }
    }
}

// ------------------------------------------------------------------------------ servers

/// A server of `backend` in a directory of its own, in a process group of its own so that
/// a signal reaches every process of it (PostgreSQL's backends too).
pub struct Server {
    pub backend: Backend,
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// The venv's python of an emulated server, and the launcher it runs.
    emulator: Option<(PathBuf, PathBuf)>,
}

impl Server {
    pub fn start(ctx: &Context, backend: Backend, root: &Path) -> Result<Server, String> {
        let port = free_port()?;
        let dir = root.join(format!("{}-{port}", backend.slug()));
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        match backend {
            Backend::Postgres => init_postgres(&dir)?,
            Backend::Mariadb => init_mariadb(&dir)?,
            _ => {}
        }
        // A fresh machine gets the venv here, as `cargo xtask services up` would build it.
        let emulator = match backend.emulator() {
            Some((spec, launcher)) => {
                Some((venv::ensure(ctx, spec)?, ctx.workspace_root.join(launcher)))
            }
            None => None,
        };
        let mut server = Server {
            backend,
            port,
            dir,
            child: None,
            emulator,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts the server process and waits until it answers.
    pub fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .map_err(|e| format!("cannot open the server log: {e}"))?;
        let mut command = match self.backend {
            Backend::Redis => {
                let mut command = Command::new("redis-server");
                command.args(["--bind", "127.0.0.1", "--port", &port, "--save", ""]);
                // Acknowledged writes must survive kill -9: fsync'd append-only file.
                command.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"]);
                command.arg(&self.dir);
                command
            }
            Backend::Memcached => {
                let mut command = Command::new("memcached");
                command.args(["-l", "127.0.0.1", "-p", &port, "-U", "0", "-u", "nobody"]);
                command
            }
            Backend::Postgres => {
                let mut command = Command::new(postgres_bin("postgres")?);
                command.arg("-D").arg(&self.dir).arg("-k").arg(&self.dir);
                command.args(["-p", &port, "-c", "listen_addresses=127.0.0.1"]);
                command.args(["-c", "fsync=off", "-c", "max_connections=60"]);
                let (uid, gid) = postgres_ids()?;
                command.uid(uid).gid(gid);
                command
            }
            Backend::Mariadb => {
                let mut command = Command::new(mariadb_bin("mariadbd")?);
                // No option file: nothing of the shared server's configuration applies.
                command.arg("--no-defaults").args(mariadb_user());
                command.args(mariadb_files(&self.dir));
                command.arg(format!("--port={port}"));
                command.arg(format!(
                    "--init-file={}",
                    self.dir.join("init.sql").display()
                ));
                // The redo log reaches the operating system at every commit: an
                // acknowledged write survives a kill -9 of the server, as with PostgreSQL's
                // fsync=off above.
                command.args([
                    "--bind-address=127.0.0.1",
                    "--skip-name-resolve",
                    "--innodb-flush-log-at-trx-commit=2",
                    "--innodb-buffer-pool-size=64M",
                ]);
                command
            }
            // Both launchers keep their data in memory unless given a file: mongoeco then
            // keeps it in SQLite, moto's launcher pickles its tables before each answer.
            Backend::Mongodb => {
                let mut command = self.emulator_command()?;
                command.args(["--host", "127.0.0.1", "--port", &port, "--sqlite"]);
                command.arg(self.dir.join("mongoeco.sqlite"));
                command
            }
            Backend::Dynamodb => {
                let mut command = self.emulator_command()?;
                command.args(["-H", "127.0.0.1", "-p", &port, "--state"]);
                command.arg(self.dir.join("moto.pickle"));
                command
            }
        };
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot share the server log: {e}"))?;
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.backend.name()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.backend.answers(self.port) {
            if Instant::now() > deadline {
                return Err(format!(
                    "{} on port {} did not answer within 30 s (log {})",
                    self.backend.name(),
                    self.port,
                    self.dir.with_extension("log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The emulator's launcher in its venv's python, without arguments yet.
    fn emulator_command(&self) -> Result<Command, String> {
        let (python, launcher) = self
            .emulator
            .as_ref()
            .ok_or_else(|| format!("{} has no emulator", self.backend.name()))?;
        let mut command = Command::new(python);
        command.arg(launcher);
        Ok(command)
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`) to every process of the server: its process
    /// group, and the main process's children by id (each PostgreSQL backend calls
    /// `setsid`, so a group signal would miss them and leave the connections served).
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let mut targets = vec![format!("-{}", child.id())];
            targets.extend(children_of(child.id()).iter().map(u32::to_string));
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg("--")
                .args(&targets)
                .stderr(Stdio::null())
                .status();
        }
    }

    /// `kill -9` of every process of the server, and waits for the main one.
    pub fn kill(&mut self) {
        self.signal("KILL");
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        if self.backend == Backend::Postgres {
            // The lock file of a postmaster killed with all its backends above.
            let _ = fs::remove_file(self.dir.join("postmaster.pid"));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal("CONT");
        self.kill();
    }
}

/// The ids of the processes whose parent is `pid`, from `/proc`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let parent: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}

fn postgres_bin(name: &str) -> Result<PathBuf, String> {
    let mut versions: Vec<_> = fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (/usr/lib/postgresql)".to_string())?
        .flatten()
        .map(|entry| entry.path().join("bin").join(name))
        .filter(|path| path.exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| format!("PostgreSQL's {name} is not installed"))
}

fn postgres_ids() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| format!("id: {e}"))?;
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|_| "no `postgres` user to run PostgreSQL as".to_string())
    };
    Ok((id("-u")?, id("-g")?))
}

/// A throwaway cluster owned by the postgres user, superuser `sessions`, trust on loopback.
fn init_postgres(dir: &Path) -> Result<(), String> {
    let (uid, gid) = postgres_ids()?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(|e| format!("cannot give {} to postgres: {e}", dir.display()))?;
    let output = Command::new(postgres_bin("initdb")?)
        .arg("-D")
        .arg(dir)
        .args(["-U", "sessions", "-A", "trust", "--no-sync"])
        .uid(uid)
        .gid(gid)
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

fn mariadb_bin(name: &str) -> Result<PathBuf, String> {
    find_program(name).ok_or_else(|| format!("MariaDB's {name} is not installed"))
}

/// mariadbd refuses to run as root unless told to.
fn mariadb_user() -> Option<&'static str> {
    is_root().then_some("--user=root")
}

/// Where a private MariaDB keeps its data, socket and pid file: all in `dir`.
fn mariadb_files(dir: &Path) -> [String; 3] {
    [
        format!("--datadir={}", dir.join("data").display()),
        format!("--socket={}", dir.join("mysqld.sock").display()),
        format!("--pid-file={}", dir.join("mariadbd.pid").display()),
    ]
}

/// A throwaway data directory, and the SQL mariadbd runs at each start (`--init-file`):
/// database `sessions` and user `sessions` without a password, from 127.0.0.1 only.
fn init_mariadb(dir: &Path) -> Result<(), String> {
    let init = "CREATE DATABASE IF NOT EXISTS sessions;\n\
                CREATE USER IF NOT EXISTS 'sessions'@'127.0.0.1';\n\
                GRANT ALL PRIVILEGES ON sessions.* TO 'sessions'@'127.0.0.1';\n";
    let init_file = dir.join("init.sql");
    fs::write(&init_file, init)
        .map_err(|e| format!("cannot write {}: {e}", init_file.display()))?;
    let output = Command::new(mariadb_bin("mariadb-install-db")?)
        .arg("--no-defaults")
        .args(mariadb_user())
        .arg(format!("--datadir={}", dir.join("data").display()))
        .args(["--skip-test-db", "--auth-root-authentication-method=socket"])
        .output()
        .map_err(|e| format!("cannot run mariadb-install-db: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| format!("no free port: {e}"))
}

// -------------------------------------------------------------------------------- proxy

/// A TCP proxy to `127.0.0.1:upstream` that sleeps `delay_ms` before forwarding each
/// chunk, in both directions.
pub struct Proxy {
    pub port: u16,
    pub delay_ms: Arc<AtomicU64>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Result<Proxy, String> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("proxy: cannot listen: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let delay = delay.clone();
                    std::thread::spawn(move || pump(from, to, &delay));
                }
            }
        });
        Ok(Proxy { port, delay_ms })
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, delay_ms: &AtomicU64) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                let delay = delay_ms.load(Ordering::Relaxed);
                if delay > 0 {
                    std::thread::sleep(Duration::from_millis(delay));
                }
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

// ----------------------------------------------------------------------------- the app

/// The example binary, built once per run in the workspace's target directory.
pub fn build_example(ctx: &Context) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&ctx.workspace_root)
        .args(["build", "-q", "-p", "session-example"])
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return Err("cargo build -p session-example failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.workspace_root.join("target"));
    let built = target.join("debug").join("session-example");
    // A hard link of this build (no copy, no disk): another checkout sharing the target
    // directory may rebuild the binary while the run goes on.
    let own = Path::new(WORK_DIR).join("session-example");
    let _ = fs::create_dir_all(WORK_DIR);
    let _ = fs::remove_file(&own);
    Ok(if fs::hard_link(&built, &own).is_ok() {
        own
    } else {
        built
    })
}

/// A running example app; its output goes to `log`.
pub struct App {
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl App {
    pub fn start(
        binary: &Path,
        env: &[(&'static str, String)],
        log: PathBuf,
    ) -> Result<App, String> {
        let port = free_port()?;
        let out = fs::File::create(&log).map_err(|e| format!("cannot create the app log: {e}"))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env(
                "SESSION_STORE_TIMEOUT",
                STORE_TIMEOUT.as_secs_f64().to_string(),
            )
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let app = App { port, log, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if request(port, "GET", "/health", None, None, Duration::from_secs(2))
                .is_ok_and(|response| response.status == 200)
            {
                return Ok(app);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the example did not answer within 30 s; log:\n{}",
                    fs::read_to_string(&app.log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the app's log shows a panic.
    pub fn panicked(&self) -> bool {
        fs::read_to_string(&self.log).is_ok_and(|log| log.contains("panicked"))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------- HTTP client

/// What the app answered.
pub struct Response {
    pub status: u16,
    pub cookie: Option<String>,
    pub body: String,
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), bounded by
/// `timeout` as a whole. `cookie` is `name=value`; the answer's session cookie likewise.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)
        .map_err(|e| format!("connect: {e}"))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAccept: text/plain\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.map_or(0, str::len)
    );
    if let Some(cookie) = cookie {
        let _ = write!(head, "Cookie: {cookie}\r\n");
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or(""));
    stream
        .write_all(head.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timeout".into());
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => raw.extend_from_slice(&buffer[..read]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timeout".into())
            }
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP head")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or("no HTTP status")?;
    let cookie = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.trim().split(';').next().unwrap_or("").to_owned())
        .find(|pair| pair.starts_with("session="));
    Ok(Response {
        status,
        cookie,
        body: body.to_owned(),
    })
}

// ---------------------------------------------------------------------------------- load

/// The outcome of one request.
#[derive(Clone)]
pub struct Event {
    pub start: Instant,
    pub end: Instant,
    /// HTTP status, or `None` for a connection error or a response past the deadline.
    pub status: Option<u16>,
}

/// One logged-in session under load, shared by its client threads.
pub struct Session {
    pub cookie: Mutex<String>,
    pub attempted: AtomicU64,
    pub acknowledged: AtomicU64,
}

impl Session {
    fn cookie(&self) -> String {
        self.cookie.lock().unwrap().clone()
    }

    fn remember(&self, response: &Response) {
        if let Some(cookie) = &response.cookie {
            *self.cookie.lock().unwrap() = cookie.clone();
        }
    }
}

/// Logs in as `user`, retrying for a while (the store may be slow to answer first).
pub fn login(port: u16, user: &str) -> Result<Session, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let result = request(
            port,
            "POST",
            &format!("/login?user={user}"),
            None,
            None,
            STORE_TIMEOUT + MARGIN,
        );
        match result {
            Ok(response) if response.status == 200 => {
                let cookie = response.cookie.ok_or("login set no session cookie")?;
                return Ok(Session {
                    cookie: Mutex::new(cookie),
                    attempted: AtomicU64::new(0),
                    acknowledged: AtomicU64::new(0),
                });
            }
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(response) => return Err(format!("login answered {}", response.status)),
            Err(error) => return Err(format!("login failed: {error}")),
        }
    }
}

/// POST /counter once, counting it as attempted and, on 200, as acknowledged.
pub fn increment(port: u16, session: &Session) -> Event {
    let start = Instant::now();
    session.attempted.fetch_add(1, Ordering::SeqCst);
    let result = request(
        port,
        "POST",
        "/counter",
        Some(&session.cookie()),
        None,
        STORE_TIMEOUT + MARGIN,
    );
    let status = result.ok().map(|response| {
        session.remember(&response);
        if response.status == 200 {
            session.acknowledged.fetch_add(1, Ordering::SeqCst);
        }
        response.status
    });
    Event {
        start,
        end: Instant::now(),
        status,
    }
}

/// The session's stored counter, read with retries until the store answers.
pub fn final_counter(port: u16, session: &Session) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let result = request(
            port,
            "GET",
            "/",
            Some(&session.cookie()),
            None,
            STORE_TIMEOUT + MARGIN,
        );
        if let Ok(response) = &result {
            if response.status == 200 {
                return Ok(response
                    .body
                    .lines()
                    .find_map(|line| line.strip_prefix("counter="))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0));
            }
        }
        if Instant::now() > deadline {
            return Err("the counter could not be read within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Client threads incrementing the counters of `sessions` until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Event>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, sessions: &[Arc<Session>]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for session in sessions {
            for _ in 0..THREADS_PER_SESSION {
                let (stop, events, session) = (stop.clone(), events.clone(), session.clone());
                threads.push(std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let event = increment(port, &session);
                        let failed = event.status != Some(200);
                        events.lock().unwrap().push(event);
                        if failed {
                            // Do not spin on a store that is down.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }));
            }
        }
        Load {
            stop,
            events,
            threads,
        }
    }

    fn finish(self) -> Vec<Event> {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

// ---------------------------------------------------------------------------------- rows

struct Row {
    backend: Backend,
    fault: Fault,
    requests: usize,
    ok: usize,
    unavailable: usize,
    /// Other statuses, connection errors and hangs, described.
    other: Vec<String>,
    slowest: Duration,
    recovery: Option<Duration>,
    counters: Result<String, String>,
    panicked: bool,
}

impl Row {
    fn passed(&self) -> bool {
        self.other.is_empty()
            && self.slowest <= STORE_TIMEOUT + MARGIN
            && self.recovery.is_some_and(|r| r <= RECOVERY_TARGET)
            && self.counters.is_ok()
            && !self.panicked
    }
}

fn run_row(
    ctx: &Context,
    binary: &Path,
    root: &Path,
    backend: Backend,
    fault: Fault,
) -> Result<Row, String> {
    ctx.log(format!("faults: {} / {}", backend.name(), fault.describe()));
    let mut server = Server::start(ctx, backend, root)?;
    let proxy = Proxy::start(server.port)?;
    let store_port = if fault == Fault::Latency {
        proxy.port
    } else {
        server.port
    };
    let log = root.join(format!("app-{}-{fault:?}.log", backend.slug()));
    let app = App::start(binary, &backend.app_env(store_port), log)?;
    let sessions: Vec<Arc<Session>> = (0..SESSIONS)
        .map(|n| login(app.port, &format!("user{n}")).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let load = Load::start(app.port, &sessions);
    std::thread::sleep(Duration::from_secs(2));
    let back = match fault {
        Fault::Kill => {
            server.kill();
            std::thread::sleep(Duration::from_secs(3));
            server.spawn()?;
            Instant::now()
        }
        Fault::Stall => {
            server.signal("STOP");
            std::thread::sleep(Duration::from_secs(4));
            server.signal("CONT");
            Instant::now()
        }
        Fault::Latency => {
            proxy.delay_ms.store(300, Ordering::Relaxed);
            std::thread::sleep(Duration::from_secs(5));
            proxy.delay_ms.store(0, Ordering::Relaxed);
            Instant::now()
        }
    };
    std::thread::sleep(Duration::from_secs(5));
    let events = load.finish();

    let mut row = Row {
        backend,
        fault,
        requests: events.len(),
        ok: 0,
        unavailable: 0,
        other: Vec::new(),
        slowest: Duration::ZERO,
        recovery: None,
        counters: Ok(String::new()),
        panicked: false,
    };
    let mut others = std::collections::BTreeMap::<String, usize>::new();
    for event in &events {
        row.slowest = row.slowest.max(event.end - event.start);
        match event.status {
            Some(200) => row.ok += 1,
            Some(503) => row.unavailable += 1,
            Some(status) => *others.entry(status.to_string()).or_default() += 1,
            None => *others.entry("no answer".into()).or_default() += 1,
        }
    }
    row.other = others
        .into_iter()
        .map(|(what, count)| format!("{count}× {what}"))
        .collect();
    row.recovery = events
        .iter()
        .filter(|event| event.status == Some(200) && event.start >= back)
        .map(|event| event.end - back)
        .min();
    let (mut acknowledged, mut attempted, mut finals) = (0, 0, 0);
    let mut broken = Vec::new();
    for (n, session) in sessions.iter().enumerate() {
        let acked = session.acknowledged.load(Ordering::SeqCst);
        let tried = session.attempted.load(Ordering::SeqCst);
        let last = final_counter(app.port, session)?;
        (acknowledged, attempted, finals) =
            (acknowledged + acked, attempted + tried, finals + last);
        if !(acked <= last && last <= tried) {
            broken.push(format!("session {n}: {acked} ≤ {last} ≤ {tried} fails"));
        }
    }
    let summary = format!("{acknowledged} ≤ {finals} ≤ {attempted}");
    row.counters = if broken.is_empty() {
        Ok(summary)
    } else if !backend.durable() && fault == Fault::Kill {
        Ok(format!(
            "n/a: {} keeps nothing across a restart ({summary})",
            backend.name()
        ))
    } else {
        Err(format!("{summary}: {}", broken.join("; ")))
    };
    row.panicked = app.panicked();
    Ok(row)
}

fn table(rows: &[Row], commit: &str, date: &str, command: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Fault matrix\n");
    let _ = writeln!(
        out,
        "`{command}` at commit `{commit}`, {date}. The example app (axum) with \
         `SESSION_STORE_TIMEOUT={}`, {SESSIONS} sessions × {THREADS_PER_SESSION} client threads \
         incrementing counters (`POST /counter`); a hang is a response slower than the timeout \
         + {} s; recovery is the time from the server's return to the first 200 (target ≤ {} s); \
         counters are summed over the sessions: acknowledged ≤ final ≤ attempted.\n",
        STORE_TIMEOUT.as_secs(),
        MARGIN.as_secs(),
        RECOVERY_TARGET.as_secs()
    );
    let _ = writeln!(
        out,
        "| Backend | Fault | Requests | 200 | 503 | Other / no answer | Slowest (s) | Recovery (s) | Counters | Panic | Result |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let counters = match &row.counters {
            Ok(text) | Err(text) => text.clone(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} |",
            row.backend.name(),
            row.fault.describe(),
            row.requests,
            row.ok,
            row.unavailable,
            if row.other.is_empty() {
                "0".to_string()
            } else {
                row.other.join(", ")
            },
            row.slowest.as_secs_f64(),
            row.recovery
                .map_or("none".to_string(), |r| format!("{:.2}", r.as_secs_f64())),
            counters,
            if row.panicked { "yes" } else { "no" },
            if row.passed() { "pass" } else { "**FAIL**" }
        );
    }
    out
}

/// The commit and UTC date a result was produced at.
pub fn provenance(ctx: &Context) -> (String, String) {
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .current_dir(&ctx.workspace_root)
            .args(args)
            .output()
            .ok()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let mut commit = run("git", &["rev-parse", "--short", "HEAD"]);
    if !run("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        commit.push_str(" + uncommitted changes");
    }
    (commit, run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]))
}

/// Copies the result files of `faults` and `soak` (`reliability/results/`) into
/// `docs/reliability.md`, between its `<!-- results:NAME:begin -->` and `end` markers, so
/// the page's figures are the commands' own output.
pub fn publish(ctx: &Context) -> Result<(), String> {
    let page = ctx.workspace_root.join("docs/reliability.md");
    let mut text =
        fs::read_to_string(&page).map_err(|e| format!("cannot read {}: {e}", page.display()))?;
    for (name, file) in [("faults", "latest.md"), ("soak", "soak.md")] {
        let results = ctx.workspace_root.join("reliability/results").join(file);
        let Ok(results) = fs::read_to_string(&results) else {
            continue;
        };
        // The result file's own title is the page's section heading already.
        let body = results
            .split_once('\n')
            .filter(|(first, _)| first.starts_with("# "))
            .map_or(results.as_str(), |(_, rest)| rest)
            .trim();
        let (begin, end) = (
            format!("<!-- results:{name}:begin -->"),
            format!("<!-- results:{name}:end -->"),
        );
        let (Some(start), Some(stop)) = (text.find(&begin), text.find(&end)) else {
            return Err(format!(
                "{} has no {begin} ... {end} markers",
                page.display()
            ));
        };
        text = format!("{}{begin}\n{body}\n{}", &text[..start], &text[stop..]);
    }
    fs::write(&page, text).map_err(|e| format!("cannot write {}: {e}", page.display()))
}

/// A fresh work directory, private to these runs.
pub fn work_dir(name: &str) -> Result<PathBuf, String> {
    let dir = Path::new(WORK_DIR).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

pub fn command(ctx: &Context, args: &[String]) -> Result<ExitCode, String> {
    let quick = match args {
        [] => false,
        [flag] if flag == "--quick" => true,
        _ => return Err("usage: cargo xtask faults [--quick]".into()),
    };
    let started = Instant::now();
    // The commit of the code that runs, not of whatever is checked out at the end.
    let (commit, date) = provenance(ctx);
    let binary = build_example(ctx)?;
    let root = work_dir("faults")?;
    let (backends, faults): (&[Backend], &[Fault]) = if quick {
        (
            &[Backend::Redis, Backend::Postgres],
            &[Fault::Kill, Fault::Stall],
        )
    } else {
        (
            &[
                Backend::Redis,
                Backend::Postgres,
                Backend::Mariadb,
                Backend::Memcached,
                Backend::Mongodb,
                Backend::Dynamodb,
            ],
            &[Fault::Kill, Fault::Stall, Fault::Latency],
        )
    };
    let mut rows = Vec::new();
    for &backend in backends {
        for &fault in faults {
            let row = run_row(ctx, &binary, &root, backend, fault)?;
            ctx.log(format!(
                "faults: {} / {:?}: {} requests, {} × 200, {} × 503, other {:?}, recovery {:?}, {}",
                backend.name(),
                fault,
                row.requests,
                row.ok,
                row.unavailable,
                row.other,
                row.recovery,
                if row.passed() { "pass" } else { "FAIL" }
            ));
            rows.push(row);
        }
    }
    let command = if quick {
        "cargo xtask faults --quick"
    } else {
        "cargo xtask faults"
    };
    let mut text = table(&rows, &commit, &date, command);
    let _ = writeln!(
        text,
        "\nRun time: {:.0} s. Not in this matrix yet: Redis Cluster failover, Sentinel; packet \
         loss (`tc netem` in a network namespace).",
        started.elapsed().as_secs_f64()
    );
    // The quick run (CI) keeps its own file, so it never replaces the published matrix.
    let out = ctx.workspace_root.join(if quick {
        "reliability/results/quick.md"
    } else {
        "reliability/results/latest.md"
    });
    fs::create_dir_all(out.parent().unwrap()).map_err(|e| e.to_string())?;
    fs::write(&out, &text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    print!("{text}");
    if !quick {
        publish(ctx)?;
    }
    Ok(if rows.iter().all(Row::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
