//! Tests that need a memcached of their own: outages and restarts, a frozen server,
//! exact server counters, a server with a larger item size, and two servers at once.
//! Each starts `memcached` on a free port (it must be installed:
//! `cargo xtask services up memcached` installs it).

mod common;

use session_core::testkit::SeedExt as _;
use std::time::{Duration, Instant};

use common::{unique_key, PrivateMemcached};
use session_core::{SessionStore, StoreError};
use session_memcached::MemcachedStore;

const TTL: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_millis(400);

async fn store_on(server: &PrivateMemcached, pool_size: usize) -> MemcachedStore {
    MemcachedStore::builder()
        .server(server.address())
        .pool_size(pool_size)
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .connect()
        .await
        .expect("store")
}

fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

/// Every call made while the server is down fails with `Unavailable` within the timeout;
/// once the server is back on the same port, the same store works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_store_survives_a_server_restart() {
    let mut server = PrivateMemcached::start(&[]).await;
    let store = store_on(&server, 4).await;
    store.put("k", b"before", TTL).await.expect("save");
    assert!(store.load("k").await.expect("load").is_some());

    server.kill().await;
    // Generous bound: connect timeout plus command timeout plus scheduling on a busy machine.
    let bound = TIMEOUT * 2 + Duration::from_secs(2);
    for round in 0..2 {
        let started = Instant::now();
        assert_unavailable("load", store.load("k").await);
        assert_unavailable("save", store.put("k", b"v", TTL).await);
        assert_unavailable("create", store.create("k2", b"v", TTL).await);
        assert_unavailable(
            "compare_and_set",
            store.compare_and_set("k", b"before", b"v", TTL).await,
        );
        assert_unavailable("touch", store.touch("k", TTL).await);
        assert_unavailable("delete", store.delete("k").await);
        assert_unavailable(
            "rotate",
            store.rotate("k", b"before", "k3", b"v", TTL).await,
        );
        assert_unavailable("ping", store.ping().await);
        assert!(
            started.elapsed() < bound * 8,
            "round {round}: 8 calls took {:?}",
            started.elapsed()
        );
    }

    server.restart().await;
    // memcached keeps nothing across a restart; the store must simply work again.
    assert_eq!(store.load("k").await.expect("load after restart"), None);
    store
        .put("k", b"after", TTL)
        .await
        .expect("save after restart");
    assert_eq!(
        store.load("k").await.expect("load").map(|e| e.value),
        Some(b"after".to_vec())
    );
    assert!(store.create("k2", b"v", TTL).await.expect("create"));
    store.ping().await.expect("ping");
}

/// A frozen server (SIGSTOP) accepts connections but never answers: calls time out with
/// `Unavailable` instead of hanging, and a call abandoned mid-command never lets its late
/// reply be read as the answer to a later call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_times_out_and_late_replies_are_never_misread() {
    let server = PrivateMemcached::start(&[]).await;
    // One connection, so a stale one would be handed out again.
    let store = store_on(&server, 1).await;
    store.put("a", b"value-a", TTL).await.expect("save");
    store.put("b", b"value-b", TTL).await.expect("save");

    server.signal("STOP");
    let started = Instant::now();
    assert_unavailable("load from a frozen server", store.load("a").await);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(50)
            && elapsed < TIMEOUT + Duration::from_secs(2),
        "timed out after {elapsed:?}"
    );
    // A caller that gives up by itself (a dropped request) while the reply is pending.
    let abandoned = tokio::time::timeout(Duration::from_millis(100), store.load("a")).await;
    assert!(
        abandoned.is_err(),
        "a frozen server answered: {abandoned:?}"
    );
    server.signal("CONT");

    // The server now answers the abandoned `mg a` commands on their connections; none of
    // those replies may be taken for the answer to `b`.
    for _ in 0..3 {
        assert_eq!(
            store.load("b").await.expect("load").map(|e| e.value),
            Some(b"value-b".to_vec())
        );
    }
    assert_eq!(
        store.load("a").await.expect("load").map(|e| e.value),
        Some(b"value-a".to_vec())
    );
}

/// Keys memcached cannot hold are refused before anything is sent.
#[tokio::test]
async fn impossible_keys_never_reach_the_server() {
    let server = PrivateMemcached::start(&[]).await;
    let store = store_on(&server, 2).await;
    let mut raw = server.raw().await;
    let before = raw.stats().await;

    let long = "k".repeat(251);
    for key in [long.as_str(), "with space", "line\r\nbreak", "tab\t", ""] {
        assert!(store.load(key).await.expect("load").is_none());
        assert!(matches!(
            store.put(key, b"v", TTL).await,
            Err(StoreError::InvalidKey(_))
        ));
        assert!(matches!(
            store.create(key, b"v", TTL).await,
            Err(StoreError::InvalidKey(_))
        ));
        assert!(!store.touch(key, TTL).await.expect("touch"));
        assert!(!store
            .compare_and_set(key, b"v", b"w", TTL)
            .await
            .expect("cas"));
        store.delete(key).await.expect("delete");
    }

    let after = raw.stats().await;
    for counter in [
        "total_connections",
        "cmd_get",
        "cmd_set",
        "cmd_touch",
        "get_misses",
        "delete_misses",
        "delete_hits",
        "cas_misses",
    ] {
        assert_eq!(before[counter], after[counter], "{counter} changed");
    }

    // The counters do move when a valid key is used (on the connection `connect` opened,
    // so the connection count stays).
    assert!(store.load("valid").await.expect("load").is_none());
    store.put("valid", b"v", TTL).await.expect("save");
    let later = raw.stats().await;
    for counter in ["cmd_get", "cmd_set"] {
        let (was, is): (u64, u64) = (
            after[counter].parse().expect("number"),
            later[counter].parse().expect("number"),
        );
        assert!(is > was, "{counter} did not move: {was} -> {is}");
    }
}

/// With `max_value_bytes_from_server`, the limit follows the server's `-I`, and a value
/// right at the limit fits even under the longest key.
#[tokio::test]
async fn the_value_limit_can_come_from_the_server() {
    let server = PrivateMemcached::start(&["-I", "2m"]).await;
    let store = MemcachedStore::builder()
        .server(server.address())
        .max_value_bytes_from_server()
        .connect()
        .await
        .expect("store");
    let longest_key = "k".repeat(250);
    // `connect` asked the server already: the limit is known before any session call.
    let limit = store.max_value_bytes(&longest_key);
    assert_eq!(limit, 2 * 1024 * 1024 - 512);

    let at_limit: Vec<u8> = (0..limit).map(|i| (i % 251) as u8).collect();
    store
        .put(&longest_key, &at_limit, TTL)
        .await
        .expect("a value at the limit under a 250-byte key");
    assert_eq!(
        store
            .load(&longest_key)
            .await
            .expect("load")
            .map(|e| e.value),
        Some(at_limit)
    );
    match store.put("over", &vec![0u8; limit + 1], TTL).await {
        Err(StoreError::TooLarge {
            size,
            limit: reported,
        }) => {
            assert_eq!((size, reported), (limit + 1, limit));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// The same, on a server with the default 1 MiB items: the learned limit is 1 MiB less
/// 512 bytes, and a value that large fits under a 250-byte key.
#[tokio::test]
async fn the_learned_limit_fits_the_default_item_size() {
    let server = PrivateMemcached::start(&[]).await;
    let store = MemcachedStore::builder()
        .server(server.address())
        .max_value_bytes_from_server()
        .connect()
        .await
        .expect("store");
    let key = "k".repeat(250);
    // `connect` learned the limit on its first connection.
    let value = vec![3u8; 1024 * 1024 - 512];
    store.put(&key, &value, TTL).await.expect("save");
    assert_eq!(store.max_value_bytes(&key), value.len());
    assert_eq!(
        store.load(&key).await.expect("load").map(|e| e.value.len()),
        Some(value.len())
    );
}

/// With two servers, each key is stored on the server the ring names, and both are used.
#[tokio::test]
async fn keys_are_spread_over_several_servers() {
    let first = PrivateMemcached::start(&[]).await;
    let second = PrivateMemcached::start(&[]).await;
    let store = MemcachedStore::connect(&format!("{},{}", first.address(), second.address()))
        .await
        .expect("store");
    let (mut raw_first, mut raw_second) = (first.raw().await, second.raw().await);
    let mut on_first = 0;
    for i in 0..40 {
        let key = format!("session:{}-{i}", unique_key("ring").replace(':', "-"));
        let value = format!("value-{i}");
        store.put(&key, value.as_bytes(), TTL).await.expect("save");
        let (holder, other) = if store.server_for_key(&key) == first.address() {
            on_first += 1;
            (&mut raw_first, &mut raw_second)
        } else {
            assert_eq!(store.server_for_key(&key), second.address());
            (&mut raw_second, &mut raw_first)
        };
        assert_eq!(
            holder.get(&key).await,
            Some((0, value.clone().into_bytes())),
            "{key} not on its server"
        );
        assert_eq!(other.get(&key).await, None, "{key} on both servers");
        assert_eq!(
            store.load(&key).await.expect("load").map(|e| e.value),
            Some(value.into_bytes())
        );
    }
    assert!(
        (5..=35).contains(&on_first),
        "{on_first} of 40 keys on the first server"
    );
}

/// A down server among several only fails the keys it holds.
#[tokio::test]
async fn one_server_down_fails_only_its_keys() {
    let first = PrivateMemcached::start(&[]).await;
    let mut second = PrivateMemcached::start(&[]).await;
    let store = MemcachedStore::builder()
        .servers([first.address(), second.address()])
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .connect()
        .await
        .expect("store");
    second.kill().await;
    let (mut ok, mut unavailable) = (0, 0);
    for i in 0..20 {
        let key = format!("k{i}");
        let result = store.put(&key, b"v", TTL).await;
        if store.server_for_key(&key) == first.address() {
            result.expect("the live server works");
            ok += 1;
        } else {
            assert_unavailable("save on the dead server", result);
            unavailable += 1;
        }
    }
    assert!(
        ok > 0 && unavailable > 0,
        "{ok} ok, {unavailable} unavailable"
    );
}
