//! What the store writes, read back with a raw text-protocol client: Flask-Session's
//! memcached layout (key as given, flags 0, msgpack bytes) and its 30-day expiry rule.
//! Runs against the shared server (`MEMCACHED_SERVERS`, default 127.0.0.1:11211).

mod common;

use session_core::testkit::SeedExt as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{shared_store, unique_key, Raw};
use session_core::{SerializationFormat, SessionConfig, SessionManager, SessionStore, StoreError};
use session_memcached::{MemcachedStore, DEFAULT_MAX_VALUE_BYTES};

const DAY: u64 = 86_400;

/// The session id in a `Set-Cookie` value `session=<id>; ...`.
fn cookie_id(set_cookie: &str) -> &str {
    let pair = set_cookie.split(';').next().expect("a cookie pair");
    pair.strip_prefix("session=").expect("the session cookie")
}

#[tokio::test]
async fn a_saved_session_has_flask_sessions_layout() {
    let store = shared_store().await;
    let manager = SessionManager::new(store.clone(), SessionConfig::default());
    let session = manager.open(None);
    session.insert("user", "ann").await.expect("insert");
    session.insert("visits", &3).await.expect("insert");
    let outcome = manager.finish(&session).await.expect("finish");
    let set_cookie = outcome.set_cookie.expect("a new session sets its cookie");
    let key = format!("session:{}", cookie_id(&set_cookie));

    let mut raw = Raw::connect(store.server_for_key(&key)).await;
    let (flags, bytes) = raw
        .get(&key)
        .await
        .expect("the session is stored under prefix + id");
    assert_eq!(flags, 0, "Flask-Session stores plain bytes with flags 0");
    assert!(
        matches!(bytes[0], 0x80..=0x8f | 0xde | 0xdf),
        "not a msgpack map: {bytes:02x?}"
    );
    let data = SerializationFormat::Msgpack
        .decode(&bytes)
        .expect("msgpack session data");
    assert_eq!(data.get("user").and_then(|v| v.as_str()), Some("ann"));
    assert_eq!(data.get("visits").and_then(|v| v.as_i64()), Some(3));
    assert!(data.is_permanent(), "SESSION_PERMANENT defaults to true");

    // The default lifetime is 31 days: sent as an absolute timestamp, so the item lives
    // for about 31 days (a relative 2678400 would be read as a date in 1970: expired).
    let ttl = raw.ttl(&key).await.expect("the item is live");
    assert!(
        (31 * DAY as i64 - 5..=31 * DAY as i64 + 1).contains(&ttl),
        "remaining TTL {ttl} s is not about 31 days"
    );
}

#[tokio::test]
async fn expiry_over_30_days_is_absolute_and_up_to_30_days_relative() {
    let store = shared_store().await;
    for (days, seconds) in [
        (31, 31 * DAY),
        (30, 30 * DAY),
        (30, 30 * DAY + 1),
        (365, 365 * DAY),
        (0, 60),
    ] {
        let key = unique_key(&format!("ttl-{seconds}"));
        store
            .put(&key, b"v", Duration::from_secs(seconds))
            .await
            .expect("save");
        let mut raw = Raw::connect(store.server_for_key(&key)).await;
        let ttl = raw.ttl(&key).await.unwrap_or_else(|| {
            panic!("an item saved for {days} days ({seconds} s) is not readable")
        });
        assert!(
            (seconds as i64 - 5..=seconds as i64 + 1).contains(&ttl),
            "saved for {seconds} s, memcached reports {ttl} s left"
        );
        let entry = store.load(&key).await.expect("load").expect("stored");
        let expires_at = entry.expires_at.expect("meta get reports the expiry");
        let left = expires_at
            .duration_since(SystemTime::now())
            .expect("in the future")
            .as_secs();
        assert!(
            left.abs_diff(seconds) <= 5,
            "load reports {left} s left for a {seconds} s TTL"
        );
    }
}

#[tokio::test]
async fn touch_applies_the_same_rule() {
    let store = shared_store().await;
    let key = unique_key("touch");
    let mut raw = Raw::connect(store.server_for_key(&key)).await;
    store
        .put(&key, b"v", Duration::from_secs(60))
        .await
        .expect("save");
    assert!(store
        .touch(&key, Duration::from_secs(31 * DAY))
        .await
        .expect("touch"));
    let ttl = raw.ttl(&key).await.expect("still live after touch");
    assert!(ttl > 30 * DAY as i64, "touch left {ttl} s");
}

#[tokio::test]
async fn a_session_written_like_flask_session_loads() {
    let store = shared_store().await;
    let prefix = format!("{}:", unique_key("flask"));
    let config = SessionConfig::builder()
        .key_prefix(prefix.clone())
        .build()
        .expect("config");
    let manager = SessionManager::new(store.clone(), config);
    // What Flask-Session 0.8 writes: msgspec msgpack of the session dict under prefix + id,
    // flags 0, and for the 31-day default lifetime an absolute expiry timestamp.
    let id = "Yl3y0rE3h0k7RzEo6E8nV2Ql6dMbUq1yJcC6O6Q0Cg8";
    let mut data = session_core::SessionData::new_session(true);
    data.insert("_user_id", session_core::Value::from("42"));
    data.insert("_fresh", session_core::Value::from(true));
    let bytes = SerializationFormat::Msgpack.encode(&data).expect("encode");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let key = format!("{prefix}{id}");
    Raw::connect(store.server_for_key(&key))
        .await
        .set(&key, 0, now + 31 * DAY, &bytes)
        .await;

    let session = manager.open(Some(id));
    assert_eq!(
        session.get::<String>("_user_id").await.expect("get"),
        Some("42".to_owned())
    );
    assert_eq!(
        session.get::<bool>("_fresh").await.expect("get"),
        Some(true)
    );
    assert_eq!(session.id().await.expect("id").as_deref(), Some(id));
}

#[tokio::test]
async fn keys_memcached_cannot_hold_have_defined_outcomes() {
    let store = shared_store().await;
    let ttl = Duration::from_secs(60);
    let long = format!("session:{}", "x".repeat(250));
    for key in [
        long.as_str(),
        "session:a b",
        "session:a\r\nflush_all",
        "session:\u{7f}",
        "",
    ] {
        assert!(store.load(key).await.expect("load").is_none(), "{key:?}");
        assert!(
            matches!(
                store.put(key, b"v", ttl).await,
                Err(StoreError::InvalidKey(_))
            ),
            "save {key:?}"
        );
        assert!(
            matches!(
                store.create(key, b"v", ttl).await,
                Err(StoreError::InvalidKey(_))
            ),
            "create {key:?}"
        );
        assert!(!store.touch(key, ttl).await.expect("touch"));
        assert!(!store
            .compare_and_set(key, b"v", b"w", ttl)
            .await
            .expect("compare_and_set"));
        store.delete(key).await.expect("delete");
        assert!(matches!(
            store.rotate("session:old", b"v", key, b"w", ttl).await,
            Err(StoreError::InvalidKey(_))
        ));
        assert!(!store
            .rotate(key, b"v", &unique_key("rotate-target"), b"w", ttl)
            .await
            .expect("rotate from an impossible key"));
    }
    // A key of exactly 250 bytes is fine.
    let longest = format!("{}{}", unique_key("max"), "k".repeat(250));
    let longest = &longest[..250];
    store.put(longest, b"v", ttl).await.expect("a 250-byte key");
    assert_eq!(
        store.load(longest).await.expect("load").map(|e| e.value),
        Some(b"v".to_vec())
    );
}

#[tokio::test]
async fn values_over_the_limit_are_refused_and_nothing_is_stored() {
    let store = shared_store().await;
    let key = unique_key("too-large");
    let ttl = Duration::from_secs(60);
    let too_large = vec![7u8; DEFAULT_MAX_VALUE_BYTES + 1];
    for result in [
        store.put(&key, &too_large, ttl).await.map(|_| true),
        store.create(&key, &too_large, ttl).await,
    ] {
        match result {
            Err(StoreError::TooLarge { size, limit }) => {
                assert_eq!(
                    (size, limit),
                    (DEFAULT_MAX_VALUE_BYTES + 1, DEFAULT_MAX_VALUE_BYTES)
                );
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
    assert!(store.load(&key).await.expect("load").is_none());
}

/// With a limit set above the server's, the server's own refusal is still `TooLarge`
/// (not a silent loss, not a generic error), and the store keeps working.
#[tokio::test]
async fn the_servers_refusal_is_too_large_as_well() {
    shared_store().await; // fails with instructions when the server is down
    let store = MemcachedStore::builder()
        .server_list(&common::shared_servers())
        .max_value_bytes(4 << 20)
        .connect()
        .await
        .expect("store");
    let key = unique_key("server-too-large");
    let value = vec![1u8; 2 << 20];
    match store.put(&key, &value, Duration::from_secs(60)).await {
        Err(StoreError::TooLarge { size, limit }) => {
            assert_eq!(size, value.len());
            assert!(limit < size);
        }
        other => panic!("a 2 MiB value on a 1 MiB server gave {other:?}"),
    }
    assert!(store.load(&key).await.expect("load").is_none());
    store
        .put(&key, b"small", Duration::from_secs(60))
        .await
        .expect("the store works after a refusal");
    assert_eq!(
        store.load(&key).await.expect("load").map(|e| e.value),
        Some(b"small".to_vec())
    );
}

#[tokio::test]
async fn rotation_moves_the_entry_and_respects_concurrent_changes() {
    let store = shared_store().await;
    let ttl = Duration::from_secs(60);
    let (old, new) = (unique_key("rot-old"), unique_key("rot-new"));
    store.put(&old, b"v1", ttl).await.expect("save");
    assert!(store
        .rotate(&old, b"v1", &new, b"v2", ttl)
        .await
        .expect("rotate"));
    assert!(store.load(&old).await.expect("load").is_none());
    assert_eq!(
        store.load(&new).await.expect("load").map(|e| e.value),
        Some(b"v2".to_vec())
    );
    let mut raw = Raw::connect(store.server_for_key(&new)).await;
    let ttl_left = raw.ttl(&new).await.expect("live");
    assert!((55..=61).contains(&ttl_left), "{ttl_left}");
}
