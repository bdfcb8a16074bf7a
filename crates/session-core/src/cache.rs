//! The in-process cache tier: recently used sessions kept in memory, so that a read needs no
//! store round trip and a write is one compare-and-set against the cached bytes.
//!
//! Correctness never depends on the cache: every write is still a compare-and-set, so a
//! stale entry costs one failed attempt (then core reloads and re-applies), never an update.
//! What the cache changes is how fresh a *read* is:
//!
//! - **Coherent** (a store with an [`InvalidationFeed`], e.g. Redis with client tracking):
//!   another writer, a delete or an expiry invalidates the entry; a reconnect flushes the
//!   whole cache. A write acknowledged in one process is seen by the others once its
//!   invalidation arrives. As a safety net for an invalidation the store missed, no entry
//!   is served longer than `SESSION_CACHE_MAX_STALENESS` (default 5 minutes) after it was
//!   read or written.
//! - **Bounded staleness** (any other store, opt-in): an entry is served for at most
//!   `SESSION_CACHE_MAX_STALENESS` after it was read or written. Exact for a single process,
//!   since every write of that process goes through the cache.
//!
//! Memory is bounded by entries and by bytes. Eviction is quick_cache's S3-FIFO: an entry
//! used again stays, one used once goes first, which keeps active sessions cached through a
//! burst of one-off visitors (crawlers, health checks with cookies).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::data::SessionData;

/// Number of key buckets whose invalidations are counted separately. A fill checks its
/// bucket's count before and after reading the store; more buckets mean fewer fills
/// discarded because an unrelated key of the same bucket changed meanwhile.
const BUCKETS: usize = 4096;

/// How a store tells core which cached entries another writer has changed.
///
/// A store that can notice other writers (Redis with `CLIENT TRACKING`) creates one feed,
/// returns it from [`SessionStore::invalidations`](crate::SessionStore::invalidations), and
/// calls [`invalidate`](Self::invalidate) for every changed key, and
/// [`set_tracking`](Self::set_tracking)`(false)` whenever it may have missed some (a
/// disconnect), `true` again once every connection tracks once more. Core's caches
/// subscribe to it. Cheap to clone.
#[derive(Clone)]
pub struct InvalidationFeed {
    inner: Arc<FeedInner>,
}

struct FeedInner {
    /// Bumped by every flush: fills that started before it do not land.
    epoch: AtomicU64,
    /// Per bucket of keys, bumped by every invalidation of a key in it.
    buckets: Box<[AtomicU64]>,
    /// Whether the server currently reports changes (false while reconnecting).
    tracking: AtomicBool,
    listeners: Mutex<Vec<Weak<dyn Listener>>>,
    /// How many invalidations (and flushes) arrived, for whoever waits for the next one.
    events: tokio::sync::watch::Sender<u64>,
}

/// A cache subscribed to a feed.
pub(crate) trait Listener: Send + Sync {
    fn forget(&self, key: &str);
    fn forget_all(&self);
}

impl Default for InvalidationFeed {
    fn default() -> Self {
        InvalidationFeed::new()
    }
}

impl std::fmt::Debug for InvalidationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvalidationFeed")
            .field("tracking", &self.is_tracking())
            .finish_non_exhaustive()
    }
}

/// What a fill saw before it read the store; the fill lands only if nothing changed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    epoch: u64,
    bucket: u64,
}

impl InvalidationFeed {
    /// A feed that does not track yet: nothing is cached until the store calls
    /// [`set_tracking`](Self::set_tracking)`(true)`.
    pub fn new() -> InvalidationFeed {
        InvalidationFeed {
            inner: Arc::new(FeedInner {
                epoch: AtomicU64::new(0),
                buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
                tracking: AtomicBool::new(false),
                listeners: Mutex::new(Vec::new()),
                events: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// Another writer changed or removed `key` (or it expired): every cache drops it, and
    /// reads of it that are in flight do not fill the cache.
    pub fn invalidate(&self, key: &[u8]) {
        self.inner.buckets[bucket(key)].fetch_add(1, Ordering::SeqCst);
        if let Ok(key) = std::str::from_utf8(key) {
            self.each_listener(|listener| listener.forget(key));
        }
        self.inner.events.send_modify(|count| *count += 1);
    }

    /// Any key may have changed (the server flushed its tracking table, a connection was
    /// lost): every cache empties.
    pub fn invalidate_all(&self) {
        self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        self.each_listener(|listener| listener.forget_all());
        self.inner.events.send_modify(|count| *count += 1);
    }

    /// A receiver that changes with every invalidation or flush, after the caches have
    /// dropped what it concerns, and when tracking comes back: for tests and tools that
    /// wait for the store's report of another writer instead of sleeping.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.events.subscribe()
    }

    /// Whether the server reports changes now. Turning it off flushes every cache and
    /// keeps them from filling until it is on again.
    pub fn set_tracking(&self, tracking: bool) {
        let was = self.inner.tracking.swap(tracking, Ordering::SeqCst);
        if !tracking {
            self.invalidate_all();
        } else if !was {
            self.inner.events.send_modify(|count| *count += 1);
        }
    }

    /// Whether the server reports changes now.
    pub fn is_tracking(&self) -> bool {
        self.inner.tracking.load(Ordering::SeqCst)
    }

    pub(crate) fn subscribe(&self, listener: Weak<dyn Listener>) {
        let mut listeners = lock(&self.inner.listeners);
        listeners.retain(|listener| listener.strong_count() > 0);
        listeners.push(listener);
    }

    /// Taken before a read of `key` goes to the store; `None` while not tracking.
    pub(crate) fn ticket(&self, key: &str) -> Option<Ticket> {
        if !self.is_tracking() {
            return None;
        }
        Some(Ticket {
            epoch: self.inner.epoch.load(Ordering::SeqCst),
            bucket: self.inner.buckets[bucket(key.as_bytes())].load(Ordering::SeqCst),
        })
    }

    /// Whether nothing that concerns `key` happened since `ticket` was taken.
    pub(crate) fn unchanged_since(&self, key: &str, ticket: Ticket) -> bool {
        self.ticket(key) == Some(ticket)
    }

    fn each_listener(&self, f: impl Fn(&dyn Listener)) {
        let listeners: Vec<_> = lock(&self.inner.listeners)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for listener in listeners {
            f(&*listener);
        }
    }
}

fn bucket(key: &[u8]) -> usize {
    (crate::stripe::stripe_hash(key) % BUCKETS as u64) as usize
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A cached session: the stored bytes (the compare-and-set's expected value) and their
/// decoded form.
pub(crate) struct Entry {
    pub(crate) bytes: Vec<u8>,
    pub(crate) data: Arc<SessionData>,
    pub(crate) expires_at: Option<SystemTime>,
    /// When this process last wrote the session's owner-index entry, in Unix seconds (0:
    /// not known here), so that writes within `LAST_SEEN_RESOLUTION` of it skip the
    /// index refresh.
    pub(crate) indexed_at: u64,
    /// When the store was last read or written for this entry.
    filled_at: Instant,
}

impl Entry {
    pub(crate) fn new(
        bytes: Vec<u8>,
        data: Arc<SessionData>,
        expires_at: Option<SystemTime>,
    ) -> Arc<Entry> {
        Entry::indexed(bytes, data, expires_at, 0)
    }

    /// An entry whose owner-index entry this process wrote at `indexed_at`.
    pub(crate) fn indexed(
        bytes: Vec<u8>,
        data: Arc<SessionData>,
        expires_at: Option<SystemTime>,
        indexed_at: u64,
    ) -> Arc<Entry> {
        Arc::new(Entry {
            bytes,
            data,
            expires_at,
            indexed_at,
            filled_at: Instant::now(),
        })
    }

    /// Memory an entry holds, for the byte limit: its bytes, and the decoded form
    /// estimated at three times their size plus the key.
    fn weight(key: &str, entry: &Entry) -> u64 {
        (key.len() + 4 * entry.bytes.len() + 128) as u64
    }
}

/// How entries stay fresh.
#[derive(Clone)]
enum Freshness {
    /// Invalidated by the store, and never older than the duration: a safety net for an
    /// invalidation the store missed (Redis's flush-everything message, which the client
    /// library does not pass on).
    Coherent(InvalidationFeed, Duration),
    Staleness(Duration),
}

/// The longest a coherent entry is served without reading the store, unless
/// `SESSION_CACHE_MAX_STALENESS` says otherwise.
pub(crate) const COHERENT_MAX_AGE: Duration = Duration::from_secs(300);

/// Weighs entries for the byte limit, never below `floor` so that the byte limit bounds the
/// number of entries too.
#[derive(Clone)]
struct EntryWeight {
    floor: u64,
}

impl quick_cache::Weighter<String, Arc<Entry>> for EntryWeight {
    fn weight(&self, key: &String, entry: &Arc<Entry>) -> u64 {
        Entry::weight(key, entry).max(self.floor)
    }
}

/// The cache of one manager.
pub(crate) struct Cache {
    entries: quick_cache::sync::Cache<String, Arc<Entry>, EntryWeight>,
    freshness: Freshness,
    /// Per bucket of keys, bumped by every revocation of a key in it (this manager ended
    /// the session): fills whose read started before it do not land, whatever the
    /// freshness rule, so a revoked session is never served from the cache again.
    revocations: Box<[AtomicU64]>,
}

/// What a fill saw before it read the store: the feed's ticket (coherent caches) and the
/// revocations of the key's bucket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FillTicket {
    feed: Option<Ticket>,
    revocations: u64,
}

/// The limits and the freshness rule of a cache, from the configuration and the store.
pub(crate) struct CacheSettings {
    pub(crate) max_entries: u64,
    pub(crate) max_bytes: u64,
    pub(crate) feed: Option<InvalidationFeed>,
    pub(crate) max_staleness: Option<Duration>,
}

impl Cache {
    /// A cache when the settings allow one: a store with a feed, or a stated staleness.
    pub(crate) fn new(settings: CacheSettings) -> Option<Arc<Cache>> {
        let freshness = match (settings.feed, settings.max_staleness) {
            (Some(feed), staleness) => {
                Freshness::Coherent(feed, staleness.unwrap_or(COHERENT_MAX_AGE))
            }
            (None, Some(staleness)) => Freshness::Staleness(staleness),
            (None, None) => return None,
        };
        let max_entries = settings.max_entries.max(1);
        let max_bytes = settings.max_bytes.max(1);
        // One weight bounds both: every entry weighs at least max_bytes / max_entries, so
        // a total of max_bytes allows at most max_entries entries and at most max_bytes.
        let floor = (max_bytes / max_entries).max(1);
        // Sharded by quick_cache itself (each shard holds a share of both limits); an entry
        // heavier than one shard's share is simply not cached.
        let entries = quick_cache::sync::Cache::with_weighter(
            usize::try_from(max_entries).unwrap_or(usize::MAX),
            max_bytes,
            EntryWeight { floor },
        );
        let cache = Arc::new(Cache {
            entries,
            freshness: freshness.clone(),
            revocations: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        });
        if let Freshness::Coherent(feed, _) = &freshness {
            let listener: Arc<dyn Listener> = cache.clone();
            feed.subscribe(Arc::downgrade(&listener));
        }
        Some(cache)
    }

    /// The entry for a read, when it is fresh enough to skip the store.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let entry = self.entries.get(key)?;
        let fresh = match &self.freshness {
            Freshness::Coherent(feed, max_age) => {
                feed.is_tracking() && entry.filled_at.elapsed() <= *max_age
            }
            Freshness::Staleness(staleness) => entry.filled_at.elapsed() <= *staleness,
        };
        let live = entry.expires_at.is_none_or(|at| at > SystemTime::now());
        if fresh && live {
            Some(entry)
        } else {
            self.entries.remove(key);
            None
        }
    }

    /// Call before reading or writing `key` in the store; pass the result to
    /// [`fill`](Self::fill) afterwards.
    pub(crate) fn ticket(&self, key: &str) -> Option<FillTicket> {
        let feed = match &self.freshness {
            Freshness::Coherent(feed, _) => Some(feed.ticket(key)?),
            // Only this manager's revocations invalidate a staleness-bounded entry.
            Freshness::Staleness(_) => None,
        };
        Some(FillTicket {
            feed,
            revocations: self.revocations(key),
        })
    }

    fn revocations(&self, key: &str) -> u64 {
        self.revocations[bucket(key.as_bytes())].load(Ordering::SeqCst)
    }

    /// Keeps what the store holds for `key` (just read, or just written by this manager),
    /// unless an invalidation arrived since `ticket` was taken: then the entry might
    /// already be stale, and it is dropped instead. `None` forgets the key.
    pub(crate) fn fill(&self, key: &str, ticket: Option<FillTicket>, entry: Option<Arc<Entry>>) {
        let (Some(ticket), Some(entry)) = (ticket, entry) else {
            self.entries.remove(key);
            return;
        };
        self.entries.insert(key.to_owned(), entry);
        // The invalidation or revocation may have been handled before the insert (it found
        // nothing to drop): check again after it, and undo.
        let invalidated = match (&self.freshness, ticket.feed) {
            (Freshness::Coherent(feed, _), Some(feed_ticket)) => {
                !feed.unchanged_since(key, feed_ticket)
            }
            _ => false,
        };
        if invalidated || self.revocations(key) != ticket.revocations {
            self.entries.remove(key);
        }
    }

    /// This manager ended the session under `key` (revocation): drops it, and keeps every
    /// read of it that started before from filling the cache. Call after the removal.
    pub(crate) fn revoke(&self, key: &str) {
        self.revocations[bucket(key.as_bytes())].fetch_add(1, Ordering::SeqCst);
        self.entries.remove(key);
    }

    /// Drops `key` (this manager deleted it, or a write's outcome is unknown).
    pub(crate) fn forget(&self, key: &str) {
        self.entries.remove(key);
    }

    /// Entries held now (pending evictions done first), for tests and metrics.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.entries.len() as u64
    }
}

impl Listener for Cache {
    fn forget(&self, key: &str) {
        self.entries.remove(key);
    }

    fn forget_all(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Value;

    fn entry(n: i64) -> Arc<Entry> {
        let mut data = SessionData::new();
        data.insert("n", Value::from(n));
        Entry::new(vec![n as u8; 8], Arc::new(data), None)
    }

    fn coherent(feed: &InvalidationFeed, max_entries: u64) -> Arc<Cache> {
        Cache::new(CacheSettings {
            max_entries,
            max_bytes: 1 << 30,
            feed: Some(feed.clone()),
            max_staleness: None,
        })
        .expect("a feed enables the cache")
    }

    #[test]
    fn no_feed_and_no_staleness_means_no_cache() {
        assert!(Cache::new(CacheSettings {
            max_entries: 10,
            max_bytes: 1000,
            feed: None,
            max_staleness: None,
        })
        .is_none());
    }

    #[test]
    fn an_invalidation_drops_the_entry_and_a_racing_fill() {
        let feed = InvalidationFeed::new();
        feed.set_tracking(true);
        let cache = coherent(&feed, 100);
        let ticket = cache.ticket("k");
        cache.fill("k", ticket, Some(entry(1)));
        assert!(cache.get("k").is_some());
        feed.invalidate(b"k");
        assert!(cache.get("k").is_none());

        // The read/invalidate race: the invalidation is handled while the read is in
        // flight, before the fill; the fill must not land.
        let ticket = cache.ticket("k");
        feed.invalidate(b"k");
        cache.fill("k", ticket, Some(entry(2)));
        assert!(
            cache.get("k").is_none(),
            "a fill after an invalidation landed"
        );
    }

    #[test]
    fn a_revocation_drops_the_entry_and_refuses_fills_in_flight() {
        for staleness in [false, true] {
            let feed = InvalidationFeed::new();
            feed.set_tracking(true);
            let cache = if staleness {
                Cache::new(CacheSettings {
                    max_entries: 10,
                    max_bytes: 1 << 20,
                    feed: None,
                    max_staleness: Some(Duration::from_secs(60)),
                })
                .unwrap()
            } else {
                coherent(&feed, 10)
            };
            let ticket = cache.ticket("k");
            cache.fill("k", ticket, Some(entry(1)));
            assert!(cache.get("k").is_some());
            // A read starts, the session is revoked, the read's fill arrives.
            let in_flight = cache.ticket("k");
            cache.revoke("k");
            assert!(cache.get("k").is_none(), "revoked entry still cached");
            cache.fill("k", in_flight, Some(entry(1)));
            assert!(
                cache.get("k").is_none(),
                "a read from before the revocation refilled the cache (staleness: {staleness})"
            );
            // A read that starts after the revocation fills as usual.
            let later = cache.ticket("k");
            cache.fill("k", later, Some(entry(2)));
            assert!(cache.get("k").is_some());
        }
    }

    #[test]
    fn losing_tracking_flushes_and_refuses_fills() {
        let feed = InvalidationFeed::new();
        feed.set_tracking(true);
        let cache = coherent(&feed, 100);
        for key in ["a", "b"] {
            let ticket = cache.ticket(key);
            cache.fill(key, ticket, Some(entry(1)));
        }
        let ticket = cache.ticket("c");
        feed.set_tracking(false);
        assert!(cache.get("a").is_none() && cache.get("b").is_none());
        assert!(cache.ticket("c").is_none(), "no fills while not tracking");
        feed.set_tracking(true);
        cache.fill("c", ticket, Some(entry(1)));
        assert!(
            cache.get("c").is_none(),
            "a fill from before the flush landed"
        );
    }

    #[test]
    fn staleness_bounds_how_long_an_entry_is_served() {
        let cache = Cache::new(CacheSettings {
            max_entries: 10,
            max_bytes: 1 << 20,
            feed: None,
            max_staleness: Some(Duration::ZERO),
        })
        .unwrap();
        let ticket = cache.ticket("k");
        cache.fill("k", ticket, Some(entry(1)));
        std::thread::sleep(Duration::from_millis(2));
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn coherent_entries_have_a_maximum_age_too() {
        let feed = InvalidationFeed::new();
        feed.set_tracking(true);
        let cache = Cache::new(CacheSettings {
            max_entries: 10,
            max_bytes: 1 << 20,
            feed: Some(feed),
            max_staleness: Some(Duration::ZERO),
        })
        .unwrap();
        let ticket = cache.ticket("k");
        cache.fill("k", ticket, Some(entry(1)));
        std::thread::sleep(Duration::from_millis(2));
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn expired_entries_are_never_served() {
        let feed = InvalidationFeed::new();
        feed.set_tracking(true);
        let cache = coherent(&feed, 10);
        let mut data = SessionData::new();
        data.insert("n", Value::from(1));
        let past = SystemTime::now() - Duration::from_secs(1);
        let ticket = cache.ticket("k");
        cache.fill(
            "k",
            ticket,
            Some(Entry::new(vec![1], Arc::new(data), Some(past))),
        );
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn entries_and_bytes_are_both_bounded() {
        let feed = InvalidationFeed::new();
        feed.set_tracking(true);
        let cache = coherent(&feed, 50);
        for i in 0..500 {
            let key = format!("k{i}");
            let ticket = cache.ticket(&key);
            cache.fill(&key, ticket, Some(entry(i)));
        }
        assert!(cache.len() <= 50, "{} entries", cache.len());

        let small = Cache::new(CacheSettings {
            max_entries: 1000,
            max_bytes: 10_000,
            feed: Some(feed.clone()),
            max_staleness: None,
        })
        .unwrap();
        let large = vec![7u8; 1000];
        for i in 0..100 {
            let key = format!("k{i}");
            let ticket = small.ticket(&key);
            small.fill(
                &key,
                ticket,
                Some(Entry::new(large.clone(), Arc::default(), None)),
            );
        }
        // 1000 bytes weigh over 4000: at most two fit in 10,000.
        assert!(small.len() <= 2, "{} entries", small.len());
    }
}
