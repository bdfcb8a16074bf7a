//! Helpers shared by the integration tests: the shared server from the environment, a raw
//! text-protocol client to look at what is stored, and private `memcached` processes the
//! tests can stop, freeze and restart.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use session_memcached::MemcachedStore;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const START_HINT: &str = "start it with `cargo xtask services up memcached`";

/// The shared server list: `MEMCACHED_SERVERS` or 127.0.0.1:11211.
pub fn shared_servers() -> String {
    std::env::var("MEMCACHED_SERVERS").unwrap_or_else(|_| "127.0.0.1:11211".to_owned())
}

/// A store on the shared servers, failing the test with instructions when they cannot be
/// reached.
pub async fn shared_store() -> MemcachedStore {
    let servers = shared_servers();
    match MemcachedStore::connect(&servers).await {
        Ok(store) => store,
        Err(error) if error.is_unavailable() => {
            panic!("memcached at {servers} is not reachable ({error}); {START_HINT}")
        }
        Err(error) => panic!("MEMCACHED_SERVERS={servers:?} is invalid: {error}"),
    }
}

/// A raw text-protocol connection, independent of the code under test.
pub struct Raw {
    io: BufReader<TcpStream>,
}

const RAW_TIMEOUT: Duration = Duration::from_secs(5);

impl Raw {
    pub async fn connect(address: &str) -> Raw {
        let stream = tokio::time::timeout(RAW_TIMEOUT, TcpStream::connect(address))
            .await
            .unwrap_or_else(|_| panic!("connecting to {address} timed out"))
            .unwrap_or_else(|error| panic!("memcached at {address}: {error}; {START_HINT}"));
        Raw {
            io: BufReader::new(stream),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.expect("send");
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(RAW_TIMEOUT, self.io.read_line(&mut line))
            .await
            .expect("reply in time")
            .expect("reply");
        assert!(line.ends_with("\r\n"), "truncated reply {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    async fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        tokio::time::timeout(RAW_TIMEOUT, self.io.read_exact(&mut bytes))
            .await
            .expect("data in time")
            .expect("data");
        bytes
    }

    /// `get <key>`: the flags and bytes, or `None`.
    pub async fn get(&mut self, key: &str) -> Option<(u32, Vec<u8>)> {
        self.send(format!("get {key}\r\n").as_bytes()).await;
        let header = self.line().await;
        if header == "END" {
            return None;
        }
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 4, "unexpected reply {header:?}");
        assert_eq!((parts[0], parts[1]), ("VALUE", key), "{header:?}");
        let flags = parts[2].parse().expect("flags");
        let size = parts[3].parse().expect("size");
        let value = self.exact(size).await;
        assert_eq!(self.line().await, "", "value not followed by \\r\\n");
        assert_eq!(self.line().await, "END");
        Some((flags, value))
    }

    /// The remaining TTL in seconds (meta get `t`): `None` on a miss, `Some(-1)` for
    /// items that never expire.
    pub async fn ttl(&mut self, key: &str) -> Option<i64> {
        self.send(format!("mg {key} t\r\n").as_bytes()).await;
        let reply = self.line().await;
        if reply == "EN" {
            return None;
        }
        let ttl = reply
            .strip_prefix("HD t")
            .unwrap_or_else(|| panic!("unexpected reply {reply:?}"));
        Some(ttl.parse().expect("ttl"))
    }

    /// `set <key> <flags> <exptime>`, as another client (Flask-Session) would write it.
    pub async fn set(&mut self, key: &str, flags: u32, exptime: u64, value: &[u8]) {
        let mut command = format!("set {key} {flags} {exptime} {}\r\n", value.len()).into_bytes();
        command.extend_from_slice(value);
        command.extend_from_slice(b"\r\n");
        self.send(&command).await;
        assert_eq!(self.line().await, "STORED");
    }

    /// `stats`, as a map.
    pub async fn stats(&mut self) -> HashMap<String, String> {
        self.send(b"stats\r\n").await;
        let mut stats = HashMap::new();
        loop {
            let line = self.line().await;
            if line == "END" {
                return stats;
            }
            let mut parts = line.splitn(3, ' ');
            assert_eq!(parts.next(), Some("STAT"), "{line:?}");
            let name = parts.next().expect("name").to_owned();
            stats.insert(name, parts.next().unwrap_or_default().to_owned());
        }
    }

    pub async fn version(&mut self) -> String {
        self.send(b"version\r\n").await;
        self.line().await
    }
}

/// A port nothing listens on at the moment of the call.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A `memcached` child process on a port of its own.
pub struct PrivateMemcached {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|meta| meta.uid() == 0)
        .unwrap_or(false)
}

impl PrivateMemcached {
    /// Starts `memcached` (TCP only, on 127.0.0.1) on a free port with `args` added, and
    /// waits until it answers `version`.
    pub async fn start(args: &[&str]) -> PrivateMemcached {
        let mut server = PrivateMemcached {
            port: free_port(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        let program = std::env::var("MEMCACHED_BIN").unwrap_or_else(|_| "memcached".to_owned());
        let mut command = Command::new(&program);
        command
            .args(["-l", "127.0.0.1", "-U", "0", "-m", "64", "-p"])
            .arg(self.port.to_string())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if running_as_root() {
            // memcached refuses to run as root unless told which user to become.
            let user = if std::fs::read_to_string("/etc/passwd")
                .unwrap_or_default()
                .lines()
                .any(|line| line.starts_with("memcache:"))
            {
                "memcache"
            } else {
                "nobody"
            };
            command.args(["-u", user]);
        }
        let mut child = command.spawn().unwrap_or_else(|error| {
            panic!(
                "cannot run `{program}` ({error}): this test starts its own memcached to stop \
                 and restart it. `cargo xtask services up memcached` installs it natively; with \
                 Docker services, install the binary on the host (apt-get install memcached, \
                 brew install memcached) or point MEMCACHED_BIN at one"
            )
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("memcached on port {} exited at start: {status}", self.port);
            }
            if let Ok(Ok(stream)) = tokio::time::timeout(
                Duration::from_millis(500),
                TcpStream::connect(self.address()),
            )
            .await
            {
                let mut raw = Raw {
                    io: BufReader::new(stream),
                };
                if raw.version().await.starts_with("VERSION") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "memcached on port {} did not answer within 10 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().await.expect("kill memcached");
    }

    /// Sends a signal (`STOP`, `CONT`) to the server process.
    pub fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("the server is running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
        if signal == "STOP" {
            // `kill` returns once the signal is queued; a busy machine may let a worker
            // thread answer one more command before the group stop reaches it. Wait until
            // the kernel reports every thread stopped.
            wait_until_stopped(pid);
        }
    }

    pub async fn raw(&self) -> Raw {
        Raw::connect(&self.address()).await
    }
}

impl Drop for PrivateMemcached {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // SIGKILL also ends a server frozen with SIGSTOP.
            let _ = child.start_kill();
        }
    }
}

/// Blocks until every thread of process `pid` is in the stopped state (`T` in
/// `/proc/PID/task/*/stat`), or panics after 10 s.
fn wait_until_stopped(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("reading /proc");
        let all_stopped = tasks.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .ok()
                // The state follows the parenthesised command name.
                .and_then(|stat| {
                    stat.rsplit_once(") ")
                        .map(|(_, rest)| rest.starts_with('T'))
                })
                .unwrap_or(true) // a thread that has exited holds nothing up
        });
        if all_stopped {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "memcached {pid} did not stop within 10 s of SIGSTOP"
        );
        std::thread::yield_now();
    }
}

/// A key unique to this test run.
pub fn unique_key(name: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("test:{name}:{}:{nanos}:{n}", std::process::id())
}
