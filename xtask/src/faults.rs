//! `cargo xtask faults`: the example app under load while its store fails.
//!
//! Every row starts a private server (its own data directory and free port under
//! `/var/tmp/sessions-faults`, never the shared services other work uses): Redis,
//! PostgreSQL, MariaDB, memcached, or the MongoDB (mongoeco) and DynamoDB (moto) emulators
//! in their venvs, or a replicated Redis: a Cluster of 3 masters and 3 replicas, or a
//! master and a replica watched by 3 sentinels. Then the example app on it with a short
//! `SESSION_STORE_TIMEOUT`, and concurrent clients that log in and increment counters. Then
//! one fault: the server is killed (`kill -9` of its process group) and restarted, stalled
//! (`SIGSTOP`, then `SIGCONT`), slowed (a proxy in this process adds a delay to every chunk
//! it forwards), or reached over a lossy link (a relay in a network namespace whose
//! nftables rules drop packets at random, [`crate::netns`]); a replicated Redis loses a
//! master to `kill -9` for good and fails over. The row passes when every response is 200
//! or 503 within the timeout plus a margin, the first 200 comes within 2 s of the server's
//! return (after a failover: every session has its 200s back within 2 s of a replica
//! reporting itself master, and in a Cluster the sessions on the other masters see no
//! error at all), no counter lost an acknowledged increment (acknowledged <=
//! final <= attempted; after a kill only on a server that keeps its data, see
//! `Backend::durable`), and the app's log holds no panic. The table goes to
//! `reliability/results/latest.md`; the exit status is non-zero when a row fails.
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
use crate::netns::LossyLink;
use crate::probe;
use crate::process::find_program;
use crate::redis_topology;
use crate::venv::{self, VenvSpec};

/// `SESSION_STORE_TIMEOUT` of the app under test: short, so a row takes seconds.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// What a response may take beyond the store timeout before it counts as a hang.
pub const MARGIN: Duration = Duration::from_secs(3);
/// The first 200 must come this soon after the server is back.
const RECOVERY_TARGET: Duration = Duration::from_secs(2);
/// Redis Cluster's `cluster-node-timeout` in the failover row: a master that has not
/// answered its peers for this long is failed, and its replica takes over.
const CLUSTER_NODE_TIMEOUT: Duration = Duration::from_millis(2000);
/// The Sentinel row's `down-after-milliseconds` and `failover-timeout`, and the name the
/// sentinels know the master by.
const SENTINEL_DOWN_AFTER: Duration = Duration::from_millis(1000);
const SENTINEL_FAILOVER_TIMEOUT: Duration = Duration::from_millis(3000);
const SENTINEL_NAME: &str = "faults";
/// The share of packets the loss rows drop, in each direction (see [`Fault::describe`]).
const LOSS_PERCENT: u32 = 10;
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
    /// Redis Cluster: 3 masters with one replica each.
    RedisCluster,
    /// A Redis master and one replica, watched by 3 sentinels (quorum 2).
    RedisSentinel,
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
            Backend::RedisCluster => "Redis Cluster (3 masters + 3 replicas)",
            Backend::RedisSentinel => "Redis Sentinel (master + replica, 3 sentinels)",
        }
    }

    /// Every backend, in the order of the matrix.
    const ALL: [Backend; 8] = [
        Backend::Redis,
        Backend::Postgres,
        Backend::Mariadb,
        Backend::Memcached,
        Backend::Mongodb,
        Backend::Dynamodb,
        Backend::RedisCluster,
        Backend::RedisSentinel,
    ];

    /// The faults of the full matrix: a replicated backend loses its master for good, the
    /// others lose, stall or slow down their one server.
    fn faults(self) -> &'static [Fault] {
        match self {
            Backend::Redis
            | Backend::Postgres
            | Backend::Mariadb
            | Backend::Memcached
            | Backend::Mongodb
            | Backend::Dynamodb => &[Fault::Kill, Fault::Stall, Fault::Latency, Fault::Loss],
            Backend::RedisCluster | Backend::RedisSentinel => &[Fault::Failover],
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
            Backend::RedisCluster => probe::redis_cluster_ok(port),
            Backend::RedisSentinel => probe::sentinel_master_address(port, SENTINEL_NAME).is_some(),
        }
    }

    /// The example's environment for a server (or proxy) on `ports[0]`; a Cluster's other
    /// nodes, or the other sentinels, on the rest of `ports` (see [`Server::app_ports`]).
    pub fn app_env(self, ports: &[u16]) -> Vec<(&'static str, String)> {
        self.app_env_at("127.0.0.1", ports)
    }

    /// [`Backend::app_env`] for a server (or relay) listening on `host` rather than on
    /// loopback.
    pub fn app_env_at(self, host: &str, ports: &[u16]) -> Vec<(&'static str, String)> {
        let (port, more) = ports.split_first().expect("at least one port");
        let nodes: String = more
            .iter()
            .map(|port| format!("&node={host}:{port}"))
            .collect();
        match self {
            Backend::Redis => vec![
                ("SESSION_TYPE", "redis".into()),
                ("SESSION_REDIS_URL", format!("redis://{host}:{port}")),
            ],
            Backend::Postgres => vec![
                ("SESSION_TYPE", "sqlalchemy".into()),
                (
                    "SESSION_SQL_URL",
                    format!("postgres://sessions@{host}:{port}/postgres"),
                ),
            ],
            Backend::Mariadb => vec![
                ("SESSION_TYPE", "sqlalchemy".into()),
                (
                    "SESSION_SQL_URL",
                    format!("mysql://sessions@{host}:{port}/sessions"),
                ),
            ],
            Backend::Memcached => vec![
                ("SESSION_TYPE", "memcached".into()),
                ("SESSION_MEMCACHED_SERVERS", format!("{host}:{port}")),
            ],
            Backend::Mongodb => vec![
                ("SESSION_TYPE", "mongodb".into()),
                (
                    "SESSION_MONGODB_URL",
                    format!("mongodb://{host}:{port}/?directConnection=true"),
                ),
            ],
            // The emulator checks no signature; dummy credentials as `services env` gives.
            Backend::Dynamodb => vec![
                ("SESSION_TYPE", "dynamodb".into()),
                ("SESSION_DYNAMODB_ENDPOINT", format!("http://{host}:{port}")),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_ACCESS_KEY_ID", "dummy".into()),
                ("AWS_SECRET_ACCESS_KEY", "dummy".into()),
            ],
            Backend::RedisCluster => vec![
                ("SESSION_TYPE", "redis".into()),
                (
                    "SESSION_REDIS_URL",
                    format!(
                        "redis-cluster://{host}:{port}?{}",
                        nodes.trim_start_matches('&')
                    ),
                ),
            ],
            Backend::RedisSentinel => vec![
                ("SESSION_TYPE", "redis".into()),
                (
                    "SESSION_REDIS_URL",
                    format!(
                        "redis-sentinel://{host}:{port}?sentinelServiceName={SENTINEL_NAME}{nodes}"
                    ),
                ),
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill,
    Stall,
    Latency,
    /// [`LOSS_PERCENT`] of the packets between the app and the server dropped, each way
    /// ([`crate::netns`]).
    Loss,
    /// `kill -9` of a master of a replicated backend, not restarted: a replica takes over.
    Failover,
}

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::Kill,
        Fault::Stall,
        Fault::Latency,
        Fault::Loss,
        Fault::Failover,
    ];

    /// The fault's word for `--only`.
    fn slug(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stall => "stall",
            Fault::Latency => "latency",
            Fault::Loss => "loss",
            Fault::Failover => "failover",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9, restart after 3 s",
            Fault::Stall => "SIGSTOP 4 s, SIGCONT",
            Fault::Latency => "+300 ms per chunk, 5 s",
            Fault::Loss => "10 % of packets dropped each way, 5 s",
            Fault::Failover => "kill -9 of a master, no restart",
        }
    }
}

// ------------------------------------------------------------------------------ servers

/// A server of `backend` in a directory of its own, in a process group of its own so that
/// a signal reaches every process of it (PostgreSQL's backends too). A replicated backend
/// is a group of `redis-server` processes ([`Node`]s), each in its own process group.
pub struct Server {
    pub backend: Backend,
    /// The server's port; a Cluster's first node, the Sentinel row's first sentinel.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// The venv's python of an emulated server, and the launcher it runs.
    emulator: Option<(PathBuf, PathBuf)>,
    /// The processes of a replicated backend; empty for the others.
    nodes: Vec<Node>,
    /// The ports the app is given ([`Backend::app_env`]) when it is more than `port`.
    app_ports: Vec<u16>,
}

/// One process of a replicated backend: a Cluster node, the Sentinel row's master, replica
/// or one of its sentinels.
struct Node {
    port: u16,
    child: Option<Child>,
}

impl Node {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, "KILL");
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to the process group led by `child`.
fn signal_group(child: &Child, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{}", child.id()))
        .stderr(Stdio::null())
        .status();
}

/// Starts `command` in a process group of its own, its output appended to `log`.
fn launch(mut command: Command, log: &Path) -> Result<Child, String> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot share the server log: {e}"))?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    command
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))
}

/// Waits up to 30 s for `ready`.
fn wait_for(what: &str, log: &Path, ready: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if Instant::now() > deadline {
            return Err(format!(
                "{what} not ready within 30 s (log {})",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `redis-server` on `port` with its data in `dir`: an append-only file fsync'd on every
/// write, so that what a server acknowledged survives a `kill -9` of it.
fn redis_server(port: u16, dir: &Path) -> Command {
    let mut command = Command::new("redis-server");
    command.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
    ]);
    command.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"]);
    command.arg(dir);
    command
}

/// The role line and replication link of `INFO replication`: `true` for a master with
/// `replicas` connected replicas, or a replica whose link to its master is up.
fn replication_ok(port: u16, replicas: usize) -> bool {
    let Some(info) = probe::redis_command(port, &["INFO", "replication"])
        .ok()
        .and_then(|reply| reply.text())
    else {
        return false;
    };
    match probe::info_field(&info, "role").as_deref() {
        Some("master") => {
            probe::info_field(&info, "connected_slaves").as_deref()
                == Some(replicas.to_string().as_str())
        }
        Some("slave") => probe::info_field(&info, "master_link_status").as_deref() == Some("up"),
        _ => false,
    }
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
            nodes: Vec::new(),
            app_ports: Vec::new(),
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts the server process and waits until it answers; a replicated backend's
    /// processes, and waits until its replicas are in sync.
    pub fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let command = match self.backend {
            Backend::Redis => redis_server(self.port, &self.dir),
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
            Backend::RedisCluster => return self.spawn_cluster(),
            Backend::RedisSentinel => return self.spawn_sentinel(),
        };
        let log = self.dir.with_extension("log");
        self.child = Some(launch(command, &log)?);
        let (backend, port) = (self.backend, self.port);
        wait_for(&format!("{} on port {port}", backend.name()), &log, || {
            backend.answers(port)
        })
    }

    /// Starts one more process of a replicated backend, on `port`, logging to
    /// `NAME-PORT.log` in the server's directory, and waits for `ready`.
    fn spawn_node(
        &mut self,
        what: &str,
        port: u16,
        command: Command,
        ready: impl Fn() -> bool,
    ) -> Result<(), String> {
        let log = self.dir.join(format!("{what}-{port}.log"));
        let child = launch(command, &log)?;
        self.nodes.push(Node {
            port,
            child: Some(child),
        });
        wait_for(&format!("{what} on port {port}"), &log, ready)
    }

    /// Six cluster nodes (the first on `port`), made a cluster of 3 masters with one
    /// replica each by `redis-cli --cluster create`; ready when every node sees all slots
    /// served and every replica is in sync.
    fn spawn_cluster(&mut self) -> Result<(), String> {
        let mut ports = vec![self.port];
        ports.extend(free_ports(11)?);
        // The bus ports are given, not left at port + 10000, which may be past 65535.
        let (ports, bus_ports) = (ports[..6].to_vec(), ports[6..].to_vec());
        for (&port, &bus) in ports.iter().zip(&bus_ports) {
            let dir = self.dir.join(format!("node-{port}"));
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let mut command = redis_server(port, &dir);
            command.args(redis_topology::cluster_node_args(CLUSTER_NODE_TIMEOUT));
            command.args(["--cluster-port", &bus.to_string()]);
            self.spawn_node("node", port, command, || probe::redis_ping(port))?;
        }
        let output = crate::process::run(
            "redis-cli --cluster create",
            &mut redis_topology::cluster_create(&ports, 1)?,
        )?;
        let _ = fs::write(self.dir.join("cluster-create.log"), output);
        wait_for(
            "the cluster (all slots served, replicas in sync)",
            &self.dir,
            || redis_topology::cluster_ready(&ports) && ports.iter().all(|&p| replication_ok(p, 1)),
        )?;
        self.app_ports = ports;
        Ok(())
    }

    /// A master and its replica, then 3 sentinels (the first on `port`) watching the
    /// master as [`SENTINEL_NAME`] with quorum 2; ready when every sentinel reaches the
    /// master and knows the replica and the other two sentinels.
    fn spawn_sentinel(&mut self) -> Result<(), String> {
        let ports = free_ports(4)?;
        let (master, replica) = (ports[0], ports[1]);
        let sentinels = [self.port, ports[2], ports[3]];
        for (port, role) in [(master, "master"), (replica, "replica")] {
            let dir = self.dir.join(format!("{role}-{port}"));
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let mut command = redis_server(port, &dir);
            if port == replica {
                command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
            }
            self.spawn_node(role, port, command, || probe::redis_ping(port))?;
        }
        wait_for("the replica (in sync)", &self.dir, || {
            replication_ok(master, 1) && replication_ok(replica, 1)
        })?;
        for port in sentinels {
            let dir = self.dir.join(format!("sentinel-{port}"));
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let config = dir.join("sentinel.conf");
            let text = redis_topology::Sentinel {
                port,
                dir: &dir,
                name: SENTINEL_NAME,
                master_port: master,
                quorum: 2,
                down_after: SENTINEL_DOWN_AFTER,
                failover_timeout: SENTINEL_FAILOVER_TIMEOUT,
            }
            .config();
            fs::write(&config, text)
                .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
            let mut command = Command::new("redis-server");
            command.arg(&config).arg("--sentinel");
            self.spawn_node("sentinel", port, command, || {
                probe::sentinel_watches(port, SENTINEL_NAME, master)
            })?;
        }
        let field = |port, name| probe::sentinel_master_field(port, SENTINEL_NAME, name);
        wait_for(
            "the sentinels (each knowing the replica and the others)",
            &self.dir,
            || {
                sentinels.iter().all(|&port| {
                    field(port, "num-slaves").as_deref() == Some("1")
                        && field(port, "num-other-sentinels").as_deref() == Some("2")
                })
            },
        )?;
        self.app_ports = sentinels.to_vec();
        Ok(())
    }

    /// The ports the app is given: the server's, or a Cluster's nodes, or the sentinels.
    pub fn app_ports(&self) -> Vec<u16> {
        if self.app_ports.is_empty() {
            vec![self.port]
        } else {
            self.app_ports.clone()
        }
    }

    /// The master a failover row kills, and for each of `keys` (the sessions' store keys)
    /// whether it lives on that master. In a Cluster, the master holding most of the keys.
    fn master_to_kill(&self, keys: &[String]) -> Result<(u16, Vec<bool>), String> {
        match self.backend {
            Backend::RedisCluster => {
                let masters = cluster_masters(self.port)?;
                let mut holders = Vec::new();
                for key in keys {
                    let slot = match probe::redis_command(self.port, &["CLUSTER", "KEYSLOT", key]) {
                        Ok(probe::Resp::Integer(slot)) => slot,
                        other => return Err(format!("CLUSTER KEYSLOT {key}: {other:?}")),
                    };
                    let (port, _) = masters
                        .iter()
                        .find(|(_, slots)| slots.iter().any(|range| range.contains(&slot)))
                        .ok_or_else(|| format!("no master serves slot {slot}"))?;
                    // The key must be there, or the session is not where it is counted.
                    if probe::redis_command(*port, &["EXISTS", key]).ok()
                        != Some(probe::Resp::Integer(1))
                    {
                        return Err(format!("{key} is not on the master serving its slot"));
                    }
                    holders.push(*port);
                }
                let busiest = masters
                    .iter()
                    .map(|(port, _)| *port)
                    .max_by_key(|port| holders.iter().filter(|&h| h == port).count())
                    .ok_or("the cluster has no master")?;
                Ok((busiest, holders.iter().map(|&h| h == busiest).collect()))
            }
            Backend::RedisSentinel => {
                let (_, port) = probe::sentinel_master_address(self.port, SENTINEL_NAME)
                    .ok_or("the sentinel names no master")?;
                Ok((port, vec![true; keys.len()]))
            }
            _ => Err(format!(
                "{} has no replica to fail over to",
                self.backend.name()
            )),
        }
    }

    /// The nodes that replicate a master now (`ROLE` says `slave`).
    fn replica_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .map(|node| node.port)
            .filter(|&port| {
                matches!(
                    probe::redis_command(port, &["ROLE"]),
                    Ok(probe::Resp::Array(Some(role)))
                        if role.first().and_then(probe::Resp::text).as_deref() == Some("slave")
                )
            })
            .collect()
    }

    /// `kill -9` of the node on `port`, not restarted.
    fn kill_node(&mut self, port: u16) -> Result<(), String> {
        self.nodes
            .iter_mut()
            .find(|node| node.port == port)
            .ok_or_else(|| format!("no node of ours on port {port}"))?
            .kill();
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
        for child in self.nodes.iter().filter_map(|node| node.child.as_ref()) {
            signal_group(child, signal);
        }
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
        for node in &mut self.nodes {
            node.kill();
        }
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

/// `count` distinct free ports (held together while they are chosen).
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("no free port: {e}"))?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("no free port: {e}"))
}

type SlotRange = std::ops::RangeInclusive<i64>;

/// The masters of the cluster `port` belongs to, with the slot ranges each serves, from
/// `CLUSTER NODES` (`ID HOST:PORT@BUS FLAGS MASTER PING PONG EPOCH LINK SLOT...`).
fn cluster_masters(port: u16) -> Result<Vec<(u16, Vec<SlotRange>)>, String> {
    let text = probe::redis_command(port, &["CLUSTER", "NODES"])
        .ok()
        .and_then(|reply| reply.text())
        .ok_or("CLUSTER NODES gave no text")?;
    parse_cluster_nodes(&text)
}

/// Masters with their slot ranges, from the text of `CLUSTER NODES`.
fn parse_cluster_nodes(text: &str) -> Result<Vec<(u16, Vec<SlotRange>)>, String> {
    let mut masters = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 || !fields[2].split(',').any(|flag| flag == "master") {
            continue;
        }
        let node_port = fields[1]
            .split(['@', ','])
            .next()
            .and_then(|address| address.rsplit_once(':'))
            .and_then(|(_, port)| port.parse().ok())
            .ok_or_else(|| format!("CLUSTER NODES: no port in `{line}`"))?;
        // Slots being migrated (`[...]`) are not served by this node yet.
        let slots = fields[8..]
            .iter()
            .filter(|slot| !slot.starts_with('['))
            .filter_map(|slot| {
                let (low, high) = slot.split_once('-').unwrap_or((slot, slot));
                Some(low.parse().ok()?..=high.parse().ok()?)
            })
            .collect();
        masters.push((node_port, slots));
    }
    Ok(masters)
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
        Proxy::serve(listener, upstream)
    }

    /// Forwards every connection `listener` accepts to `127.0.0.1:upstream`.
    pub fn serve(listener: TcpListener, upstream: u16) -> Result<Proxy, String> {
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
    /// Each outcome with the index of its session in `sessions`.
    events: Arc<Mutex<Vec<(usize, Event)>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, sessions: &[Arc<Session>]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (n, session) in sessions.iter().enumerate() {
            for _ in 0..THREADS_PER_SESSION {
                let (stop, events, session) = (stop.clone(), events.clone(), session.clone());
                threads.push(std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let event = increment(port, &session);
                        let failed = event.status != Some(200);
                        events.lock().unwrap().push((n, event));
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

    fn finish(self) -> Vec<(usize, Event)> {
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
    /// What `recovery` must not exceed.
    target: Duration,
    counters: Result<String, String>,
    panicked: bool,
    /// What else the row saw, for the Fault column (a Cluster failover: which sessions
    /// lived on the killed master and the errors of each group).
    note: Option<String>,
    /// A Cluster failover: the errors of the sessions whose keys live on the other
    /// masters, which must see none.
    spared_errors: usize,
}

impl Row {
    /// The criteria the row misses; none when it passes.
    fn failures(&self) -> Vec<&'static str> {
        let mut failures = Vec::new();
        if !self.other.is_empty() {
            failures.push("answers other than 200/503");
        }
        if self.slowest > STORE_TIMEOUT + MARGIN {
            failures.push("hang");
        }
        if self.recovery.is_none_or(|r| r > self.target) {
            failures.push("recovery");
        }
        if self.counters.is_err() {
            failures.push("counters");
        }
        if self.panicked {
            failures.push("panic");
        }
        if self.spared_errors > 0 {
            failures.push("errors outside the lost master's slots");
        }
        failures
    }

    fn passed(&self) -> bool {
        self.failures().is_empty()
    }
}

/// The store key of the session whose cookie is `session=ID` (the example's defaults:
/// prefix `session:`, ids not hashed; [`Server::master_to_kill`] checks the key exists).
fn store_key(session: &Session) -> String {
    let cookie = session.cookie();
    format!(
        "session:{}",
        cookie.strip_prefix("session=").unwrap_or(&cookie)
    )
}

/// Polls `ports` (the replicas, once their master is killed) for the first to report
/// itself master (`ROLE`), for at most `limit`: the moment the deployment can serve again.
fn watch_promotion(ports: Vec<u16>, limit: Duration) -> std::thread::JoinHandle<Option<Instant>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < limit {
            for &port in &ports {
                if let Ok(probe::Resp::Array(Some(role))) = probe::redis_command(port, &["ROLE"]) {
                    if role.first().and_then(probe::Resp::text).as_deref() == Some("master") {
                        return Some(Instant::now());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    })
}

/// The time from `from` until every session has a 200 again after its last failure that
/// ended after `from` (a session without such a failure: its first 200 ending after
/// `from`); `None` when a session has none.
fn recovery_of_every_session(
    events: &[(usize, Event)],
    sessions: usize,
    from: Instant,
) -> Option<Duration> {
    let mut slowest = Duration::ZERO;
    for n in 0..sessions {
        let mine = || events.iter().filter(move |(s, _)| *s == n).map(|(_, e)| e);
        let last_failure = mine()
            .filter(|event| event.status != Some(200) && event.end >= from)
            .map(|event| event.end)
            .max()
            .unwrap_or(from);
        let back = mine()
            .filter(|event| event.status == Some(200) && event.end > last_failure)
            .map(|event| event.end)
            .min()?;
        slowest = slowest.max(back - from);
    }
    Some(slowest)
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
    // The loss rows reach the server through a relay in a network namespace of their own.
    let lossy = match fault {
        Fault::Loss => {
            let link = LossyLink::create(ctx)?;
            let relay = Proxy::serve(link.listen()?, server.port)?;
            Some((link, relay))
        }
        _ => None,
    };
    let env = match (&lossy, fault) {
        (Some((link, relay)), _) => backend.app_env_at(&link.address(), &[relay.port]),
        (None, Fault::Latency) => backend.app_env(&[proxy.port]),
        (None, _) => backend.app_env(&server.app_ports()),
    };
    let log = root.join(format!("app-{}-{fault:?}.log", backend.slug()));
    let app = App::start(binary, &env, log)?;
    let sessions: Vec<Arc<Session>> = (0..SESSIONS)
        .map(|n| login(app.port, &format!("user{n}")).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let load = Load::start(app.port, &sessions);
    std::thread::sleep(Duration::from_secs(2));
    // For a failover, which sessions lived on the killed master, and when a replica took
    // over.
    let mut on_victim = None;
    let mut promotion = None;
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
        Fault::Loss => {
            let (link, _) = lossy.as_ref().expect("the loss row has its link");
            link.set_loss(LOSS_PERCENT)?;
            std::thread::sleep(Duration::from_secs(5));
            link.set_loss(0)?;
            Instant::now()
        }
        // Recovery counts from the kill: nothing comes back, a replica takes over.
        Fault::Failover => {
            let keys: Vec<String> = sessions.iter().map(|s| store_key(s)).collect();
            let (victim, holds) = server.master_to_kill(&keys)?;
            let replicas = server.replica_ports();
            server.kill_node(victim)?;
            let killed = Instant::now();
            promotion = Some(watch_promotion(replicas, Duration::from_secs(15)));
            ctx.log(format!("faults: killed the master on port {victim}"));
            on_victim = Some(holds);
            std::thread::sleep(Duration::from_secs(10));
            killed
        }
    };
    std::thread::sleep(Duration::from_secs(5));
    let events = load.finish();

    // After a failover, the server is back when a replica reports itself master.
    let promoted = promotion
        .and_then(|watch| watch.join().ok().flatten())
        .map(|at| at.saturating_duration_since(back));
    let target = match (fault, promoted) {
        (Fault::Failover, Some(promoted)) => promoted + RECOVERY_TARGET,
        (Fault::Failover, None) => Duration::ZERO,
        _ => RECOVERY_TARGET,
    };
    let mut row = Row {
        backend,
        fault,
        requests: events.len(),
        ok: 0,
        unavailable: 0,
        other: Vec::new(),
        slowest: Duration::ZERO,
        recovery: None,
        target,
        counters: Ok(String::new()),
        panicked: false,
        note: promoted.map(|p| format!("replica promoted {:.2} s after the kill", p.as_secs_f64())),
        spared_errors: 0,
    };
    let mut others = std::collections::BTreeMap::<String, usize>::new();
    let mut errors = [0usize; SESSIONS];
    for (n, event) in &events {
        row.slowest = row.slowest.max(event.end - event.start);
        match event.status {
            Some(200) => row.ok += 1,
            Some(503) => row.unavailable += 1,
            Some(status) => *others.entry(status.to_string()).or_default() += 1,
            None => *others.entry("no answer".into()).or_default() += 1,
        }
        if event.status != Some(200) {
            errors[*n] += 1;
        }
    }
    row.other = others
        .into_iter()
        .map(|(what, count)| format!("{count}× {what}"))
        .collect();
    row.recovery = if fault == Fault::Failover {
        recovery_of_every_session(&events, sessions.len(), back)
    } else {
        events
            .iter()
            .map(|(_, event)| event)
            .filter(|event| event.status == Some(200) && event.start >= back)
            .map(|event| event.end - back)
            .min()
    };
    if let Some(holds) = on_victim.filter(|holds| holds.contains(&false)) {
        let group = |on: bool| {
            let members: Vec<usize> = (0..SESSIONS).filter(|&n| holds[n] == on).collect();
            let failed: usize = members.iter().map(|&n| errors[n]).sum();
            (members.len(), failed)
        };
        let ((hit, hit_errors), (spared, spared_errors)) = (group(true), group(false));
        row.spared_errors = spared_errors;
        let groups = format!(
            "{hit} of {SESSIONS} sessions in its slots: {hit_errors} errors; the other {spared}: \
             {spared_errors} errors"
        );
        row.note = Some(match row.note.take() {
            Some(promoted) => format!("{promoted}; {groups}"),
            None => groups,
        });
    }
    let (mut acknowledged, mut attempted, mut finals, mut lost) = (0, 0, 0, 0);
    let mut broken = Vec::new();
    // More than attempted would be an increment applied twice: a failure in every row.
    let mut over_attempted = false;
    for (n, session) in sessions.iter().enumerate() {
        let acked = session.acknowledged.load(Ordering::SeqCst);
        let tried = session.attempted.load(Ordering::SeqCst);
        let last = final_counter(app.port, session)?;
        (acknowledged, attempted, finals) =
            (acknowledged + acked, attempted + tried, finals + last);
        lost += acked.saturating_sub(last);
        over_attempted |= last > tried;
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
    } else if fault == Fault::Failover && !over_attempted {
        // Redis acknowledges a write before its replica has it: the increments in flight
        // to the replica when the master died are gone after the promotion. Measured and
        // shown; the row's criteria are the errors' scope and the recovery.
        Ok(format!(
            "{summary}: {lost} acknowledged increments lost with the master (asynchronous \
             replication)"
        ))
    } else if lost > 0 {
        Err(format!(
            "{summary}: {lost} acknowledged increments lost ({})",
            broken.join("; ")
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
         + {} s; recovery is the time from the server's return to the first 200 (target ≤ {} s), \
         and after a failover the time from the kill until every session has a 200 again after \
         its last error, where the server is back when a replica reports itself master (`ROLE`, \
         polled every 10 ms; node timeout {} s, down-after {} s), so the target is that moment \
         + {} s; in a Cluster the sessions on the other masters must see no error; counters are \
         summed over the sessions: acknowledged ≤ final ≤ attempted, except that a failover may \
         lose the acknowledged increments its replica had not received yet (Redis replicates \
         asynchronously): shown, not a criterion of those rows.\n",
        STORE_TIMEOUT.as_secs(),
        MARGIN.as_secs(),
        RECOVERY_TARGET.as_secs(),
        CLUSTER_NODE_TIMEOUT.as_secs_f64(),
        SENTINEL_DOWN_AFTER.as_secs_f64(),
        RECOVERY_TARGET.as_secs(),
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
        let failures = row.failures();
        let _ = writeln!(
            out,
            "| {} | {}{} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} |",
            row.backend.name(),
            row.fault.describe(),
            row.note
                .as_ref()
                .map_or(String::new(), |note| format!(" ({note})")),
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
            if failures.is_empty() {
                "pass".to_string()
            } else {
                format!("**FAIL**: {}", failures.join(", "))
            }
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
    // Pages and result files that the measuring commands write themselves (fuzz, faults,
    // soak, bench run one after another), and Markdown anywhere (READMEs, changelogs), are
    // not changes to what was measured.
    let status = run(
        "git",
        &[
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude)docs",
            ":(exclude)reliability/results",
            ":(exclude)fuzz/results",
            ":(exclude)bench/results",
            ":(exclude,glob)**/*.md",
        ],
    );
    if !status.is_empty() {
        commit.push_str(" + uncommitted changes");
    }
    (commit, run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]))
}

/// Copies the result files of `faults` and `soak` (`reliability/results/`) into
/// `docs/reliability.md`, between its `<!-- results:NAME:begin -->` and `end` markers, so
/// the page's figures are the commands' own output.
pub fn publish(ctx: &Context) -> Result<(), String> {
    // A results file not written yet leaves its section as it is.
    let tables: Vec<(&str, String)> = [("faults", "latest.md"), ("soak", "soak.md")]
        .into_iter()
        .filter_map(|(name, file)| {
            let results = ctx.workspace_root.join("reliability/results").join(file);
            fs::read_to_string(results).ok().map(|text| (name, text))
        })
        .collect();
    let tables: Vec<(&str, &str)> = tables.iter().map(|(n, t)| (*n, t.as_str())).collect();
    crate::docs::publish_results(&ctx.workspace_root.join("docs/reliability.md"), &tables)
}

/// A fresh work directory, private to these runs.
pub fn work_dir(name: &str) -> Result<PathBuf, String> {
    let dir = Path::new(WORK_DIR).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

pub const USAGE: &str = "usage: cargo xtask faults [--quick] [--only NAME[,NAME...]]

  --only   keep the rows whose backend or fault one of the words names: a word that is a
           fault (kill, stall, latency, loss, failover) keeps those faults, any other word
           the backends whose name contains it (`--only redis,loss`: Redis's loss row)";

/// The rows to run: `(backend, fault)` pairs, in the matrix's order. `only`'s
/// comma-separated words (case-insensitive) that name a fault ([`Fault::slug`]) keep
/// those faults; the others keep the backends whose name or slug contains one of them
/// (`redis` is every Redis row, `cluster` the Cluster's). A row stays when it passes both.
fn plan(quick: bool, only: Option<&str>) -> Result<Vec<(Backend, Fault)>, String> {
    let rows: Vec<(Backend, Fault)> = if quick {
        [Backend::Redis, Backend::Postgres]
            .into_iter()
            .flat_map(|backend| [Fault::Kill, Fault::Stall].map(|fault| (backend, fault)))
            .collect()
    } else {
        Backend::ALL
            .into_iter()
            .flat_map(|backend| backend.faults().iter().map(move |&fault| (backend, fault)))
            .collect()
    };
    let Some(only) = only else {
        return Ok(rows);
    };
    let words: Vec<String> = only
        .split(',')
        .map(|word| word.trim().to_lowercase())
        .filter(|word| !word.is_empty())
        .collect();
    let (faults, backends): (Vec<&String>, Vec<&String>) = words
        .iter()
        .partition(|word| Fault::ALL.iter().any(|fault| fault.slug() == word.as_str()));
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|(backend, fault)| {
            let (name, slug) = (backend.name().to_lowercase(), backend.slug());
            let backend_kept = backends.is_empty()
                || backends
                    .iter()
                    .any(|word| name.contains(word.as_str()) || slug.contains(word.as_str()));
            let fault_kept = faults.is_empty() || faults.iter().any(|word| *word == fault.slug());
            backend_kept && fault_kept
        })
        .collect();
    if rows.is_empty() {
        return Err(format!(
            "--only {only}: no row matches; the backends are {}, the faults {}",
            Backend::ALL.map(Backend::slug).join(", "),
            Fault::ALL.map(Fault::slug).join(", ")
        ));
    }
    Ok(rows)
}

pub fn command(ctx: &Context, args: &[String]) -> Result<ExitCode, String> {
    let (mut quick, mut only) = (false, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => only = Some(rest.next().ok_or(USAGE)?.as_str()),
            _ => return Err(USAGE.into()),
        }
    }
    let plan = plan(quick, only)?;
    let started = Instant::now();
    // The commit of the code that runs, not of whatever is checked out at the end.
    let (commit, date) = provenance(ctx);
    let binary = build_example(ctx)?;
    let root = work_dir("faults")?;
    let mut rows = Vec::new();
    for (backend, fault) in plan {
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
    let command = match (quick, only) {
        (_, Some(only)) => format!(
            "cargo xtask faults{} --only {only}",
            if quick { " --quick" } else { "" }
        ),
        (true, None) => "cargo xtask faults --quick".to_string(),
        (false, None) => "cargo xtask faults".to_string(),
    };
    let mut text = table(&rows, &commit, &date, &command);
    let _ = writeln!(
        text,
        "\nRun time: {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    print!("{text}");
    // A run of some rows only is printed, never written: it would replace the matrix.
    if only.is_some() {
        return Ok(exit_code(&rows));
    }
    // The quick run (CI) keeps its own file, so it never replaces the published matrix.
    let out = ctx.workspace_root.join(if quick {
        "reliability/results/quick.md"
    } else {
        "reliability/results/latest.md"
    });
    fs::create_dir_all(out.parent().unwrap()).map_err(|e| e.to_string())?;
    fs::write(&out, &text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    if !quick {
        publish(ctx)?;
    }
    Ok(exit_code(&rows))
}

fn exit_code(rows: &[Row]) -> ExitCode {
    if rows.iter().all(Row::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_matrix_ends_with_the_failover_rows_and_quick_has_none() {
        let full = plan(false, None).unwrap();
        assert_eq!(full.len(), 6 * 4 + 2);
        assert_eq!(
            full[24..],
            [
                (Backend::RedisCluster, Fault::Failover),
                (Backend::RedisSentinel, Fault::Failover)
            ]
        );
        let quick = plan(true, None).unwrap();
        assert_eq!(quick.len(), 4);
        assert!(quick.iter().all(|(_, fault)| *fault != Fault::Failover));
    }

    #[test]
    fn only_picks_backends_by_name_or_slug() {
        let rows = plan(false, Some("cluster,Sentinel")).unwrap();
        assert_eq!(
            rows,
            [
                (Backend::RedisCluster, Fault::Failover),
                (Backend::RedisSentinel, Fault::Failover)
            ]
        );
        assert_eq!(plan(false, Some("redis")).unwrap().len(), 4 + 2);
        assert_eq!(plan(true, Some("postgres")).unwrap().len(), 2);
        assert!(plan(false, Some("oracle")).is_err());
    }

    #[test]
    fn only_picks_faults_by_their_word_and_combines_with_backends() {
        let loss = plan(false, Some("loss")).unwrap();
        assert_eq!(loss.len(), 6);
        assert!(loss.iter().all(|(_, fault)| *fault == Fault::Loss));
        assert_eq!(
            plan(false, Some("Redis,loss")).unwrap(),
            [(Backend::Redis, Fault::Loss)]
        );
        assert_eq!(
            plan(false, Some("kill,stall,postgres")).unwrap(),
            [
                (Backend::Postgres, Fault::Kill),
                (Backend::Postgres, Fault::Stall)
            ]
        );
        // The quick run has no loss rows.
        assert!(plan(true, Some("loss")).is_err());
    }

    #[test]
    fn the_loss_rows_say_the_share_they_drop() {
        assert!(Fault::Loss
            .describe()
            .starts_with(&format!("{LOSS_PERCENT} % ")));
    }

    #[test]
    fn a_relayed_store_is_reached_at_the_relay_s_address() {
        assert_eq!(
            Backend::Redis.app_env_at("10.213.0.2", &[6400])[1].1,
            "redis://10.213.0.2:6400"
        );
        assert_eq!(
            Backend::Dynamodb.app_env_at("10.213.0.2", &[8000])[1].1,
            "http://10.213.0.2:8000"
        );
    }

    #[test]
    fn cluster_and_sentinel_urls_name_every_node() {
        let env = Backend::RedisCluster.app_env(&[7100, 7101, 7102]);
        assert_eq!(
            env[1].1,
            "redis-cluster://127.0.0.1:7100?node=127.0.0.1:7101&node=127.0.0.1:7102"
        );
        let env = Backend::RedisSentinel.app_env(&[26400, 26401]);
        assert_eq!(
            env[1].1,
            "redis-sentinel://127.0.0.1:26400?sentinelServiceName=faults&node=127.0.0.1:26401"
        );
        assert_eq!(
            Backend::Redis.app_env(&[6400])[1].1,
            "redis://127.0.0.1:6400"
        );
    }

    #[test]
    fn failover_recovery_waits_for_the_slowest_session() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let event = |start, end, status| Event {
            start: at(start),
            end: at(end),
            status: Some(status),
        };
        let events = [
            (0, event(900, 1100, 200)),
            (0, event(1100, 1200, 200)),
            (1, event(900, 1300, 503)),
            (1, event(1300, 3000, 503)),
            (1, event(3000, 3400, 200)),
        ];
        let from = at(1000);
        assert_eq!(
            recovery_of_every_session(&events, 2, from),
            Some(Duration::from_millis(2400))
        );
        // A session that never succeeds again: no recovery.
        assert_eq!(recovery_of_every_session(&events[..4], 2, from), None);
    }

    #[test]
    fn cluster_nodes_lines_give_masters_and_their_slots() {
        let text = "\
a1 127.0.0.1:41000@41006,host master - 0 1 1 connected 0-5460\n\
b2 127.0.0.1:41001@41007 myself,master - 0 0 2 connected 5461-10922 [5500->-a1]\n\
c3 127.0.0.1:41002@41008 master,fail - 0 1 3 connected 10923 10924-16383\n\
d4 127.0.0.1:41003@41009 slave a1 0 1 1 connected\n";
        let masters = parse_cluster_nodes(text).unwrap();
        assert_eq!(
            masters,
            [
                (41000, vec![0..=5460]),
                (41001, vec![5461..=10922]),
                (41002, vec![10923..=10923, 10924..=16383]),
            ]
        );
    }
}
