//! Flask-Session's Redis layout, checked byte for byte with a raw client on a private
//! server (so "nothing else is written" can be checked exactly): key `session:<id>`, a
//! plain string holding the msgpack map, `EX` = the lifetime in whole seconds.

mod common;

use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface, ServerInterface};
use fred::types::config::Config;
use fred::types::{Builder, Expiration};
use session_core::{SessionConfig, SessionId, SessionManager};
use session_redis::RedisStore;

/// Flask-Session's default lifetime, 31 days, in seconds.
const LIFETIME: i64 = 2_678_400;

/// msgspec's encoding of `{"_permanent": True, "user_id": 42}`.
const FLASK_BYTES: &[u8] = b"\x82\xaa_permanent\xc3\xa7user_id\x2a";

async fn raw_client(url: &str) -> Client {
    let client = Builder::from_config(Config::from_url(url).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    client
}

async fn raw_bytes(client: &Client, key: &str) -> Option<Vec<u8>> {
    client.get::<Option<Vec<u8>>, _>(key).await.unwrap()
}

async fn assert_fresh_ttl(client: &Client, key: &str) {
    let ttl: i64 = client.ttl(key).await.unwrap();
    assert!(
        (LIFETIME - 5..=LIFETIME).contains(&ttl),
        "TTL of {key}: {ttl}"
    );
}

#[tokio::test]
async fn sessions_are_stored_as_flask_session_stores_them() {
    let server = common::PrivateRedis::start().await;
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let manager = SessionManager::new(store, SessionConfig::default());
    let raw = raw_client(&server.url()).await;

    // A new session, written once.
    let session = manager.open(None);
    session.insert("user_id", &42).await.unwrap();
    let outcome = manager.finish(&session).await.unwrap();
    assert!(outcome.set_cookie.is_some());
    let id = session
        .id()
        .await
        .unwrap()
        .expect("stored session has an id");
    let key = format!("session:{id}");
    assert_eq!(
        raw.dbsize::<i64>().await.unwrap(),
        1,
        "exactly one key is written"
    );
    let kind: String = raw.r#type(&key).await.unwrap();
    assert_eq!(kind, "string");
    assert_eq!(raw_bytes(&raw, &key).await.as_deref(), Some(FLASK_BYTES));
    assert_fresh_ttl(&raw, &key).await;

    // A read-only request rewrites nothing and adds nothing.
    let session = manager.open(Some(&id));
    assert_eq!(session.get::<i64>("user_id").await.unwrap(), Some(42));
    manager.finish(&session).await.unwrap();
    assert_eq!(raw.dbsize::<i64>().await.unwrap(), 1);
    assert_eq!(raw_bytes(&raw, &key).await.as_deref(), Some(FLASK_BYTES));

    // Logout deletes the key.
    let session = manager.open(Some(&id));
    session.clear().await.unwrap();
    manager.finish(&session).await.unwrap();
    assert_eq!(raw_bytes(&raw, &key).await, None);
    assert_eq!(raw.dbsize::<i64>().await.unwrap(), 0);
}

#[tokio::test]
async fn sessions_written_by_flask_are_read_and_updated_in_place() {
    let server = common::PrivateRedis::start().await;
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let manager = SessionManager::new(store, SessionConfig::default());
    let raw = raw_client(&server.url()).await;

    // What Flask-Session's save_session does: SET session:<sid> <msgpack> EX <lifetime>.
    let id = SessionId::generate(32).unwrap().to_string();
    let key = format!("session:{id}");
    let _: () = raw
        .set(&key, FLASK_BYTES, Some(Expiration::EX(100)), None, false)
        .await
        .unwrap();

    let session = manager.open(Some(&id));
    assert_eq!(session.get::<i64>("user_id").await.unwrap(), Some(42));
    assert!(session.is_permanent().await.unwrap());
    session.insert("user_id", &7).await.unwrap();
    manager.finish(&session).await.unwrap();

    assert_eq!(
        session.id().await.unwrap().as_deref(),
        Some(id.as_str()),
        "same id kept"
    );
    assert_eq!(
        raw_bytes(&raw, &key).await.as_deref(),
        Some(&b"\x82\xaa_permanent\xc3\xa7user_id\x07"[..])
    );
    assert_fresh_ttl(&raw, &key).await;
    assert_eq!(raw.dbsize::<i64>().await.unwrap(), 1);

    // Id rotation moves the data to a new key and removes the old one.
    let session = manager.open(Some(&id));
    session.regenerate().await.unwrap();
    manager.finish(&session).await.unwrap();
    let new_id = session.id().await.unwrap().expect("rotated id");
    assert_ne!(new_id, id);
    assert_eq!(raw_bytes(&raw, &key).await, None, "old key removed");
    let new_key = format!("session:{new_id}");
    assert_eq!(
        raw_bytes(&raw, &new_key).await.as_deref(),
        Some(&b"\x82\xaa_permanent\xc3\xa7user_id\x07"[..])
    );
    assert_fresh_ttl(&raw, &new_key).await;
    assert_eq!(raw.dbsize::<i64>().await.unwrap(), 1);
}

#[tokio::test]
async fn an_empty_flask_value_starts_a_new_session() {
    let server = common::PrivateRedis::start().await;
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let manager = SessionManager::new(store, SessionConfig::default());
    let raw = raw_client(&server.url()).await;
    let id = SessionId::generate(32).unwrap().to_string();
    let _: () = raw
        .set(
            format!("session:{id}"),
            "",
            Some(Expiration::EX(100)),
            None,
            false,
        )
        .await
        .unwrap();
    let session = manager.open(Some(&id));
    assert!(session.is_empty().await.unwrap());
    assert_eq!(
        session.id().await.unwrap(),
        None,
        "the empty entry is not adopted"
    );
}
