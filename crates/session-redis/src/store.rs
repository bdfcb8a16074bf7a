//! [`RedisStore`]: the session store on Redis, in Flask-Session's layout.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface};
use fred::types::{Key, Value};
use session_core::{
    box_in_place, IndexEntry, InvalidationFeed, ScanPage, SessionStore, SetupError, StoreError,
    StoredEntry,
};

use crate::batch::{Writers, MAX_BATCHED_BYTES};
use crate::builder::RedisStoreBuilder;
use crate::cluster::{ClusterRoutes, Op};
use crate::error::{connection_lost, map_error, unexpected_reply};
use crate::scripts::{Script, Scripts};
use crate::tracking::{connection_for, Tracking};

/// Largest value Redis accepts in one string (its `proto-max-bulk-len` default, 512 MiB).
/// Larger values fail with [`StoreError::TooLarge`] before anything is sent.
pub const MAX_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// Sessions in Redis (standalone, Cluster or Sentinel), stored exactly as Flask-Session
/// stores them: the key as given (core has already prepended `SESSION_KEY_PREFIX`), the
/// serialized bytes as a plain string value, written with `SET key value EX seconds`.
/// No other key is ever written, but for the owner index below.
///
/// - [`load`](SessionStore::load) reads the value and its remaining TTL with one command
///   (a read-only Lua script running `GET` and `PTTL`); an empty value counts as missing,
///   as in Flask-Session.
/// - [`create`](SessionStore::create) is `SET … EX … NX`, [`touch`](SessionStore::touch)
///   is `EXPIRE`, [`delete`](SessionStore::delete) is `DEL`, each in a script that reads
///   the key back so that client tracking keeps following it.
/// - [`compare_and_set`](SessionStore::compare_and_set) and
///   [`rotate`](SessionStore::rotate) are Lua scripts, atomic on the server.
/// - With client tracking (the default of [`RedisStoreBuilder::connect`], Redis 6 or
///   later), Redis reports every change other writers make to a key this store read or
///   wrote, and [`invalidations`](SessionStore::invalidations) hands those reports to
///   session-core's cache: reads of cached sessions make no round trip. The commands for
///   one key always use the same connection of the pool.
/// - Compare-and-sets of different sessions that overlap on one connection go out
///   together, as one script call (see [`RedisStoreBuilder::write_batching`]); never in a
///   Cluster.
/// - Scripts run with `EVALSHA`, falling back to `EVAL` when the server's script cache is
///   empty (after a restart or `SCRIPT FLUSH`).
/// - In Redis Cluster (connected by [`RedisStoreBuilder`]), each master has a pool of its
///   own and the commands for a key go to its slot's master: a lost master fails only the
///   sessions in its slots (run the nodes with `cluster-require-full-coverage no`, or Redis
///   refuses every key until the replica is promoted). `MOVED` and `ASK` are followed.
/// - In Redis Cluster, a rotation whose two keys hash to different slots cannot be one
///   script; it creates the new entry, then deletes the old one only if it still holds the
///   expected bytes (atomically), undoing the new entry otherwise. A crash between the two
///   steps leaves an unreferenced new entry that expires on its own.
/// - [`cleanup`](SessionStore::cleanup) does nothing: Redis expires keys itself.
/// - The owner index (`docs/owners.md`) is one hash per owner beside Flask-Session's keys,
///   under the name core gives it (`SESSION_KEY_PREFIX` + `owner:` + the owner, e.g.
///   `session:owner:42`): one field per session key, valued `"created last_seen
///   expires_at"` (Unix seconds). It expires with the last of its entries (core sets each
///   entry's expiry [`LAST_SEEN_RESOLUTION`](session_core::LAST_SEEN_RESOLUTION) past its
///   session's); listing drops the fields past their expiry. Every index command touches that one key, so it works in
///   Redis Cluster; a Flask reader never looks at it.
///
/// TTLs are whole seconds (Flask-Session's `int(lifetime.total_seconds())`), at least 1.
///
/// Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    clustered: bool,
    scripts: Arc<Scripts>,
    tracking: Option<Arc<Tracking>>,
    /// Per-master pools of a Cluster (see `cluster.rs`); `None` when fred routes.
    routes: Option<Arc<ClusterRoutes>>,
    /// The writer of each connection, which batches concurrent compare-and-sets (see
    /// `batch.rs`); `None` in a Cluster.
    writers: Option<Arc<Writers>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("pool_size", &self.pool.size())
            .field("clustered", &self.clustered)
            .field("client_tracking", &self.is_tracking())
            .field("per_master_pools", &self.routes.is_some())
            .field("write_batching", &self.writers.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A builder for the URL, pool size, timeouts and reconnection policy.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// Connects to `url` (standalone `redis://`, `redis-cluster://` or `redis-sentinel://`,
    /// see [`RedisStoreBuilder::url`]) with the default pool and timeouts. Shorthand for
    /// `RedisStore::builder().url(url).connect()`.
    pub async fn connect(url: &str) -> Result<RedisStore, SetupError> {
        RedisStore::builder().url(url).connect().await
    }

    /// A store on a pool configured by the application (the equivalent of Flask-Session's
    /// `SESSION_REDIS`). The pool must already be connected (`pool.init().await`); its
    /// reconnection policy and command timeout are the application's, so set both, or a
    /// command sent while Redis is down waits for it indefinitely.
    pub fn from_pool(pool: Pool) -> RedisStore {
        let scripts = Scripts::new();
        let clustered = pool.is_clustered();
        let writers = (!clustered).then(|| {
            Writers::new(
                pool.clients(),
                &scripts.compare_and_set,
                &scripts.compare_and_set_many,
            )
        });
        RedisStore {
            clustered,
            pool,
            scripts: Arc::new(scripts),
            tracking: None,
            routes: None,
            writers: writers.map(Arc::new),
        }
    }

    /// The store with write batching on (as built) or every compare-and-set sent on its
    /// own (see [`RedisStoreBuilder::write_batching`]).
    pub(crate) fn with_write_batching(self, batching: bool) -> RedisStore {
        if batching {
            self
        } else {
            RedisStore {
                writers: None,
                ..self
            }
        }
    }

    /// The store on a connected pool with client tracking started on it.
    pub(crate) fn with_tracking(pool: Pool, tracking: Option<Tracking>) -> RedisStore {
        RedisStore {
            tracking: tracking.map(Arc::new),
            ..RedisStore::from_pool(pool)
        }
    }

    /// The store on fred's cluster pool (`pool`, for [`pool`](Self::pool)) with its session
    /// commands routed to per-master pools.
    pub(crate) fn with_routes(pool: Pool, routes: ClusterRoutes) -> RedisStore {
        RedisStore {
            routes: Some(Arc::new(routes)),
            ..RedisStore::from_pool(pool)
        }
    }

    /// Whether Redis reports other writers' changes to this store (client tracking is on),
    /// so that session-core can cache sessions coherently.
    pub fn is_tracking(&self) -> bool {
        self.feed().is_some()
    }

    fn feed(&self) -> Option<&InvalidationFeed> {
        match (&self.tracking, &self.routes) {
            (Some(tracking), _) => Some(&tracking.gate.feed),
            (None, Some(routes)) => routes.gate().map(|gate| &gate.feed),
            (None, None) => None,
        }
    }

    /// The connection the commands for `key` use (without per-master pools): always the
    /// same one, so that client tracking's NOLOOP hides this store's own writes from itself.
    fn client(&self, key: &str) -> &Client {
        let clients = self.pool.clients();
        &clients[connection_for(key, clients.len())]
    }

    /// A store on one connected client configured by the application (see
    /// [`from_pool`](Self::from_pool)).
    pub fn from_client(client: Client) -> Result<RedisStore, StoreError> {
        Pool::from_clients(vec![client])
            .map(RedisStore::from_pool)
            .map_err(map_error)
    }

    /// The connection pool, for commands of the application's own. In a Cluster
    /// connected by [`RedisStoreBuilder`], this is fred's cluster client (one connection to
    /// each node), while the session commands use one pool per master.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Whether the store talks to a Redis Cluster (rotation then works as described
    /// on [`RedisStore`]).
    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// Closes the pool's connections; later calls fail. Clones share the pool and are
    /// closed too.
    pub async fn quit(&self) -> Result<(), StoreError> {
        if let Some(routes) = &self.routes {
            routes.quit().await.map_err(map_error)?;
        }
        self.pool.quit().await.map_err(map_error)
    }

    /// Runs `script` on the connection of its first key; once more after a lost connection
    /// if `sending` is [`Sending::Again`] (the Cluster routes do not send anything again).
    async fn run_script(
        &self,
        sending: Sending,
        script: &Script,
        keys: &[&str],
        args: impl Fn() -> Vec<Value> + Send + Sync,
    ) -> Result<Value, StoreError> {
        if let Some(routes) = &self.routes {
            let args = &args;
            // Boxed: the Cluster path's future is large, and unboxed it would size (and be
            // copied with) every standalone call's future too.
            let op = Op::Script { script, keys, args };
            return box_in_place(|| routes.run(keys[0], op)).await;
        }
        // Built in its own block: fred's 5 KB future would otherwise be copied into the
        // box of every store call's future (see `box_in_place`).
        let client = self.client(keys[0]);
        sending
            .send(|| box_in_place(|| script.run(client, keys, &args)))
            .await
            .map_err(map_error)
    }

    /// [`run_script`](Self::run_script) for the scripts that answer 0 or 1.
    async fn run_flag_script(
        &self,
        sending: Sending,
        script: &Script,
        keys: &[&str],
        args: impl Fn() -> Vec<Value> + Send + Sync,
    ) -> Result<bool, StoreError> {
        let reply = self.run_script(sending, script, keys, args).await?;
        match reply.as_i64() {
            Some(flag) => Ok(flag == 1),
            None => Err(unexpected_reply("EVALSHA", &reply)),
        }
    }
}

/// Whether a command may go out a second time when the connection it was sent on is lost
/// before Redis answers. fred sends nothing twice (`max_command_attempts` 1, see the
/// builder): Redis may have run the command before the connection closed, and a
/// compare-and-set, create or rotation run twice answers "not written" for a write that was
/// made. Commands that change nothing, or whose second run looks like the first one
/// arriving late, go out again once, on the reconnected connection, so that a reconnection
/// (a restart, a Sentinel failover) costs them no error.
#[derive(Clone, Copy)]
enum Sending {
    /// Reads, and the writes that set a value regardless of the one before (`EXPIRE`,
    /// `DEL`, the owner index's `HSET` and `HDEL`).
    Again,
    /// Every other write: its outcome is unknown after a lost connection.
    Once,
}

impl Sending {
    async fn send<T, F>(self, command: impl Fn() -> F) -> Result<T, fred::error::Error>
    where
        F: Future<Output = Result<T, fred::error::Error>>,
    {
        match (self, command().await) {
            (Sending::Again, Err(error)) if connection_lost(&error) => command().await,
            (_, result) => result,
        }
    }
}

/// Flask-Session's `int(lifetime.total_seconds())`, but at least 1: Redis refuses `EX 0`.
fn ttl_seconds(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1)
}

fn check_size(len: usize) -> Result<(), StoreError> {
    if len > MAX_VALUE_BYTES {
        Err(StoreError::TooLarge {
            size: len,
            limit: MAX_VALUE_BYTES,
        })
    } else {
        Ok(())
    }
}

/// The bytes of a `GET` reply; `None` for a missing key.
fn reply_bytes(reply: Value) -> Result<Option<Vec<u8>>, StoreError> {
    match reply {
        Value::Null => Ok(None),
        Value::Bytes(bytes) => Ok(Some(bytes.to_vec())),
        Value::String(text) => Ok(Some(text.as_bytes().to_vec())),
        other => Err(unexpected_reply("GET", &other)),
    }
}

/// The load script's reply: nil for a missing key, else the value and its `PTTL`.
fn load_reply(reply: Value) -> Result<Option<(Vec<u8>, i64)>, StoreError> {
    let Value::Array(mut parts) = reply else {
        return match reply {
            Value::Null => Ok(None),
            other => Err(unexpected_reply("the load script", &other)),
        };
    };
    match (parts.pop(), parts.pop(), parts.is_empty()) {
        (Some(Value::Integer(pttl)), Some(value), true) => match reply_bytes(value)? {
            Some(value) => Ok(Some((value, pttl))),
            None => Err(unexpected_reply("the load script", &Value::Null)),
        },
        (pttl, value, _) => {
            let parts: Vec<Value> = value.into_iter().chain(pttl).collect();
            Err(unexpected_reply("the load script", &Value::Array(parts)))
        }
    }
}

/// ARGV of the compare-and-set and rotate scripts: expected bytes, new bytes, seconds.
fn script_args(expected: &[u8], value: &[u8], ttl: Duration) -> Vec<Value> {
    vec![
        Value::from(expected),
        Value::from(value),
        Value::from(ttl_seconds(ttl)),
    ]
}

/// The expiry from a `PTTL` reply: -1 is a key without expiry, -2 one that is gone.
fn expiry_from_pttl(pttl: i64, now: SystemTime) -> Option<Option<SystemTime>> {
    match pttl {
        -2 => None,
        ms if ms < 0 => Some(None),
        ms => Some(now.checked_add(Duration::from_millis(ms.unsigned_abs()))),
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        let reply = self
            .run_script(Sending::Again, &self.scripts.load, &[key], Vec::new)
            .await?;
        let now = SystemTime::now();
        let Some((value, pttl)) = load_reply(reply)? else {
            return Ok(None);
        };
        // Flask-Session treats an empty value as a miss.
        match expiry_from_pttl(pttl, now) {
            Some(expires_at) if !value.is_empty() => Ok(Some(StoredEntry { value, expires_at })),
            _ => Ok(None),
        }
    }

    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        check_size(value.len())?;
        self.run_flag_script(Sending::Once, &self.scripts.create, &[key], || {
            vec![Value::from(value), Value::from(ttl_seconds(ttl))]
        })
        .await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_size(value.len())?;
        let batched = expected.len() + value.len() <= MAX_BATCHED_BYTES;
        // Held until Redis has answered, whichever way the write goes.
        let in_flight = self.writers.as_ref().filter(|_| batched).map(|writers| {
            let connection = connection_for(key, self.pool.clients().len());
            (writers, connection, writers.enter(connection))
        });
        if let Some((writers, connection, in_flight)) = &in_flight {
            if in_flight.batched() {
                let args = script_args(expected, value, ttl);
                if let Some(result) = writers
                    .compare_and_set(*connection, Key::from(key), args)
                    .await
                {
                    return result;
                }
            }
        }
        self.run_flag_script(Sending::Once, &self.scripts.compare_and_set, &[key], || {
            script_args(expected, value, ttl)
        })
        .await
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.run_flag_script(Sending::Again, &self.scripts.touch, &[key], || {
            vec![Value::from(ttl_seconds(ttl))]
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if let Some(routes) = &self.routes {
            box_in_place(|| routes.run(key, Op::Delete(key))).await?;
            return Ok(());
        }
        let client = self.client(key);
        let _: i64 = Sending::Again
            .send(|| box_in_place(|| client.del(key)))
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.run_flag_script(
            Sending::Once,
            &self.scripts.compare_and_delete,
            &[key],
            || vec![Value::from(expected)],
        )
        .await
    }

    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_size(value.len())?;
        let same_slot = || {
            fred::util::redis_keyslot(old_key.as_bytes())
                == fred::util::redis_keyslot(new_key.as_bytes())
        };
        if self.clustered && !same_slot() {
            // No script can see keys in two Cluster slots: create, then compare-and-delete,
            // undoing on failure.
            return session_core::rotate_in_steps(self, old_key, expected, new_key, value, ttl)
                .await;
        }
        // On the new key's connection, which its later commands use.
        let args = || script_args(expected, value, ttl);
        let keys = [old_key, new_key];
        let reply = match &self.routes {
            Some(routes) => {
                let script = &self.scripts.rotate;
                let op = Op::Script {
                    script,
                    keys: &keys,
                    args: &args,
                };
                box_in_place(|| routes.run(new_key, op)).await?
            }
            None => {
                let client = self.client(new_key);
                box_in_place(|| self.scripts.rotate.run(client, &keys, args))
                    .await
                    .map_err(map_error)?
            }
        };
        reply
            .as_i64()
            .map(|flag| flag == 1)
            .ok_or_else(|| unexpected_reply("EVALSHA", &reply))
    }

    fn invalidations(&self) -> Option<InvalidationFeed> {
        self.feed().cloned()
    }

    fn owner_index(&self) -> bool {
        true
    }

    async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        let now = session_unix_now();
        let ttl = entry.expires_at.saturating_sub(now).max(1);
        let field = format!("{} {} {}", entry.created, entry.last_seen, entry.expires_at);
        self.run_script(Sending::Again, &self.scripts.index_put, &[index], || {
            vec![
                Value::from(entry.key.as_str()),
                Value::from(field.as_str()),
                Value::from(i64::try_from(ttl).unwrap_or(i64::MAX)),
            ]
        })
        .await?;
        Ok(())
    }

    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        self.run_script(Sending::Again, &self.scripts.index_remove, &[index], || {
            vec![Value::from(key)]
        })
        .await?;
        Ok(())
    }

    async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        let now = i64::try_from(session_unix_now()).unwrap_or(i64::MAX);
        let reply = self
            .run_script(Sending::Again, &self.scripts.index_list, &[index], || {
                vec![Value::from(now)]
            })
            .await?;
        index_entries(reply)
    }

    /// `SCAN MATCH prefix* COUNT limit` (`limit` is Redis's hint, so a page may hold a few
    /// more or fewer keys, and a key moved by a rehash during the scan may be listed
    /// twice). On a cluster, every primary in turn: the cursor is `node:cursor`.
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let pattern = format!("{}*", glob_escape(prefix));
        let count = Some(u32::try_from(limit.max(1)).unwrap_or(u32::MAX));
        let client = self.pool.next();
        let bad_cursor = || StoreError::InvalidKey("not a cursor of this store's scan".to_owned());
        if !self.clustered {
            let cursor = cursor.unwrap_or_else(|| "0".to_owned());
            if cursor.is_empty() || !cursor.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_cursor());
            }
            let reply: Value = Sending::Again
                .send(|| client.scan_page(cursor.as_str(), pattern.as_str(), count, None))
                .await
                .map_err(map_error)?;
            let (next, keys) = scan_reply(reply)?;
            return Ok(ScanPage {
                keys,
                next: (next != "0").then_some(next),
            });
        }
        // Per-master pools, or fred's cluster client addressed node by node.
        let (masters, cluster_nodes) = match &self.routes {
            Some(routes) => (routes.primaries(), Vec::new()),
            None => (
                Vec::new(),
                client
                    .cached_cluster_state()
                    .map(|state| state.unique_primary_nodes())
                    .unwrap_or_default(),
            ),
        };
        let nodes = masters.len().max(cluster_nodes.len());
        if nodes == 0 {
            return Err(StoreError::unavailable(
                "the cluster's primaries are not known yet",
            ));
        }
        let (node, cursor) = match cursor {
            None => (0, "0".to_owned()),
            Some(cursor) => {
                let (node, cursor) = cursor.split_once(':').ok_or_else(bad_cursor)?;
                let node: usize = node.parse().map_err(|_| bad_cursor())?;
                if node >= nodes || !cursor.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad_cursor());
                }
                (node, cursor.to_owned())
            }
        };
        let reply: Value = match masters.get(node) {
            Some(master) => master.scan_page(cursor, pattern, count, None).await,
            None => {
                client
                    .with_cluster_node(&cluster_nodes[node])
                    .scan_page(cursor, pattern, count, None)
                    .await
            }
        }
        .map_err(map_error)?;
        let (next, keys) = scan_reply(reply)?;
        let next = if next != "0" {
            Some(format!("{node}:{next}"))
        } else if node + 1 < nodes {
            Some(format!("{}:0", node + 1))
        } else {
            None
        };
        Ok(ScanPage { keys, next })
    }
}

/// Now in Unix seconds.
fn session_unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The entries of an index-list reply (key, entry, key, entry...). A field that is not
/// `"created last_seen expires_at"` (written by something else) is skipped.
fn index_entries(reply: Value) -> Result<Vec<IndexEntry>, StoreError> {
    let flat = match reply {
        Value::Array(flat) => flat,
        Value::Null => Vec::new(),
        other => return Err(unexpected_reply("the index list script", &other)),
    };
    let text = |value: Value| {
        value
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let mut entries = Vec::with_capacity(flat.len() / 2);
    let mut values = flat.into_iter();
    while let (Some(key), Some(entry)) = (values.next(), values.next()) {
        let (Some(key), Some(entry)) = (text(key), text(entry)) else {
            continue;
        };
        let times: Vec<u64> = entry.split(' ').filter_map(|n| n.parse().ok()).collect();
        if let [created, last_seen, expires_at] = times[..] {
            entries.push(IndexEntry {
                key,
                created,
                last_seen,
                expires_at,
            });
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_whole_seconds_at_least_one() {
        assert_eq!(ttl_seconds(Duration::from_secs(2_678_400)), 2_678_400);
        assert_eq!(ttl_seconds(Duration::from_millis(1_999)), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(2_999)), 2);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
        assert_eq!(ttl_seconds(Duration::MAX), i64::MAX);
    }

    #[test]
    fn pttl_replies() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(expiry_from_pttl(-2, now), None);
        assert_eq!(expiry_from_pttl(-1, now), Some(None));
        assert_eq!(
            expiry_from_pttl(1_500, now),
            Some(Some(now + Duration::from_millis(1_500)))
        );
    }

    #[test]
    fn get_replies() {
        assert_eq!(reply_bytes(Value::Null).ok(), Some(None));
        assert_eq!(
            reply_bytes(Value::from(&b"\x81\xa1a\x01"[..])).ok(),
            Some(Some(b"\x81\xa1a\x01".to_vec()))
        );
        assert_eq!(
            reply_bytes(Value::from("text")).ok(),
            Some(Some(b"text".to_vec()))
        );
        assert!(matches!(
            reply_bytes(Value::Integer(3)),
            Err(StoreError::Backend(_))
        ));
    }

    #[test]
    fn load_script_replies() {
        assert_eq!(load_reply(Value::Null).ok(), Some(None));
        let found = Value::Array(vec![Value::from(&b"\x80"[..]), Value::Integer(1_500)]);
        assert_eq!(
            load_reply(found).ok(),
            Some(Some((b"\x80".to_vec(), 1_500)))
        );
        for malformed in [
            Value::Integer(1),
            Value::Array(vec![]),
            Value::Array(vec![Value::Integer(1_500)]),
            Value::Array(vec![Value::from("a"), Value::from("b")]),
            Value::Array(vec![Value::Null, Value::Integer(1_500)]),
            Value::Array(vec![Value::from("a"), Value::from("b"), Value::Integer(1)]),
        ] {
            assert!(
                matches!(load_reply(malformed.clone()), Err(StoreError::Backend(_))),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn oversized_values_are_refused_before_sending() {
        assert!(check_size(16).is_ok());
        assert!(check_size(MAX_VALUE_BYTES).is_ok());
        match check_size(MAX_VALUE_BYTES + 1) {
            Err(StoreError::TooLarge { size, limit }) => {
                assert_eq!((size, limit), (MAX_VALUE_BYTES + 1, MAX_VALUE_BYTES))
            }
            other => panic!("{other:?}"),
        }
    }
}

/// `prefix` as a literal in a `SCAN MATCH` glob: `*`, `?`, `[`, `]` and backslash escaped.
fn glob_escape(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// SCAN's reply: `[cursor, [key, …]]`.
fn scan_reply(reply: Value) -> Result<(String, Vec<String>), StoreError> {
    let Value::Array(mut parts) = reply else {
        return Err(unexpected_reply("SCAN", &reply));
    };
    if parts.len() != 2 {
        return Err(unexpected_reply("SCAN", &Value::Array(parts)));
    }
    let keys = parts.pop().unwrap_or(Value::Null);
    let cursor = parts.pop().unwrap_or(Value::Null);
    let cursor = cursor
        .as_string()
        .ok_or_else(|| unexpected_reply("SCAN", &cursor))?;
    let keys = match keys {
        Value::Array(keys) => keys
            .iter()
            .map(|key| key.as_string().ok_or_else(|| unexpected_reply("SCAN", key)))
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(unexpected_reply("SCAN", &other)),
    };
    Ok((cursor, keys))
}

#[cfg(test)]
mod scan_tests {
    #[test]
    fn glob_characters_of_the_prefix_are_literal() {
        assert_eq!(super::glob_escape("session:"), "session:");
        assert_eq!(super::glob_escape(r"a*b?[c]\\"), r"a\*b\?\[c\]\\\\");
    }
}
