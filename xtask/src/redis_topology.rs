//! What a Redis Cluster or a Sentinel setup is made of, in one place for the shared test
//! services ([`crate::native`]: fixed ports, no persistence) and the fault matrix's private
//! ones ([`crate::faults`]: free ports, a master killed under load).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::probe;
use crate::process::find_program;
use crate::service::HOST;

/// `redis-server` options that make a node a cluster node; its cluster state goes to
/// `nodes.conf` in its `--dir`. The live masters keep serving their slots while another
/// master is down (`cluster-require-full-coverage no`): by default every node refuses every
/// key (`CLUSTERDOWN`) from the moment the nodes agree a master failed until its replica
/// takes over.
pub fn cluster_node_args(node_timeout: Duration) -> Vec<String> {
    vec![
        "--cluster-enabled".into(),
        "yes".into(),
        "--cluster-config-file".into(),
        "nodes.conf".into(),
        "--cluster-require-full-coverage".into(),
        "no".into(),
        "--cluster-node-timeout".into(),
        node_timeout.as_millis().to_string(),
    ]
}

/// `redis-cli --cluster create` of the nodes on `ports` (all on [`HOST`]), with `replicas`
/// replicas per master, without asking.
pub fn cluster_create(ports: &[u16], replicas: usize) -> Result<Command, String> {
    let redis_cli = find_program("redis-cli").ok_or("`redis-cli` is not installed")?;
    let mut create = Command::new(redis_cli);
    create.args(["--cluster", "create"]);
    create.args(ports.iter().map(|port| format!("{HOST}:{port}")));
    create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
    Ok(create)
}

/// Every node on `ports` reports `cluster_state:ok` with all 16384 slots assigned.
pub fn cluster_ready(ports: &[u16]) -> bool {
    ports.iter().all(|&port| probe::redis_cluster_ok(port))
}

/// A sentinel on `port` watching the master `name` at `HOST:master_port`.
pub struct Sentinel<'a> {
    pub port: u16,
    /// Its working directory (the sentinel rewrites its config file there).
    pub dir: &'a Path,
    pub name: &'a str,
    pub master_port: u16,
    /// Sentinels that must agree the master is down before a failover.
    pub quorum: usize,
    pub down_after: Duration,
    pub failover_timeout: Duration,
}

impl Sentinel<'_> {
    /// The config file's text: a sentinel rewrites its file, so each start gets a fresh one.
    pub fn config(&self) -> String {
        let Sentinel {
            port,
            dir,
            name,
            master_port,
            quorum,
            ..
        } = self;
        format!(
            "bind {HOST}\nport {port}\ndaemonize no\nlogfile \"\"\ndir {dir}\n\
             sentinel monitor {name} {HOST} {master_port} {quorum}\n\
             sentinel down-after-milliseconds {name} {down_after}\n\
             sentinel failover-timeout {name} {failover_timeout}\n\
             sentinel parallel-syncs {name} 1\n",
            dir = dir.display(),
            down_after = self.down_after.as_millis(),
            failover_timeout = self.failover_timeout.as_millis(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentinel_config_names_the_master_and_its_timings() {
        let config = Sentinel {
            port: 26400,
            dir: Path::new("/tmp/s"),
            name: "faults",
            master_port: 6400,
            quorum: 2,
            down_after: Duration::from_millis(1000),
            failover_timeout: Duration::from_secs(3),
        }
        .config();
        assert!(config.contains("port 26400\n"), "{config}");
        assert!(config.contains("sentinel monitor faults 127.0.0.1 6400 2\n"));
        assert!(config.contains("sentinel down-after-milliseconds faults 1000\n"));
        assert!(config.contains("sentinel failover-timeout faults 3000\n"));
    }

    #[test]
    fn cluster_nodes_get_the_node_timeout_in_milliseconds() {
        let args = cluster_node_args(Duration::from_secs(2));
        assert_eq!(args[args.len() - 2..], ["--cluster-node-timeout", "2000"]);
    }
}
