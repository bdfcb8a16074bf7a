//! Server-assisted client-side caching: every connection of the pool asks Redis to track
//! the keys it reads (`CLIENT TRACKING ON NOLOOP`, RESP3), and the invalidations Redis
//! pushes feed session-core's cache through an [`InvalidationFeed`].
//!
//! What keeps it exact:
//! - the commands for one key always go to the same connection (see
//!   [`connection_for`]), so NOLOOP hides this process's own writes from itself, and the
//!   scripts that write read the key back (`EXISTS`) so that the key stays tracked after
//!   the write;
//! - a connection that drops or reconnects turns tracking off in the feed (the cache is
//!   flushed and does not fill) until every connection tracks again, since invalidations
//!   may have been missed meanwhile;
//! - a listener that falls behind (its channel overflowed) flushes the cache.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, EventInterface, KeysInterface, TrackingInterface};
use fred::types::{Expiration, Key};
use session_core::InvalidationFeed;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// How long the start-up check waits for Redis to report a change.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The index of the connection (of `connections`) that the commands for `key` use: always
/// the same one, so that client tracking's NOLOOP hides this store's own writes from
/// itself.
pub(crate) fn connection_for(key: &str, connections: usize) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % connections.max(1) as u64) as usize
}

/// Tasks that follow tracking connections; aborted when dropped.
pub(crate) struct Tasks(pub(crate) Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Tracking on every connection of a pool, and the tasks that listen for invalidations and
/// reconnections. Dropped with the last clone of the store: the tasks stop.
pub(crate) struct Tracking {
    pub(crate) gate: Arc<Gate>,
    _tasks: Tasks,
}

/// Counts the connections feeding one cache that do not track now (over every pool, in a
/// Cluster): the feed tracks only while none is off.
pub(crate) struct Gate {
    pub(crate) feed: InvalidationFeed,
    off: Mutex<usize>,
}

impl Gate {
    pub(crate) fn new() -> Arc<Gate> {
        Arc::new(Gate {
            feed: InvalidationFeed::new(),
            off: Mutex::new(0),
        })
    }

    /// One connection stopped tracking: off at once (flushes every cache) until the guard
    /// is dropped (the connection tracks again, or is no longer used).
    fn connection_off(self: &Arc<Gate>) -> OffGuard {
        let mut off = self.off.lock().unwrap_or_else(PoisonError::into_inner);
        *off += 1;
        self.feed.set_tracking(false);
        OffGuard(self.clone())
    }
}

/// Held while one connection does not track.
struct OffGuard(Arc<Gate>);

impl Drop for OffGuard {
    fn drop(&mut self) {
        let mut off = self.0.off.lock().unwrap_or_else(PoisonError::into_inner);
        *off -= 1;
        // Under the lock, so that a connection lost meanwhile cannot be overwritten.
        self.0.feed.set_tracking(*off == 0);
    }
}

impl Tracking {
    /// Turns tracking on for every connection of `pool`, checks that Redis reports a change
    /// to a key one of them wrote (Redis 6 or later, scripts tracked as this store uses
    /// them), and starts the listeners. `None`, with a warning, when the server cannot.
    pub(crate) async fn start(pool: &Pool) -> Option<Tracking> {
        if !enable_checked(&[pool], |_| true).await {
            return None;
        }
        let gate = Gate::new();
        let tasks = follow(pool, &gate, true);
        gate.feed.set_tracking(true);
        Some(Tracking {
            gate,
            _tasks: tasks,
        })
    }
}

/// Turns tracking on for every connection of `pools` and probes it on the first with a key
/// `routed` accepts (a key the first pool's server holds). False, with a warning and
/// tracking off again, when the server cannot.
pub(crate) async fn enable_checked(pools: &[&Pool], routed: impl Fn(&str) -> bool) -> bool {
    let clients = || pools.iter().flat_map(|pool| pool.clients());
    for client in clients() {
        if let Err(error) = enable(client).await {
            tracing::warn!(%error, "Redis client tracking unavailable; sessions are not cached in process");
            return false;
        }
    }
    let Some(first) = clients().next() else {
        return false;
    };
    if let Err(reason) = probe(first, routed).await {
        tracing::warn!(
            reason,
            "Redis does not report changes to tracked keys; sessions are not cached in process"
        );
        for client in clients() {
            let _ = client.stop_tracking().await;
        }
        return false;
    }
    true
}

/// Starts the listeners of every connection of `pool`, feeding `gate`. `tracking_now`:
/// tracking is already on (else each connection turns it on first, holding the gate off).
pub(crate) fn follow(pool: &Pool, gate: &Arc<Gate>, tracking_now: bool) -> Tasks {
    let mut tasks = Vec::new();
    for client in pool.clients() {
        tasks.push(tokio::spawn(listen(client.clone(), gate.feed.clone())));
        let off = (!tracking_now).then(|| gate.connection_off());
        tasks.push(tokio::spawn(follow_connection(
            client.clone(),
            gate.clone(),
            off,
        )));
    }
    Tasks(tasks)
}

/// `CLIENT TRACKING ON NOLOOP` on one connection.
async fn enable(client: &Client) -> Result<(), fred::error::Error> {
    client
        .start_tracking(Vec::<String>::new(), false, false, false, true)
        .await
}

/// Writes a scratch key (one `routed` accepts) through `tracked` the way the store creates
/// a session, changes it through another connection, and waits for Redis to say so.
async fn probe(tracked: &Client, routed: impl Fn(&str) -> bool) -> Result<(), String> {
    let base = format!(
        "session-redis:tracking-probe:{}",
        session_core::SessionId::generate(12)
            .map_err(|error| error.to_string())?
            .as_str()
    );
    let key = (0u32..100_000)
        .map(|n| format!("{base}:{n}"))
        .find(|key| routed(key))
        .unwrap_or(base);
    let mut invalidations = tracked.invalidation_rx();
    let created = crate::scripts::Scripts::new()
        .create
        .run(tracked, &[key.as_str()], || {
            vec![fred::types::Value::from("1"), 10.into()]
        })
        .await
        .map_err(|error| error.to_string())?;
    if created.as_i64() != Some(1) {
        return Err(format!("the probe key could not be created: {created:?}"));
    }
    let other = tracked.clone_new();
    let result = async {
        other.init().await.map_err(|error| error.to_string())?;
        let _: fred::types::Value = other
            .set(key.as_str(), "2", Some(Expiration::EX(10)), None, false)
            .await
            .map_err(|error| error.to_string())?;
        let reported = tokio::time::timeout(PROBE_TIMEOUT, async {
            loop {
                match invalidations.recv().await {
                    Ok(invalidation) if invalidation.keys.iter().any(|k| names(k, &key)) => {
                        return true;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return false,
                }
            }
        })
        .await;
        match reported {
            Ok(true) => Ok(()),
            _ => Err(format!("no invalidation within {PROBE_TIMEOUT:?}")),
        }
    }
    .await;
    let _: Result<i64, _> = other.del(key.as_str()).await;
    let _ = other.quit().await;
    result
}

fn names(key: &Key, name: &str) -> bool {
    key.as_bytes() == name.as_bytes()
}

/// Hands every invalidation of one connection to the feed. An empty list (or a listener
/// that fell behind) means anything may have changed.
async fn listen(client: Client, feed: InvalidationFeed) {
    let mut invalidations = client.invalidation_rx();
    loop {
        match invalidations.recv().await {
            Ok(invalidation) if invalidation.keys.is_empty() => feed.invalidate_all(),
            Ok(invalidation) => {
                for key in &invalidation.keys {
                    feed.invalidate(key.as_bytes());
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(
                    missed,
                    "Redis invalidations overflowed; the cache is flushed"
                );
                feed.invalidate_all();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Follows one connection: when it fails, stalls or reconnects, tracking is off (what it
/// tracked may be lost, and invalidations may have been missed) until it tracks again.
/// `CLIENT TRACKING ON` is idempotent, and sent while the connection is being re-established
/// it waits and runs on the new one, before the commands sent after it. `off`: the
/// connection does not track yet.
async fn follow_connection(client: Client, gate: Arc<Gate>, mut off: Option<OffGuard>) {
    let mut errors = client.error_rx();
    let mut unresponsive = client.unresponsive_rx();
    let mut reconnects = client.reconnect_rx();
    loop {
        if off.is_some() {
            let mut pause = Duration::from_millis(50);
            while let Err(error) = enable(&client).await {
                tracing::debug!(%error, "re-enabling Redis client tracking");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            drop(off.take());
        }
        let closed = tokio::select! {
            event = errors.recv() => matches!(event, Err(RecvError::Closed)),
            event = unresponsive.recv() => matches!(event, Err(RecvError::Closed)),
            event = reconnects.recv() => matches!(event, Err(RecvError::Closed)),
        };
        if closed {
            return;
        }
        off = Some(gate.connection_off());
    }
}
