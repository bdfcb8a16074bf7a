//! The conformance kit and Redis-specific behaviour against a standalone server
//! (`REDIS_URL`, default `redis://127.0.0.1:6379`).

mod common;

use session_core::testkit::SeedExt as _;
use std::time::{Duration, SystemTime};

use fred::interfaces::{KeysInterface, ListInterface};
use fred::types::Expiration;
use session_core::{testkit, SessionStore};
use session_redis::RedisStore;

const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

async fn connect() -> RedisStore {
    common::connect("REDIS_URL", DEFAULT_URL, "redis").await
}

session_core::store_conformance_tests!(async { connect().await });

fn key(name: &str) -> String {
    format!("{}{name}", testkit::unique_prefix("redis-standalone"))
}

#[tokio::test]
async fn connects_to_a_standalone_server() {
    let store = connect().await;
    assert!(!store.is_clustered());
}

#[tokio::test]
async fn empty_value_counts_as_missing() {
    let store = connect().await;
    let key = key("empty");
    let _: () = store
        .pool()
        .set(&key, "", Some(Expiration::EX(60)), None, false)
        .await
        .unwrap();
    assert_eq!(store.load(&key).await.unwrap(), None);
}

#[tokio::test]
async fn load_reports_the_expiry() {
    let store = connect().await;
    let key = key("expiry");
    let before = SystemTime::now();
    store
        .put(&key, b"v", Duration::from_secs(100))
        .await
        .unwrap();
    let entry = store.load(&key).await.unwrap().expect("saved entry");
    let expires_at = entry.expires_at.expect("a TTL'd key reports its expiry");
    assert!(
        expires_at >= before + Duration::from_secs(98),
        "{expires_at:?}"
    );
    assert!(
        expires_at <= SystemTime::now() + Duration::from_secs(100),
        "{expires_at:?}"
    );
}

#[tokio::test]
async fn key_without_expiry_loads_without_expiry() {
    let store = connect().await;
    let key = key("persistent");
    let _: () = store
        .pool()
        .set(&key, "v", None, None, false)
        .await
        .unwrap();
    let entry = store.load(&key).await.unwrap().expect("entry");
    assert_eq!(entry.expires_at, None);
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn ttl_is_truncated_to_whole_seconds() {
    let store = connect().await;
    let (short, fractional) = (key("short"), key("fractional"));
    store
        .put(&short, b"v", Duration::from_millis(200))
        .await
        .unwrap();
    store
        .put(&fractional, b"v", Duration::from_millis(2_900))
        .await
        .unwrap();
    let short_ttl: i64 = store.pool().ttl(&short).await.unwrap();
    let fractional_ttl: i64 = store.pool().ttl(&fractional).await.unwrap();
    assert_eq!(short_ttl, 1, "a sub-second TTL is stored as 1 s");
    assert_eq!(
        fractional_ttl, 2,
        "2.9 s is stored as 2 s, like Flask's int()"
    );
    assert!(store
        .touch(&fractional, Duration::from_millis(10_999))
        .await
        .unwrap());
    let touched: i64 = store.pool().ttl(&fractional).await.unwrap();
    assert_eq!(touched, 10);
}

#[tokio::test]
async fn compare_and_set_and_create_write_with_the_ttl() {
    let store = connect().await;
    let key = key("cas-ttl");
    assert!(store
        .create(&key, b"v1", Duration::from_secs(50))
        .await
        .unwrap());
    let created_ttl: i64 = store.pool().ttl(&key).await.unwrap();
    assert!((49..=50).contains(&created_ttl), "{created_ttl}");
    assert!(store
        .compare_and_set(&key, b"v1", b"v2", Duration::from_secs(500))
        .await
        .unwrap());
    let cas_ttl: i64 = store.pool().ttl(&key).await.unwrap();
    assert!((499..=500).contains(&cas_ttl), "{cas_ttl}");
}

#[tokio::test]
async fn unreachable_server_fails_fast_with_unavailable() {
    let port = common::free_port();
    let started = std::time::Instant::now();
    let result = RedisStore::builder()
        .url(format!("redis://127.0.0.1:{port}"))
        .connect()
        .await;
    match result {
        Err(error @ session_core::SetupError::Store(session_core::StoreError::Unavailable(_))) => {
            assert!(error.is_unavailable());
            // One readable start-up line, without the Debug form of the io::Error.
            let text = error.to_string();
            assert!(
                text.starts_with("session store unavailable: I/O error: Connection refused")
                    && !text.contains('{')
                    && !text.contains('\n'),
                "{text}"
            );
        }
        other => panic!("connecting to a closed port gave {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn wrong_type_under_a_session_key_is_a_backend_error() {
    let store = connect().await;
    let key = key("list");
    let _: i64 = store.pool().rpush(&key, "x").await.unwrap();
    match store.load(&key).await {
        Err(session_core::StoreError::Backend(_)) => {}
        other => panic!("a list under a session key gave {other:?}"),
    }
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn the_owner_index_is_a_hash_under_the_prefix_outliving_its_longest_session() {
    let store = connect().await;
    let prefix = testkit::unique_prefix("redis-owner");
    let config = session_core::SessionConfig::builder()
        .key_prefix(prefix.clone())
        .build()
        .unwrap();
    let manager = session_core::SessionManager::new(store.clone(), config);
    let owner = "42";
    for lifetime in [Duration::from_secs(600), Duration::from_secs(5000)] {
        let session = manager.open(None);
        session.set_owner(owner).await.unwrap();
        session.set_lifetime(lifetime).await.unwrap();
        manager.finish(&session).await.unwrap();
    }
    let index = format!("{prefix}owner:{owner}");
    let ttl: i64 = store.pool().ttl(&index).await.unwrap();
    // Core gives each entry a margin of LAST_SEEN_RESOLUTION past its session's expiry.
    let longest = 5000 + session_core::LAST_SEEN_RESOLUTION.as_secs() as i64;
    assert!((longest - 10..=longest).contains(&ttl), "index TTL {ttl}");
    let listed = store.index_list(&index).await.unwrap();
    assert_eq!(listed.len(), 2);
    for entry in &listed {
        assert!(entry.key.starts_with(&prefix), "{entry:?}");
        // The session itself is Flask-Session's plain string value, with the owner under
        // Flask-Login's key.
        let bytes = store.load(&entry.key).await.unwrap().unwrap().value;
        let data = session_core::SerializationFormat::Msgpack
            .decode(&bytes)
            .unwrap();
        assert_eq!(data.get("_user_id").and_then(|v| v.as_str()), Some(owner));
    }
    assert_eq!(manager.revoke_owner(owner, None).await.unwrap(), 2);
    let exists: i64 = store.pool().exists(&index).await.unwrap();
    assert_eq!(exists, 0, "the index outlived its last session");
}
