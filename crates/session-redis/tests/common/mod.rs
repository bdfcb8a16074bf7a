//! Helpers shared by the integration tests: connecting to the servers from the
//! environment, and running a private `redis-server` the test can stop and restart.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use session_redis::RedisStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Connects to the server named by environment variable `var` (or `default`), failing
/// the test with instructions when it cannot be reached. `service` is the xtask name of
/// the deployment (`redis`, `redis-cluster`, `redis-sentinel`).
pub async fn connect(var: &str, default: &str, service: &str) -> RedisStore {
    let url = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    match RedisStore::connect(&url).await {
        Ok(store) => store,
        Err(error) => panic!(
            "cannot connect to Redis at {url} ({var}): {error}; \
             run `cargo xtask services up {service}` to start it"
        ),
    }
}

/// A port nothing listens on at the moment of the call.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A `redis-server` child process on a port of its own, without persistence.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// More `redis-server` options, given at every start.
    options: Vec<String>,
}

impl PrivateRedis {
    /// Starts a server on a free port and waits until it answers PING.
    pub async fn start() -> PrivateRedis {
        PrivateRedis::start_with(&[]).await
    }

    /// [`start`](Self::start) with more `redis-server` options (kept for restarts).
    pub async fn start_with(options: &[&str]) -> PrivateRedis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("session-redis-test-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let mut server = PrivateRedis {
            port,
            dir,
            child: None,
            options: options.iter().map(|option| option.to_string()).collect(),
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.options)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run redis-server ({error}): this test starts its own server to stop \
                     and restart it. `cargo xtask services up redis` installs it natively; with \
                     Docker services, install the binary on the host (apt-get install \
                     redis-server, brew install redis)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(self.port).await {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server and waits until the process is gone.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("server running");
        child.kill().await.expect("kill redis-server");
        assert!(!ping(self.port).await, "server still answers after kill");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a Redis server answers PING on `port`.
pub async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(true))
    )
}
