//! Server-assisted client-side caching: every connection of the pool asks Redis to track
//! the keys it reads (`CLIENT TRACKING ON NOLOOP`, RESP3), and the invalidations Redis
//! pushes feed session-core's cache through an [`InvalidationFeed`].
//!
//! What keeps it exact:
//! - the commands for one key always go to the same connection (see `RedisStore::client`),
//!   so NOLOOP hides this process's own writes from itself, and the scripts that write read
//!   the key back (`EXISTS`) so that the key stays tracked after the write;
//! - a connection that drops or reconnects turns tracking off in the feed (the cache is
//!   flushed and does not fill) until every connection tracks again, since invalidations
//!   may have been missed meanwhile;
//! - a listener that falls behind (its channel overflowed) flushes the cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, EventInterface, KeysInterface, TrackingInterface};
use fred::types::{Expiration, Key};
use session_core::InvalidationFeed;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// How long the start-up check waits for Redis to report a change.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Tracking on every connection of a pool, and the tasks that listen for invalidations and
/// reconnections. Dropped with the last clone of the store: the tasks stop.
pub(crate) struct Tracking {
    pub(crate) feed: InvalidationFeed,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Tracking {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Per connection: whether it tracks now.
struct Connections {
    feed: InvalidationFeed,
    tracking: Box<[AtomicBool]>,
}

impl Connections {
    fn set(&self, index: usize, tracking: bool) {
        self.tracking[index].store(tracking, Ordering::SeqCst);
        let all = self.tracking.iter().all(|t| t.load(Ordering::SeqCst));
        // Off at once (flushes every cache); on only once every connection tracks.
        self.feed.set_tracking(all);
    }
}

impl Tracking {
    /// Turns tracking on for every connection of `pool`, checks that Redis reports a change
    /// to a key one of them wrote (Redis 6 or later, scripts tracked as this store uses
    /// them), and starts the listeners. `None`, with a warning, when the server cannot.
    pub(crate) async fn start(pool: &Pool) -> Option<Tracking> {
        let clients = pool.clients();
        for client in clients {
            if let Err(error) = enable(client).await {
                tracing::warn!(%error, "Redis client tracking unavailable; sessions are not cached in process");
                return None;
            }
        }
        let feed = InvalidationFeed::new();
        let connections = Arc::new(Connections {
            feed: feed.clone(),
            tracking: clients.iter().map(|_| AtomicBool::new(true)).collect(),
        });
        if let Err(reason) = probe(&clients[0]).await {
            tracing::warn!(
                reason,
                "Redis does not report changes to tracked keys; sessions are not cached in process"
            );
            for client in clients {
                let _ = client.stop_tracking().await;
            }
            return None;
        }
        let mut tasks = Vec::new();
        for (index, client) in clients.iter().enumerate() {
            tasks.push(tokio::spawn(listen(client.clone(), feed.clone())));
            tasks.push(tokio::spawn(follow_connection(
                client.clone(),
                index,
                connections.clone(),
            )));
        }
        feed.set_tracking(true);
        Some(Tracking { feed, tasks })
    }
}

/// `CLIENT TRACKING ON NOLOOP` on one connection (every node's, in a Cluster).
async fn enable(client: &Client) -> Result<(), fred::error::Error> {
    client
        .start_tracking(Vec::<String>::new(), false, false, false, true)
        .await
}

/// Writes a scratch key through `tracked` the way the store creates a session, changes it
/// through another connection, and waits for Redis to say so.
async fn probe(tracked: &Client) -> Result<(), String> {
    let key = format!(
        "session-redis:tracking-probe:{}",
        session_core::SessionId::generate(12)
            .map_err(|error| error.to_string())?
            .as_str()
    );
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
/// it waits and runs on the new one, before the commands sent after it.
async fn follow_connection(client: Client, index: usize, connections: Arc<Connections>) {
    let mut errors = client.error_rx();
    let mut unresponsive = client.unresponsive_rx();
    let mut reconnects = client.reconnect_rx();
    loop {
        let closed = tokio::select! {
            event = errors.recv() => matches!(event, Err(RecvError::Closed)),
            event = unresponsive.recv() => matches!(event, Err(RecvError::Closed)),
            event = reconnects.recv() => matches!(event, Err(RecvError::Closed)),
        };
        if closed {
            return;
        }
        connections.set(index, false);
        let mut pause = Duration::from_millis(50);
        while let Err(error) = enable(&client).await {
            tracing::debug!(%error, "re-enabling Redis client tracking");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
        connections.set(index, true);
    }
}
