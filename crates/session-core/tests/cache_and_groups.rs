//! The cache tier and group commit on MemoryStore, with a test store that can announce
//! invalidations (as Redis's client tracking does) and hold writes at a gate. The same
//! behaviour against real Redis is tested in session-redis.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use session_core::testkit::TestStore;
use session_core::{
    async_trait, IndexEntry, InvalidationFeed, MemoryStore, Session, SessionConfig,
    SessionConfigBuilder, SessionError, SessionManager, SessionStore, StoreError, StoredEntry,
};
use tokio::sync::Semaphore;

/// MemoryStore with call counters, an optional invalidation feed and a gate that
/// compare-and-set waits at while closed.
struct Probe {
    inner: Arc<TestStore<MemoryStore>>,
    feed: Option<InvalidationFeed>,
    gate: Option<Semaphore>,
    /// While set, loads never answer (a black-holed server).
    hang_loads: std::sync::atomic::AtomicBool,
    /// While set, removals from an owner index never answer (the index lives on a server
    /// that went away, as a Redis Cluster master may).
    hang_index_removes: std::sync::atomic::AtomicBool,
    /// How long each owner-index write takes, in milliseconds.
    index_put_delay_ms: std::sync::atomic::AtomicU64,
    /// How long each removal from an owner index takes, in milliseconds.
    index_remove_delay_ms: std::sync::atomic::AtomicU64,
}

impl Probe {
    fn new(feed: bool, gated: bool) -> Arc<Probe> {
        let feed = feed.then(|| {
            let feed = InvalidationFeed::new();
            feed.set_tracking(true);
            feed
        });
        Arc::new(Probe {
            inner: Arc::new(TestStore::new(MemoryStore::new())),
            feed,
            gate: gated.then(|| Semaphore::new(0)),
            hang_loads: Default::default(),
            hang_index_removes: Default::default(),
            index_put_delay_ms: Default::default(),
            index_remove_delay_ms: Default::default(),
        })
    }

    /// The same data behind another feed: another process.
    fn other_process(&self) -> Arc<Probe> {
        let feed = InvalidationFeed::new();
        feed.set_tracking(true);
        Arc::new(Probe {
            inner: self.inner.clone(),
            feed: Some(feed),
            gate: None,
            hang_loads: Default::default(),
            hang_index_removes: Default::default(),
            index_put_delay_ms: Default::default(),
            index_remove_delay_ms: Default::default(),
        })
    }

    fn loads(&self) -> u64 {
        self.inner.counts.reads()
    }

    fn cas(&self) -> u64 {
        self.inner.counts.compare_and_set.load(Ordering::SeqCst)
    }

    fn open_gate(&self, permits: usize) {
        self.gate
            .as_ref()
            .expect("a gated store")
            .add_permits(permits);
    }
}

#[async_trait]
impl SessionStore for Probe {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        if self.hang_loads.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.load(key).await
    }
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.inner.create(key, value, ttl).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        self.inner.compare_and_set(key, expected, value, ttl).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.touch(key, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.inner.compare_and_delete(key, expected).await
    }
    fn invalidations(&self) -> Option<InvalidationFeed> {
        self.feed.clone()
    }
    fn owner_index(&self) -> bool {
        self.inner.owner_index()
    }
    async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        let delay = self.index_put_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.inner.index_put(index, entry).await
    }
    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        if self.hang_index_removes.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let delay = self.index_remove_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.inner.index_remove(index, key).await
    }
    async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        self.inner.index_list(index).await
    }
}

fn manager(store: &Arc<Probe>) -> SessionManager {
    manager_with(store, |config| config)
}

fn manager_with(
    store: &Arc<Probe>,
    configure: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder,
) -> SessionManager {
    let config = configure(SessionConfig::builder()).build().unwrap();
    SessionManager::from_shared(store.clone(), config)
}

/// A new session holding `user`; its id.
async fn login(manager: &SessionManager) -> String {
    let session = manager.open(None);
    session.insert("user", "ann").await.unwrap();
    let outcome = manager.finish(&session).await.unwrap();
    let cookie = outcome.set_cookie.expect("a new session sets its cookie");
    let pair = cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

async fn read(manager: &SessionManager, id: &str, key: &str) -> Option<String> {
    let session = manager.open(Some(id));
    let value = session.get::<String>(key).await.unwrap();
    manager.finish(&session).await.unwrap();
    value
}

async fn write(manager: &SessionManager, id: &str, key: &str, value: &str) {
    let session = manager.open(Some(id));
    session.insert(key, value).await.unwrap();
    manager.finish(&session).await.unwrap();
}

#[tokio::test]
async fn a_cached_session_is_read_and_written_without_loading_it() {
    let store = Probe::new(true, false);
    let manager = manager(&store);
    let id = login(&manager).await;
    for _ in 0..3 {
        assert_eq!(read(&manager, &id, "user").await.as_deref(), Some("ann"));
    }
    write(&manager, &id, "theme", "dark").await;
    assert_eq!(read(&manager, &id, "theme").await.as_deref(), Some("dark"));
    assert_eq!(store.loads(), 0, "every read came from the cache");
    assert_eq!(store.cas(), 1, "the write was one compare-and-set");
}

#[tokio::test]
async fn another_writer_is_seen_once_its_invalidation_arrives() {
    let store = Probe::new(true, false);
    let here = manager(&store);
    let elsewhere_store = store.other_process();
    let elsewhere = manager(&elsewhere_store);
    let id = login(&here).await;
    assert_eq!(read(&here, &id, "user").await.as_deref(), Some("ann"));

    write(&elsewhere, &id, "user", "bob").await;
    // Until the invalidation arrives, this process serves what it had.
    assert_eq!(read(&here, &id, "user").await.as_deref(), Some("ann"));
    store
        .feed
        .as_ref()
        .unwrap()
        .invalidate(format!("session:{id}").as_bytes());
    assert_eq!(read(&here, &id, "user").await.as_deref(), Some("bob"));
}

#[tokio::test]
async fn a_stale_entry_never_loses_an_update() {
    let store = Probe::new(true, false);
    let here = manager(&store);
    let elsewhere = manager(&store.other_process());
    let id = login(&here).await;
    // The other process writes; its invalidation never reaches this one.
    write(&elsewhere, &id, "theme", "dark").await;
    let session = here.open(Some(&id));
    session
        .update("visits", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await
        .unwrap();
    here.finish(&session).await.unwrap();
    assert_eq!(store.cas(), 3, "one stale attempt, then its retry");
    let check = manager(&store.other_process());
    assert_eq!(read(&check, &id, "theme").await.as_deref(), Some("dark"));
    let session = check.open(Some(&id));
    assert_eq!(session.get::<u64>("visits").await.unwrap(), Some(1));
}

#[tokio::test]
async fn losing_tracking_empties_the_cache() {
    let store = Probe::new(true, false);
    let manager = manager(&store);
    let id = login(&manager).await;
    assert_eq!(read(&manager, &id, "user").await.as_deref(), Some("ann"));
    let feed = store.feed.as_ref().unwrap();
    feed.set_tracking(false);
    let loads = store.loads();
    read(&manager, &id, "user").await;
    read(&manager, &id, "user").await;
    assert_eq!(store.loads() - loads, 2, "no cache while not tracking");
    feed.set_tracking(true);
    read(&manager, &id, "user").await;
    read(&manager, &id, "user").await;
    assert_eq!(store.loads() - loads, 3, "cached again once tracking");
}

#[tokio::test]
async fn no_feed_means_no_cache_unless_a_staleness_is_stated() {
    let store = Probe::new(false, false);
    let plain = manager(&store);
    let id = login(&plain).await;
    read(&plain, &id, "user").await;
    read(&plain, &id, "user").await;
    assert_eq!(store.loads(), 2, "every read loads");

    let bounded = manager_with(&store, |config| {
        config.cache_max_staleness(Duration::from_secs(60))
    });
    let loads = store.loads();
    for _ in 0..3 {
        assert_eq!(read(&bounded, &id, "user").await.as_deref(), Some("ann"));
    }
    assert_eq!(store.loads() - loads, 1, "one load, then the cache");
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let store = Probe::new(true, false);
    let manager = manager_with(&store, |config| config.cache(false));
    let id = login(&manager).await;
    read(&manager, &id, "user").await;
    read(&manager, &id, "user").await;
    assert_eq!(store.loads(), 2);
}

/// Requests of one session that save while its write is in flight: held at the gate, then
/// written together with one compare-and-set; none answers before that write is done.
#[tokio::test(flavor = "current_thread")]
async fn overlapping_saves_share_one_write() {
    let store = Probe::new(false, true);
    let manager = manager(&store);
    let id = login(&manager).await;
    let save = |n: u32| {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move {
            let session = manager.open(Some(&id));
            session
                .update("counter", |c: Option<u32>| c.unwrap_or(0) + 1)
                .await
                .unwrap();
            session.insert(&format!("k{n}"), &n).await.unwrap();
            session.save().await.unwrap();
            let seen: u32 = session.get("counter").await.unwrap().unwrap();
            manager.finish(&session).await.unwrap();
            seen
        })
    };
    let leader = save(0);
    yield_now().await;
    let followers: Vec<_> = (1..=10).map(save).collect();
    yield_now().await;
    assert!(!leader.is_finished());
    store.open_gate(1);
    assert_eq!(leader.await.unwrap(), 1);
    yield_now().await;
    assert!(
        followers.iter().all(|f| !f.is_finished()),
        "a follower answered before its write"
    );
    store.open_gate(1);
    let mut seen = Vec::new();
    for follower in followers {
        seen.push(follower.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (2..=11).collect::<Vec<_>>(),
        "each saw its own increment"
    );
    assert_eq!(store.cas(), 2, "ten queued saves, one write");
    let session = manager.open(Some(&id));
    assert_eq!(session.get::<u32>("counter").await.unwrap(), Some(11));
    for n in 0..=10u32 {
        assert_eq!(session.get::<u32>(&format!("k{n}")).await.unwrap(), Some(n));
    }
}

/// A logout queued behind a write ends the session, for the saves grouped with it too;
/// requests queued after it start new sessions instead of reviving the old one.
#[tokio::test(flavor = "current_thread")]
async fn a_queued_logout_wins_and_later_saves_start_new_sessions() {
    let store = Probe::new(false, true);
    let manager = manager(&store);
    let id = login(&manager).await;
    let run = |change: &'static str| {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move {
            let session = manager.open(Some(&id));
            match change {
                "logout" => session.clear().await.unwrap(),
                other => session.insert(other, "x").await.unwrap(),
            }
            manager.finish(&session).await.unwrap()
        })
    };
    let leader = run("first");
    yield_now().await;
    let before = run("before");
    let logout = run("logout");
    let after = run("after");
    yield_now().await;
    store.open_gate(10);
    let leader = leader.await.unwrap();
    let before = before.await.unwrap();
    let logout = logout.await.unwrap();
    let after = after.await.unwrap();
    assert!(leader.set_cookie.as_deref().unwrap().contains(&id));
    // Saves grouped with the logout end with the session: their browsers drop the cookie.
    for outcome in [&before, &logout] {
        assert!(outcome.set_cookie.as_deref().unwrap().contains("Max-Age=0"));
    }
    let new_cookie = after.set_cookie.expect("a new session for the late save");
    assert!(!new_cookie.contains(&id), "the old id was revived");
    assert_eq!(
        read(&manager, &id, "first").await,
        None,
        "the old session is gone"
    );
}

/// An update that fails on the fresh data fails its own request only.
#[tokio::test(flavor = "current_thread")]
async fn a_failing_update_fails_only_its_request() {
    let store = Probe::new(false, true);
    let manager = manager(&store);
    let id = login(&manager).await;
    let leader = {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move {
            let session = manager.open(Some(&id));
            session.insert("count", "not a number").await.unwrap();
            manager.finish(&session).await
        })
    };
    yield_now().await;
    let spawn = |work: fn(Session) -> _| {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move {
            let session = manager.open(Some(&id));
            work(session.clone()).await;
            manager.finish(&session).await
        })
    };
    let counting = spawn(|session| {
        Box::pin(async move {
            // Loaded before the leader's write: the count is absent, so this works here
            // and fails only when re-applied on the fresh data.
            session
                .update("count", |n: Option<u32>| n.unwrap_or(0) + 1)
                .await
                .unwrap();
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    });
    let theming = spawn(|session| {
        Box::pin(async move {
            session.insert("theme", "dark").await.unwrap();
        })
    });
    yield_now().await;
    store.open_gate(10);
    leader.await.unwrap().unwrap();
    assert!(matches!(
        counting.await.unwrap(),
        Err(SessionError::Value { .. })
    ));
    theming.await.unwrap().unwrap();
    assert_eq!(read(&manager, &id, "theme").await.as_deref(), Some("dark"));
    assert_eq!(
        read(&manager, &id, "count").await.as_deref(),
        Some("not a number")
    );
}

/// A leader whose request is dropped mid-write (the client went away) still hands the
/// queued saves to a writer of their own.
#[tokio::test(flavor = "current_thread")]
async fn queued_saves_survive_a_dropped_leader() {
    let store = Probe::new(false, true);
    let manager = manager(&store);
    let id = login(&manager).await;
    let leader = {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move {
            let session = manager.open(Some(&id));
            session.insert("leader", "x").await.unwrap();
            manager.finish(&session).await
        })
    };
    yield_now().await;
    let follower = {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move {
            let session = manager.open(Some(&id));
            session.insert("follower", "y").await.unwrap();
            manager.finish(&session).await
        })
    };
    yield_now().await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    store.open_gate(1);
    follower.await.unwrap().unwrap();
    assert_eq!(read(&manager, &id, "follower").await.as_deref(), Some("y"));
}

/// A store that stops answering: every request gets a 503 once SESSION_STORE_TIMEOUT has
/// passed, never a hang, and the session's turn to save is released, so the next request
/// works once the store answers again. (Paused time: the timeouts elapse as soon as every
/// task waits.)
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_store_that_stops_answering_is_a_503_within_the_timeout() {
    let store = Probe::new(false, true);
    let timeout = Duration::from_secs(2);
    let manager = manager_with(&store, |config| config.store_timeout(timeout));
    let id = login(&manager).await;

    let started = tokio::time::Instant::now();
    let saves: Vec<_> = (0..4)
        .map(|n| {
            let (manager, id) = (manager.clone(), id.clone());
            tokio::spawn(async move {
                let session = manager.open(Some(&id));
                session.insert("n", &n).await.unwrap();
                manager.finish(&session).await
            })
        })
        .collect();
    for save in saves {
        let error = save.await.unwrap().unwrap_err();
        assert_eq!(error.status(), 503, "{error}");
    }
    // Every save, queued ones included, ends within one timeout.
    assert!(started.elapsed() <= timeout + Duration::from_millis(100));

    store.hang_loads.store(true, Ordering::SeqCst);
    let session = manager.open(Some(&id));
    let error = session.get::<String>("user").await.unwrap_err();
    assert_eq!(error.status(), 503);

    store.hang_loads.store(false, Ordering::SeqCst);
    store.open_gate(1);
    write(&manager, &id, "after", "ok").await;
    assert_eq!(read(&manager, &id, "after").await.as_deref(), Some("ok"));
}

/// A save ends within SESSION_STORE_TIMEOUT as a whole: a request queued behind a slow
/// (not hung) write of its session does not wait for that write and then a timeout of its
/// own. (Paused time.)
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_save_queued_behind_a_slow_write_ends_within_the_timeout() {
    let store = Probe::new(false, true);
    let timeout = Duration::from_secs(2);
    let manager = manager_with(&store, |config| config.store_timeout(timeout));
    let id = login(&manager).await;
    let save = |key: &'static str| {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move {
            let session = manager.open(Some(&id));
            session.insert(key, "x").await.unwrap();
            let started = tokio::time::Instant::now();
            (manager.finish(&session).await, started.elapsed())
        })
    };
    let leader = save("leader");
    yield_now().await;
    let follower = save("follower");
    yield_now().await;
    // The leader's write answers after 1.5 s, within its timeout; the follower's group
    // write then waits at the gate past the follower's deadline.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.open_gate(1);
    let (result, _) = leader.await.unwrap();
    result.unwrap();
    let (result, waited) = follower.await.unwrap();
    let error = result.unwrap_err();
    assert_eq!(error.status(), 503, "{error}");
    assert!(
        waited <= timeout + Duration::from_millis(10),
        "the queued save took {waited:?}"
    );
    store.open_gate(8);
}

/// A queued save whose request gave up (here its client went away) before its group was
/// written is not written behind its back: the request answered without it.
#[tokio::test(flavor = "current_thread")]
async fn a_queued_save_that_gave_up_is_not_written() {
    let store = Probe::new(false, true);
    let manager = manager(&store);
    let id = login(&manager).await;
    let save = |key: &'static str| {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move {
            let session = manager.open(Some(&id));
            session.insert(key, "x").await.unwrap();
            manager.finish(&session).await
        })
    };
    let leader = save("leader");
    yield_now().await;
    let follower = save("follower");
    yield_now().await;
    follower.abort();
    assert!(follower.await.unwrap_err().is_cancelled());
    let writes_before = store.cas();
    store.open_gate(8);
    leader.await.unwrap().unwrap();
    assert_eq!(read(&manager, &id, "leader").await.as_deref(), Some("x"));
    assert_eq!(read(&manager, &id, "follower").await, None);
    assert_eq!(store.cas() - writes_before, 1, "only the leader's write");
}

/// Index upkeep after a write that succeeded (here removing the old id's entry from the
/// owner index after a rotation) is best effort: when it cannot finish within the save's
/// deadline, the save still succeeds, answered at the deadline instead of with a 503.
/// (The new id's index entry takes 0.5 s, so the removal starts after the save did.)
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn index_upkeep_that_hangs_does_not_fail_a_written_save() {
    let store = Probe::new(false, false);
    let timeout = Duration::from_secs(2);
    let manager = manager_with(&store, |config| config.store_timeout(timeout));
    let id = owned_by(&manager, "ann").await;

    store.hang_index_removes.store(true, Ordering::SeqCst);
    store.index_put_delay_ms.store(500, Ordering::SeqCst);
    let session = manager.open(Some(&id));
    session.insert("theme", "dark").await.unwrap();
    session.regenerate().await.unwrap();
    let started = tokio::time::Instant::now();
    let outcome = manager
        .finish(&session)
        .await
        .expect("the rotation was written");
    assert!(started.elapsed() <= timeout + Duration::from_millis(10));
    let new_id = cookie_id(&outcome.set_cookie.expect("the new id's cookie"));
    assert_ne!(new_id, id);
    store.hang_index_removes.store(false, Ordering::SeqCst);
    assert_eq!(
        read(&manager, &new_id, "theme").await.as_deref(),
        Some("dark")
    );
    let listed = manager.sessions_of("ann", None).await.unwrap();
    assert_eq!(listed.len(), 1, "the old id's entry is pruned: {listed:?}");
}

/// A write's index refresh runs after the session's save slot is released: a save queued
/// behind the write is written and answered at once, even while the refresh hangs (an
/// index on a lost server); the write ahead answers at its deadline with its 200. (Paused
/// time.)
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_queued_save_does_not_wait_for_the_index_refresh_ahead_of_it() {
    let store = Probe::new(false, true);
    let timeout = Duration::from_secs(2);
    let manager = manager_with(&store, |config| config.store_timeout(timeout));
    let id = owned_by(&manager, "ann").await;

    // The next write refreshes the index entry (this process has not written it since it
    // loaded the session), and that refresh does not answer.
    store.index_put_delay_ms.store(60_000, Ordering::SeqCst);
    let save = |key: &'static str| {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move {
            let session = manager.open(Some(&id));
            session.insert(key, "x").await.unwrap();
            manager.finish(&session).await
        })
    };
    let leader = save("leader");
    yield_now().await;
    let follower = save("follower");
    yield_now().await;
    let opened = tokio::time::Instant::now();
    store.open_gate(2);
    follower.await.unwrap().expect("the queued save");
    assert!(
        opened.elapsed() < Duration::from_millis(100),
        "the queued save waited {:?}",
        opened.elapsed()
    );
    leader.await.unwrap().expect("the first save");
    store.index_put_delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(read(&manager, &id, "leader").await.as_deref(), Some("x"));
    assert_eq!(read(&manager, &id, "follower").await.as_deref(), Some("x"));
}

/// A session handed from ann to bob and straight back keeps ann's index entry: the removal
/// of ann's entry after the first write is done before the second write puts it back, even
/// when the removal is slow, so revoking ann's sessions still finds it. (Paused time.)
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_owner_given_back_at_once_keeps_its_index_entry() {
    let store = Probe::new(false, true);
    let manager = manager(&store);
    let id = owned_by(&manager, "ann").await;

    store.index_remove_delay_ms.store(1_000, Ordering::SeqCst);
    let hand_to = |owner: &'static str| {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move {
            let session = manager.open(Some(&id));
            session.set_owner(owner).await.unwrap();
            manager.finish(&session).await
        })
    };
    let to_bob = hand_to("bob");
    yield_now().await;
    let back_to_ann = hand_to("ann");
    yield_now().await;
    store.open_gate(2);
    to_bob.await.unwrap().expect("the first write");
    back_to_ann.await.unwrap().expect("the second write");
    // Whatever is still in flight lands before the listing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    store.index_remove_delay_ms.store(0, Ordering::SeqCst);

    assert_eq!(manager.sessions_of("bob", None).await.unwrap().len(), 0);
    let listed = manager.sessions_of("ann", None).await.unwrap();
    assert_eq!(listed.len(), 1, "ann's session is listed: {listed:?}");
    assert_eq!(manager.revoke_owner("ann", None).await.unwrap(), 1);
    assert_eq!(read(&manager, &id, "anything").await, None);
}

/// A new session owned by `owner`; its id.
async fn owned_by(manager: &SessionManager, owner: &str) -> String {
    let session = manager.open(None);
    session.set_owner(owner).await.unwrap();
    let cookie = manager.finish(&session).await.unwrap().set_cookie.unwrap();
    cookie_id(&cookie)
}

fn cookie_id(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

async fn yield_now() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// A busy owned session costs no owner-index write per request: the index entry is written
/// when the session is created and then at most once per `LAST_SEEN_RESOLUTION`, while the
/// cached entry remembers when this process wrote it. The session stays listed.
#[tokio::test]
async fn writes_of_an_owned_session_refresh_its_index_entry_once_per_resolution() {
    let store = Probe::new(true, false);
    let manager = manager(&store);
    let session = manager.open(None);
    session.set_owner("ann").await.unwrap();
    let cookie = manager.finish(&session).await.unwrap().set_cookie.unwrap();
    let id = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let puts = || store.inner.counts.index_put.load(Ordering::SeqCst);
    assert_eq!(puts(), 1, "the new owned session is indexed once");
    let cas_before = store.cas();
    for n in 0..5 {
        write(&manager, &id, "counter", &n.to_string()).await;
    }
    assert_eq!(store.cas() - cas_before, 5, "every write reached the store");
    assert_eq!(
        puts(),
        1,
        "no index write per request within the resolution"
    );
    let listed = manager.sessions_of("ann", None).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}
