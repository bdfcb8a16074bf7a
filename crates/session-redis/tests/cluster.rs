//! The conformance kit against a Redis Cluster (`REDIS_CLUSTER_URL`, default the three
//! masters on 127.0.0.1:7000-7002), plus rotation within and across hash slots.

mod common;

use session_core::testkit::SeedExt as _;
use std::time::Duration;

use session_core::{testkit, SessionStore};
use session_redis::RedisStore;

const DEFAULT_URL: &str = "redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001&node=127.0.0.1:7002";
const TTL: Duration = Duration::from_secs(300);

async fn connect() -> RedisStore {
    common::connect("REDIS_CLUSTER_URL", DEFAULT_URL, "redis-cluster").await
}

session_core::store_conformance_tests!(async { connect().await });

#[tokio::test]
async fn detects_the_cluster() {
    assert!(connect().await.is_clustered());
}

/// Keys with the same hash tag share a slot, so the atomic script handles them.
#[tokio::test]
async fn rotation_within_one_slot() {
    let store = connect().await;
    let tag = testkit::unique_prefix("slot");
    let (old, new) = (format!("{{{tag}}}old"), format!("{{{tag}}}new"));
    store.put(&old, b"v1", TTL).await.unwrap();
    assert!(!store
        .rotate(&old, b"stale", &new, b"v2", TTL)
        .await
        .unwrap());
    assert_eq!(store.load(&new).await.unwrap(), None);
    assert!(store.rotate(&old, b"v1", &new, b"v2", TTL).await.unwrap());
    assert_eq!(store.load(&old).await.unwrap(), None);
    assert_eq!(
        store.load(&new).await.unwrap().map(|e| e.value),
        Some(b"v2".to_vec())
    );
}

/// Keys in different slots (almost surely on different masters): the new entry appears,
/// the old one goes, and a failed check leaves neither changed.
#[tokio::test]
async fn rotation_across_slots() {
    let store = connect().await;
    let prefix = testkit::unique_prefix("slots");
    // Pick two keys in different slots deterministically.
    let old = format!("{prefix}old");
    let new = (0..)
        .map(|i| format!("{prefix}new{i}"))
        .find(|k| {
            fred::util::redis_keyslot(k.as_bytes()) != fred::util::redis_keyslot(old.as_bytes())
        })
        .unwrap();
    store.put(&old, b"v1", TTL).await.unwrap();
    assert!(!store
        .rotate(&old, b"stale", &new, b"v2", TTL)
        .await
        .unwrap());
    assert_eq!(
        store.load(&new).await.unwrap(),
        None,
        "the new entry was not undone"
    );
    assert_eq!(
        store.load(&old).await.unwrap().map(|e| e.value),
        Some(b"v1".to_vec())
    );
    assert!(store.rotate(&old, b"v1", &new, b"v2", TTL).await.unwrap());
    assert_eq!(store.load(&old).await.unwrap(), None);
    assert_eq!(
        store.load(&new).await.unwrap().map(|e| e.value),
        Some(b"v2".to_vec())
    );
    let ttl: i64 = fred::interfaces::KeysInterface::ttl(store.pool(), &new)
        .await
        .unwrap();
    assert!((299..=300).contains(&ttl), "{ttl}");
}

/// Many sessions spread over every master, all readable back.
#[tokio::test]
async fn keys_spread_over_all_masters() {
    let store = connect().await;
    let prefix = testkit::unique_prefix("spread");
    let keys: Vec<String> = (0..64).map(|i| format!("{prefix}{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        assert!(store
            .create(key, format!("v{i}").as_bytes(), TTL)
            .await
            .unwrap());
    }
    for (i, key) in keys.iter().enumerate() {
        let entry = store.load(key).await.unwrap().expect("entry");
        assert_eq!(entry.value, format!("v{i}").into_bytes());
    }
}
