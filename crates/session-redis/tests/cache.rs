//! session-core's cache tier on real Redis with client tracking: two managers on separate
//! connections (two processes, as far as Redis can tell) stay coherent, deletes and
//! expiries invalidate, a reconnect flushes, a stale entry loses no update. Every wait is
//! for the invalidation itself (the feed's watch), never a sleep.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::interfaces::KeysInterface;
use fred::types::Expiration;
use session_core::testkit::TestStore;
use session_core::{SessionConfig, SessionManager, SessionStore};
use session_redis::RedisStore;

/// How long an invalidation may take to arrive before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A store on connections of its own; `pool_size` 1 makes its one connection the one that
/// tracks every key.
async fn store(pool_size: usize) -> RedisStore {
    RedisStore::builder()
        .url(url())
        .pool_size(pool_size)
        .connect()
        .await
        .unwrap_or_else(|error| panic!("{error}; start Redis with `cargo xtask services up redis`"))
}

/// A manager on `store` whose calls are counted, with a key prefix of its own.
fn manager(
    store: &RedisStore,
    prefix: &str,
    configure: impl FnOnce(session_core::SessionConfigBuilder) -> session_core::SessionConfigBuilder,
) -> (SessionManager, Arc<TestStore<RedisStore>>) {
    let counted = Arc::new(TestStore::new(store.clone()));
    let config = configure(SessionConfig::builder().key_prefix(prefix))
        .build()
        .unwrap();
    (
        SessionManager::from_shared(counted.clone(), config),
        counted,
    )
}

fn prefix(test: &str) -> String {
    session_core::testkit::unique_prefix(test)
}

async fn login(manager: &SessionManager) -> String {
    let session = manager.open(None);
    session.insert("user", "ann").await.unwrap();
    let cookie = manager.finish(&session).await.unwrap().set_cookie.unwrap();
    cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

async fn get(manager: &SessionManager, id: &str, key: &str) -> Option<String> {
    let session = manager.open(Some(id));
    let value = session.get::<String>(key).await.unwrap();
    manager.finish(&session).await.unwrap();
    value
}

async fn set(manager: &SessionManager, id: &str, key: &str, value: &str) {
    let session = manager.open(Some(id));
    session.insert(key, value).await.unwrap();
    manager.finish(&session).await.unwrap();
}

/// Waits for the next invalidation `watch` reports; fails after [`DEADLINE`]. Returns how
/// long it took.
async fn next_invalidation(watch: &mut tokio::sync::watch::Receiver<u64>) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(DEADLINE, watch.changed())
        .await
        .expect("no invalidation arrived")
        .expect("the feed closed");
    started.elapsed()
}

#[tokio::test]
async fn tracking_is_on_by_default_and_can_be_turned_off() {
    assert!(store(2).await.is_tracking());
    let plain = RedisStore::builder()
        .url(url())
        .client_tracking(false)
        .connect()
        .await
        .unwrap();
    assert!(!plain.is_tracking());
    assert!(plain.invalidations().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_on_separate_connections_stay_coherent() {
    let (here_store, there_store) = (store(2).await, store(2).await);
    let prefix = prefix("coherent");
    let (here, here_calls) = manager(&here_store, &prefix, |c| c);
    let (there, _) = manager(&there_store, &prefix, |c| c);
    let id = login(&there).await;

    // The first read loads and caches; the next ones make no store call.
    assert_eq!(get(&here, &id, "user").await.as_deref(), Some("ann"));
    let loads = here_calls.counts.reads();
    assert_eq!(get(&here, &id, "user").await.as_deref(), Some("ann"));
    assert_eq!(here_calls.counts.reads(), loads, "a cached read loaded");

    let mut watch = here_store.invalidations().unwrap().watch();
    let written = Instant::now();
    set(&there, &id, "user", "bob").await;
    let waited = next_invalidation(&mut watch).await;
    eprintln!(
        "invalidation arrived {:?} after the write was acknowledged ({:?} after it was sent)",
        waited,
        written.elapsed()
    );
    assert_eq!(get(&here, &id, "user").await.as_deref(), Some("bob"));
    assert_eq!(here_calls.counts.reads(), loads + 1, "one reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_and_an_expiry_invalidate() {
    let (here_store, there_store) = (store(2).await, store(2).await);
    let prefix = prefix("delete-expiry");
    let (here, _) = manager(&here_store, &prefix, |c| c);
    let (there, _) = manager(&there_store, &prefix, |c| c);

    let id = login(&there).await;
    assert_eq!(get(&here, &id, "user").await.as_deref(), Some("ann"));
    let mut watch = here_store.invalidations().unwrap().watch();
    let logout = there.open(Some(&id));
    logout.clear().await.unwrap();
    there.finish(&logout).await.unwrap();
    next_invalidation(&mut watch).await;
    assert_eq!(
        get(&here, &id, "user").await,
        None,
        "a deleted session was served"
    );

    // A two-second session, cached here, expires in Redis.
    let (short_here, _) = manager(&here_store, &prefix, |c| c.lifetime(Duration::from_secs(2)));
    let (short_there, _) = manager(&there_store, &prefix, |c| {
        c.lifetime(Duration::from_secs(2))
    });
    let id = login(&short_there).await;
    assert_eq!(get(&short_here, &id, "user").await.as_deref(), Some("ann"));
    let key = format!("{prefix}{id}");
    // Redis expires a key when a command touches it after its lifetime. Its active expiry
    // samples keys at random and can take minutes to find this one on a server that holds
    // many keys with expiries (30,000 long-lived sessions made this test fail), so the
    // test asks until the key is gone.
    let started = Instant::now();
    let mut probe = tokio::time::interval(Duration::from_millis(50));
    loop {
        probe.tick().await;
        let gone: i64 = there_store.pool().exists(key.as_str()).await.unwrap();
        if gone == 0 {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "the key never expired");
    }
    // Redis reports the expiry to the connection that tracks the key (the only key this
    // store read since the last invalidation).
    next_invalidation(&mut watch).await;
    assert_eq!(
        get(&short_here, &id, "user").await,
        None,
        "an expired session was served"
    );
}

/// A write this process's own connection makes outside the store is hidden from its
/// cache (NOLOOP): the cached entry is stale, and the next save still loses nothing.
#[tokio::test]
async fn a_stale_entry_never_loses_an_update() {
    let here_store = store(1).await;
    let prefix = prefix("stale");
    let (here, calls) = manager(&here_store, &prefix, |c| c);
    let id = login(&here).await;
    let session = here.open(Some(&id));
    session
        .update("visits", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await
        .unwrap();
    here.finish(&session).await.unwrap();

    // Another writer's data appears under the key without an invalidation for this cache:
    // written through this store's own (only) connection, which Redis does not notify of
    // its own writes (NOLOOP).
    let key = format!("{prefix}{id}");
    let connection = here_store.pool().next();
    let current: Vec<u8> = connection.get(key.as_str()).await.unwrap();
    let mut data = session_core::SerializationFormat::Msgpack
        .decode(&current)
        .unwrap();
    data.insert("theme", session_core::Value::from("dark"));
    let changed = session_core::SerializationFormat::Msgpack
        .encode(&data)
        .unwrap();
    let _: () = connection
        .set(
            key.as_str(),
            changed,
            Some(Expiration::EX(300)),
            None,
            false,
        )
        .await
        .unwrap();
    let other = SessionManager::from_shared(
        Arc::new(store(1).await),
        SessionConfig::builder()
            .key_prefix(&prefix)
            .cache(false)
            .build()
            .unwrap(),
    );

    let attempts = calls
        .counts
        .compare_and_set
        .load(std::sync::atomic::Ordering::SeqCst);
    let session = here.open(Some(&id));
    assert_eq!(
        session.get::<String>("theme").await.unwrap(),
        None,
        "the entry was not stale: the test proves nothing"
    );
    session
        .update("visits", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await
        .unwrap();
    here.finish(&session).await.unwrap();
    assert_eq!(
        calls
            .counts
            .compare_and_set
            .load(std::sync::atomic::Ordering::SeqCst)
            - attempts,
        2,
        "one failed compare-and-set on the stale entry, then its retry"
    );
    let check = other.open(Some(&id));
    assert_eq!(check.get::<u64>("visits").await.unwrap(), Some(2));
    assert_eq!(
        check.get::<String>("theme").await.unwrap().as_deref(),
        Some("dark")
    );
}

/// A restarted server (which lost every key and tracks nothing) flushes the cache: a
/// session cached before the restart is not served after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_flushes_the_cache() {
    let mut server = common::PrivateRedis::start().await;
    let store = RedisStore::builder()
        .url(server.url())
        .command_timeout(Duration::from_millis(1_000))
        .reconnect_max_delay(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    assert!(store.is_tracking());
    let (manager, calls) = manager(&store, "session:", |c| c);
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(login(&manager).await);
    }
    for id in &ids {
        assert_eq!(get(&manager, id, "user").await.as_deref(), Some("ann"));
    }
    let loads = calls.counts.reads();
    get(&manager, &ids[0], "user").await;
    assert_eq!(calls.counts.reads(), loads, "the cache is not full");

    let feed = store.invalidations().unwrap();
    let mut watch = feed.watch();
    server.kill().await;
    server.restart().await;
    // The reconnect flushes (an event on the feed), then tracking comes back.
    next_invalidation(&mut watch).await;
    let started = Instant::now();
    while !feed.is_tracking() {
        assert!(started.elapsed() < DEADLINE, "tracking never came back");
        next_invalidation(&mut watch).await;
    }
    for id in &ids {
        assert_eq!(
            get(&manager, id, "user").await,
            None,
            "a session the restarted server lost was served from the cache"
        );
    }
}

/// Counters of one session incremented through two managers on separate connections at
/// once, with the cache on: every increment survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_counters_across_managers_lose_nothing() {
    let (one_store, two_store) = (store(4).await, store(4).await);
    let prefix = prefix("counters");
    let (one, _) = manager(&one_store, &prefix, |c| c);
    let (two, _) = manager(&two_store, &prefix, |c| c);
    let id = login(&one).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let manager = if i % 2 == 0 { one.clone() } else { two.clone() };
            let id = id.clone();
            tokio::spawn(async move {
                let session = manager.open(Some(&id));
                session
                    .update("counter", |n: Option<u64>| n.unwrap_or(0) + 1)
                    .await
                    .unwrap();
                manager.finish(&session).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let (check, _) = manager(&two_store, &prefix, |c| c.cache(false));
    let session = check.open(Some(&id));
    assert_eq!(session.get::<u64>("counter").await.unwrap(), Some(64));
}
