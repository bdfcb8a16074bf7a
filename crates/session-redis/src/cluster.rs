//! Redis Cluster with one connection pool per master, so that a lost master stalls only
//! the sessions in its own slots.
//!
//! fred's cluster client sends the commands for every node through one task. When it
//! loses a node, that task re-reads the slot map and reconnects to every master the map
//! lists — the dead one too, until a replica replaces it — and sends nothing to any node
//! meanwhile, so sessions on the live masters fail with the lost ones. Here:
//! - each master has its own pool of fred standalone clients, and the slot map is ours
//!   (`CLUSTER SLOTS`); a command goes to the master of its key's slot, on the connection
//!   its key hashes to ([`connection_for`]);
//! - `MOVED` (the slot has another master now) re-reads the map and retries once on the
//!   new master; `ASK` (the slot is being migrated and the key has left) sends `ASKING`
//!   and the command to the node named, back to back in one pipeline;
//! - a failed command or a lost connection (fred's error events) wakes the refresher,
//!   which re-reads the map from a live master,
//!   and keeps re-reading it every [`REFRESH_INTERVAL`] while any master's pool is down:
//!   a promoted replica is connected as soon as the cluster names it, and the lost
//!   master's pool is closed, failing what still waits on it at once;
//! - with client tracking, every connection of every master tracks, one
//!   [`Gate`] holds the cache off while any of them does not, and every change of the map
//!   flushes the cache (a moved slot's keys were tracked on the old master).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, ClusterInterface, EventInterface, KeysInterface};
use fred::types::cluster::ClusterRouting;
use fred::types::config::Server;
use fred::types::{ClientState, ClusterHash, CustomCommand, Value};
use session_core::StoreError;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::error::map_error;
use crate::scripts::Script;
use crate::tracking::{self, connection_for, Gate, Tasks};

/// How often the refresher re-reads the slot map while a master's pool is down.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_millis(250);

/// Least time between two reads of the slot map, however many commands fail.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(100);
/// The longest one master may take to answer `CLUSTER SLOTS` before the next one is asked
/// (or the command timeout, if shorter): a master that just died can still look connected
/// to one of its pool's clients, and waiting for it would hold every refresh.
const SLOTS_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Builds the (unconnected) pool for one master; the flag: report a failed first
/// connection instead of retrying.
pub(crate) type NewPool =
    Arc<dyn Fn(&Server, bool) -> Result<Pool, fred::error::Error> + Send + Sync>;

/// One session command, run on the connection its route names.
pub(crate) enum Op<'a> {
    /// A script of the store's, by digest (source when the server lacks it).
    Script {
        script: &'a Script,
        keys: &'a [&'a str],
        args: &'a (dyn Fn() -> Vec<Value> + Send + Sync),
    },
    /// `DEL key`.
    Delete(&'a str),
}

impl Op<'_> {
    async fn run(&self, client: &Client) -> Result<Value, fred::error::Error> {
        match self {
            Op::Script { script, keys, args } => script.run(client, keys, args).await,
            Op::Delete(key) => client.del(*key).await,
        }
    }

    /// `ASKING`, then the command, back to back: the node serves the command for a slot it
    /// is importing only right after `ASKING`. The script goes by source, since the node
    /// may not have it cached, and a pipeline cannot fall back.
    async fn run_asking(&self, client: &Client) -> Result<Value, fred::error::Error> {
        let pipeline = client.pipeline();
        let asking = CustomCommand::new_static("ASKING", ClusterHash::Random, false);
        let () = pipeline.custom(asking, Vec::<Value>::new()).await?;
        match self {
            Op::Script { script, keys, args } => {
                let eval = CustomCommand::new_static("EVAL", ClusterHash::Random, false);
                let mut eval_args =
                    vec![Value::from(script.source), Value::from(keys.len() as i64)];
                eval_args.extend(keys.iter().map(|key| Value::from(*key)));
                eval_args.extend(args());
                let () = pipeline.custom(eval, eval_args).await?;
            }
            Op::Delete(key) => {
                let () = pipeline.del(*key).await?;
            }
        }
        let mut replies: Vec<Result<Value, fred::error::Error>> = pipeline.try_all().await;
        replies.pop().unwrap_or_else(|| {
            Err(fred::error::Error::new(
                fred::error::ErrorKind::Protocol,
                "no reply to the command after ASKING",
            ))
        })
    }
}

/// A redirection a cluster node answered with.
enum Redirect {
    /// The slot has another master now.
    Moved,
    /// The slot is being migrated to this node, and the key is there already.
    Ask(Server),
}

impl Redirect {
    /// `MOVED 3999 127.0.0.1:6381` / `ASK 3999 127.0.0.1:6381`.
    fn of(error: &fred::error::Error) -> Option<Redirect> {
        let mut parts = error.details().split(' ');
        let kind = parts.next()?;
        let _slot = parts.next()?;
        let (host, port) = parts.next()?.rsplit_once(':')?;
        match kind {
            "MOVED" => Some(Redirect::Moved),
            "ASK" => Some(Redirect::Ask(Server::new(host, port.parse().ok()?))),
            _ => None,
        }
    }
}

/// One master: its pool and, with tracking, the tasks following its connections.
struct Node {
    pool: Pool,
    _tracking: Option<Tasks>,
    /// Wakes the refresher when a connection of the pool fails (see [`watch_errors`]).
    _errors: Tasks,
}

impl Node {
    fn client(&self, key: &str) -> &Client {
        let clients = self.pool.clients();
        &clients[connection_for(key, clients.len())]
    }

    fn is_down(&self) -> bool {
        self.pool
            .clients()
            .iter()
            .any(|client| client.state() != ClientState::Connected)
    }
}

/// The slot map and the masters' pools.
struct Topology {
    routing: ClusterRouting,
    nodes: HashMap<Server, Arc<Node>>,
}

impl Topology {
    fn node_for(&self, slot: u16) -> Option<&Arc<Node>> {
        self.nodes.get(master_of(&self.routing, slot)?)
    }
}

/// The master serving `slot`, if any. fred's `ClusterRouting::get_server` is not used: its
/// search underflows (a panic in debug builds) for a slot below the first assigned range,
/// which a map read while a lost master's slots are unassigned has.
fn master_of(routing: &ClusterRouting, slot: u16) -> Option<&Server> {
    let ranges = routing.slots();
    let index = ranges.partition_point(|range| range.end < slot);
    ranges
        .get(index)
        .filter(|range| range.start <= slot)
        .map(|range| &range.primary)
}

struct Shared {
    new_pool: NewPool,
    topology: RwLock<Arc<Topology>>,
    wake: Arc<Notify>,
    /// Counts the reads of the slot map, for commands that wait for the next one.
    refreshed: watch::Sender<u64>,
    gate: Option<Arc<Gate>>,
    command_timeout: Duration,
}

/// Routes the session commands of a Cluster to its masters' pools.
pub(crate) struct ClusterRoutes {
    shared: Arc<Shared>,
    refresher: JoinHandle<()>,
    /// Set by [`quit`](Self::quit): the pools are closed, and dropping must not close them
    /// again (fred warns for each client quit twice).
    quit: AtomicBool,
}

impl Drop for ClusterRoutes {
    fn drop(&mut self) {
        self.refresher.abort();
        if !self.quit.load(Ordering::SeqCst) {
            close(self.pools().into_iter());
        }
    }
}

/// Closes pools in the background: commands still waiting on them fail at once, and the
/// clients stop reconnecting. A pool whose master died is closed too, whatever state its
/// reconnecting clients are in: `quit` interrupts their reconnection delay.
fn close(pools: impl Iterator<Item = Pool>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for pool in pools {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), pool.quit()).await;
        });
    }
}

impl ClusterRoutes {
    /// Connects a pool to each master of `routing` (the slot map fred's cluster client
    /// read at start-up), with client tracking feeding `gate` if given. Fails when a
    /// master cannot be reached within `connect_limit`.
    pub(crate) async fn connect(
        routing: ClusterRouting,
        new_pool: NewPool,
        connect_limit: Duration,
        command_timeout: Duration,
        tracking: bool,
    ) -> Result<ClusterRoutes, StoreError> {
        let mut pools = Vec::new();
        for server in routing.unique_primary_nodes() {
            let pool = new_pool(&server, true).map_err(map_error)?;
            match tokio::time::timeout(connect_limit, pool.init()).await {
                Ok(Ok(_)) => pools.push((server, pool)),
                outcome => {
                    close(pools.into_iter().map(|(_, pool)| pool).chain([pool]));
                    return Err(match outcome {
                        Ok(Err(error)) => map_error(error),
                        _ => StoreError::unavailable(format!(
                            "no connection to the Redis Cluster master {server} within {connect_limit:?}"
                        )),
                    });
                }
            }
        }
        let mut gate = None;
        if let (true, Some((first, _))) = (tracking, pools.first()) {
            let on_first = |key: &str| {
                master_of(&routing, fred::util::redis_keyslot(key.as_bytes())) == Some(first)
            };
            let all: Vec<&Pool> = pools.iter().map(|(_, pool)| pool).collect();
            if tracking::enable_checked(&all, on_first).await {
                gate = Some(Gate::new());
            }
        }
        let wake = Arc::new(Notify::new());
        let nodes = pools
            .into_iter()
            .map(|(server, pool)| {
                let tracking = gate
                    .as_ref()
                    .map(|gate| tracking::follow(&pool, gate, true));
                let node = Node {
                    _errors: watch_errors(&pool, &wake),
                    pool,
                    _tracking: tracking,
                };
                (server, Arc::new(node))
            })
            .collect();
        if let Some(gate) = &gate {
            gate.feed.set_tracking(true);
        }
        let shared = Arc::new(Shared {
            new_pool,
            topology: RwLock::new(Arc::new(Topology { routing, nodes })),
            wake,
            refreshed: watch::channel(0).0,
            gate,
            command_timeout,
        });
        let refresher = tokio::spawn(refresh_loop(shared.clone()));
        Ok(ClusterRoutes {
            shared,
            refresher,
            quit: AtomicBool::new(false),
        })
    }

    /// The gate of the cache's feed, if the masters track.
    pub(crate) fn gate(&self) -> Option<&Arc<Gate>> {
        self.shared.gate.as_ref()
    }

    /// Runs `op` on the master of `route_key`'s slot, following one redirection.
    pub(crate) async fn run(&self, route_key: &str, op: Op<'_>) -> Result<Value, StoreError> {
        let slot = fred::util::redis_keyslot(route_key.as_bytes());
        let node = self.shared.node_for(slot)?;
        let error = match op.run(node.client(route_key)).await {
            Ok(reply) => return Ok(reply),
            Err(error) => error,
        };
        let retried = match Redirect::of(&error) {
            None => Err(error),
            Some(Redirect::Moved) => {
                self.shared.refresh_now().await;
                let node = self.shared.node_for(slot)?;
                op.run(node.client(route_key)).await
            }
            Some(Redirect::Ask(server)) => {
                let node = self.shared.topology().nodes.get(&server).cloned();
                match node {
                    Some(node) => op.run_asking(node.client(route_key)).await,
                    None => Err(error),
                }
            }
        };
        retried.map_err(|error| self.shared.failed(error))
    }

    /// The masters, in a stable order (by address), each with one client of its pool.
    pub(crate) fn primaries(&self) -> Vec<Client> {
        let topology = self.shared.topology();
        let mut servers: Vec<&Server> = topology.nodes.keys().collect();
        servers.sort();
        servers
            .into_iter()
            .map(|server| topology.nodes[server].pool.next().clone())
            .collect()
    }

    /// Closes every master's pool and stops following the slot map (`RedisStore::quit`).
    pub(crate) async fn quit(&self) -> Result<(), fred::error::Error> {
        self.quit.store(true, Ordering::SeqCst);
        self.refresher.abort();
        for pool in self.pools() {
            pool.quit().await?;
        }
        Ok(())
    }

    /// Every connection of every master.
    pub(crate) fn pools(&self) -> Vec<Pool> {
        let topology = self.shared.topology();
        topology
            .nodes
            .values()
            .map(|node| node.pool.clone())
            .collect()
    }
}

impl Shared {
    fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn node_for(&self, slot: u16) -> Result<Arc<Node>, StoreError> {
        match self.topology().node_for(slot) {
            Some(node) => Ok(node.clone()),
            None => {
                self.wake.notify_one();
                Err(StoreError::unavailable(format!(
                    "no Redis Cluster master is known for hash slot {slot}"
                )))
            }
        }
    }

    /// Maps a command's error; one that says the node is unreachable or the map is wrong
    /// wakes the refresher.
    fn failed(&self, error: fred::error::Error) -> StoreError {
        let error = map_error(error);
        if matches!(error, StoreError::Unavailable(_)) {
            self.wake.notify_one();
        }
        error
    }

    /// Wakes the refresher and waits for its next read of the map (at most a command
    /// timeout).
    async fn refresh_now(&self) {
        let mut refreshed = self.refreshed.subscribe();
        refreshed.borrow_and_update();
        self.wake.notify_one();
        let _ = tokio::time::timeout(self.command_timeout, refreshed.changed()).await;
    }

    /// Reads the slot map from a live master and connects or closes masters to match.
    async fn refresh(&self) -> Result<(), String> {
        let current = self.topology();
        let routing = self.read_slots(&current).await?;
        if routing.slots() == current.routing.slots() {
            return Ok(());
        }
        let mut nodes = HashMap::new();
        for server in routing.unique_primary_nodes() {
            let node = match current.nodes.get(&server) {
                Some(node) => node.clone(),
                None => Arc::new(self.connect_node(&server)?),
            };
            nodes.insert(server, node);
        }
        let gone: Vec<Pool> = current
            .nodes
            .iter()
            .filter(|(server, _)| !nodes.contains_key(*server))
            .map(|(_, node)| node.pool.clone())
            .collect();
        tracing::info!(
            masters = nodes.len(),
            closed = gone.len(),
            "the Redis Cluster slot map changed"
        );
        *self
            .topology
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(Topology { routing, nodes });
        if let Some(gate) = &self.gate {
            gate.feed.invalidate_all();
        }
        close(gone.into_iter());
        Ok(())
    }

    /// `CLUSTER SLOTS` from the first connected master that answers, masters whose pool
    /// has lost no connection first (one that has is likely the master that died).
    async fn read_slots(&self, current: &Topology) -> Result<ClusterRouting, String> {
        let mut last_error = "no Redis Cluster master is connected".to_owned();
        let mut masters: Vec<_> = current.nodes.iter().collect();
        masters.sort_by_key(|(_, node)| node.is_down());
        let timeout = SLOTS_READ_TIMEOUT.min(self.command_timeout);
        for (server, node) in masters {
            let client = node.pool.next();
            if client.state() != ClientState::Connected {
                continue;
            }
            let Ok(reply) = tokio::time::timeout(timeout, client.cluster_slots::<Value>()).await
            else {
                last_error = format!("{server} did not answer CLUSTER SLOTS within {timeout:?}");
                continue;
            };
            match reply
                .and_then(|slots| ClusterRouting::from_cluster_slots(slots, server.host.clone()))
            {
                Ok(routing) if !routing.slots().is_empty() => return Ok(routing),
                Ok(_) => last_error = format!("{server} reported no slots"),
                Err(error) => last_error = format!("{server}: {error}"),
            }
        }
        Err(last_error)
    }

    /// A pool for a master that joined the map: connecting in the background, its
    /// commands waiting meanwhile; with tracking, the gate holds the cache off until its
    /// connections track.
    fn connect_node(&self, server: &Server) -> Result<Node, String> {
        let pool = (self.new_pool)(server, false).map_err(|error| error.to_string())?;
        let _connection_tasks = pool.connect_pool();
        let tracking = self
            .gate
            .as_ref()
            .map(|gate| tracking::follow(&pool, gate, false));
        Ok(Node {
            _errors: watch_errors(&pool, &self.wake),
            pool,
            _tracking: tracking,
        })
    }

    fn any_down(&self) -> bool {
        self.topology().nodes.values().any(|node| node.is_down())
    }
}

/// Wakes the refresher whenever a connection of `pool` reports an error (a lost
/// connection, a failed reconnection): a master that died is noticed at once, not when the
/// first command to it times out, and the map is then re-read until it changes.
fn watch_errors(pool: &Pool, wake: &Arc<Notify>) -> Tasks {
    let tasks = pool
        .clients()
        .iter()
        .map(|client| {
            let mut errors = client.error_rx();
            let wake = wake.clone();
            tokio::spawn(async move {
                loop {
                    match errors.recv().await {
                        Ok(_) | Err(RecvError::Lagged(_)) => wake.notify_one(),
                        Err(RecvError::Closed) => return,
                    }
                }
            })
        })
        .collect();
    Tasks(tasks)
}

/// Re-reads the slot map when woken, and every [`REFRESH_INTERVAL`] while a master's pool
/// is down.
async fn refresh_loop(shared: Arc<Shared>) {
    loop {
        if shared.any_down() {
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(REFRESH_INTERVAL) => {}
            }
        } else {
            shared.wake.notified().await;
        }
        if let Err(reason) = shared.refresh().await {
            tracing::debug!(reason, "reading the Redis Cluster slot map");
        }
        shared.refreshed.send_modify(|count| *count += 1);
        tokio::time::sleep(MIN_REFRESH_GAP).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `CLUSTER SLOTS` reply with slots 0–5460 unassigned and a gap at 12000–12999.
    fn routing_with_unassigned_slots() -> ClusterRouting {
        let range = |start: i64, end: i64, port: i64| {
            Value::Array(vec![
                start.into(),
                end.into(),
                Value::Array(vec!["127.0.0.1".into(), port.into(), "id".into()]),
            ])
        };
        let reply = Value::Array(vec![range(5461, 11999, 7001), range(13000, 16383, 7002)]);
        ClusterRouting::from_cluster_slots(reply, "127.0.0.1").expect("a slot map")
    }

    #[test]
    fn an_unassigned_slot_has_no_master_and_no_panic() {
        let routing = routing_with_unassigned_slots();
        let port = |slot| master_of(&routing, slot).map(|server| server.port);
        assert_eq!(port(0), None);
        assert_eq!(port(5460), None);
        assert_eq!(port(5461), Some(7001));
        assert_eq!(port(11999), Some(7001));
        assert_eq!(port(12000), None);
        assert_eq!(port(12999), None);
        assert_eq!(port(13000), Some(7002));
        assert_eq!(port(16383), Some(7002));
    }

    #[test]
    fn redirections_are_read_from_the_error() {
        let error =
            |text: &str| fred::error::Error::new(fred::error::ErrorKind::Cluster, text.to_owned());
        assert!(matches!(
            Redirect::of(&error("MOVED 3999 127.0.0.1:7001")),
            Some(Redirect::Moved)
        ));
        match Redirect::of(&error("ASK 3999 10.0.0.2:7002")) {
            Some(Redirect::Ask(server)) => assert_eq!(server, Server::new("10.0.0.2", 7002)),
            _ => panic!("ASK not read"),
        }
        for other in [
            "CLUSTERDOWN The cluster is down",
            "MOVED 3999",
            "ASK 1 host:port",
            "",
        ] {
            assert!(Redirect::of(&error(other)).is_none(), "{other}");
        }
    }
}
