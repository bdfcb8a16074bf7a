//! Flask-Session 0.8's DynamoDB items, checked with raw GetItem/PutItem/UpdateItem calls:
//! `id` (S) = `session:<id>`, `val` (B) = the msgpack bytes, `expiration` (N) = Unix
//! seconds. Items written the way Flask writes them (fractional expiration, UpdateItem)
//! are read and updated in place; expired items are never served.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use session_core::{SessionConfig, SessionId, SessionManager, SessionStore};
use session_dynamo::DynamoStore;

/// Flask-Session's default lifetime, 31 days, in seconds.
const LIFETIME: f64 = 2_678_400.0;

/// msgspec's encoding of `{"_permanent": True, "user_id": 42}`.
const FLASK_BYTES: &[u8] = b"\x82\xaa_permanent\xc3\xa7user_id\x2a";
/// The same session after `session["user_id"] = 7`.
const UPDATED_BYTES: &[u8] = b"\x82\xaa_permanent\xc3\xa7user_id\x07";

async fn store() -> DynamoStore {
    common::store("session-dynamo-layout").await
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn new_id() -> String {
    SessionId::generate(32).unwrap().to_string()
}

async fn raw_item(store: &DynamoStore, key: &str) -> Option<HashMap<String, AttributeValue>> {
    store
        .client()
        .get_item()
        .table_name(store.table_name())
        .key("id", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn expiration_of(item: &HashMap<String, AttributeValue>) -> f64 {
    match item.get("expiration") {
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        other => panic!("expiration is {other:?}, not a number"),
    }
}

fn assert_fresh_expiration(item: &HashMap<String, AttributeValue>) {
    let left = expiration_of(item) - unix_now();
    assert!(
        (LIFETIME - 5.0..=LIFETIME + 2.0).contains(&left),
        "expiration is {left} s away, not the lifetime"
    );
}

/// What Flask-Session's save_session sends: UpdateItem SET val, expiration (a float).
async fn flask_write(store: &DynamoStore, key: &str, value: &[u8], expiration: &str) {
    store
        .client()
        .update_item()
        .table_name(store.table_name())
        .key("id", AttributeValue::S(key.to_owned()))
        .update_expression("SET val = :value, expiration = :exp")
        .expression_attribute_values(":value", AttributeValue::B(Blob::new(value)))
        .expression_attribute_values(":exp", AttributeValue::N(expiration.to_owned()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn sessions_are_stored_as_flask_session_stores_them() {
    let store = store().await;
    let manager = SessionManager::new(store.clone(), SessionConfig::default());

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

    let item = raw_item(&store, &key).await.expect("the item");
    let mut names: Vec<_> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["expiration", "id", "val"],
        "exactly Flask's attributes"
    );
    assert_eq!(item["id"], AttributeValue::S(key.clone()));
    assert_eq!(item["val"], AttributeValue::B(Blob::new(FLASK_BYTES)));
    assert_fresh_expiration(&item);

    // A read-only request rewrites nothing.
    let session = manager.open(Some(&id));
    assert_eq!(session.get::<i64>("user_id").await.unwrap(), Some(42));
    manager.finish(&session).await.unwrap();
    let item = raw_item(&store, &key).await.expect("the item");
    assert_eq!(item["val"], AttributeValue::B(Blob::new(FLASK_BYTES)));

    // Logout deletes the item.
    let session = manager.open(Some(&id));
    session.clear().await.unwrap();
    manager.finish(&session).await.unwrap();
    assert_eq!(raw_item(&store, &key).await, None);
}

#[tokio::test]
async fn sessions_written_by_flask_are_read_and_updated_in_place() {
    let store = store().await;
    let manager = SessionManager::new(store.clone(), SessionConfig::default());
    let id = new_id();
    let key = format!("session:{id}");
    // A Python float's exact decimal, as boto3 sends it: 100.44 s from now.
    let expiration = format!("{:.21}", unix_now() + 100.44);
    flask_write(&store, &key, FLASK_BYTES, &expiration).await;
    // An attribute some other writer keeps on the item.
    store
        .client()
        .update_item()
        .table_name(store.table_name())
        .key("id", AttributeValue::S(key.clone()))
        .update_expression("SET owner_note = :note")
        .expression_attribute_values(":note", AttributeValue::S("flask".to_owned()))
        .send()
        .await
        .unwrap();

    let entry = store.load(&key).await.unwrap().expect("Flask's item loads");
    let expires_in = entry
        .expires_at
        .expect("expiry reported")
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs_f64();
    assert!((95.0..=100.5).contains(&expires_in), "{expires_in}");

    let session = manager.open(Some(&id));
    assert_eq!(session.get::<i64>("user_id").await.unwrap(), Some(42));
    assert!(session.is_permanent().await.unwrap());
    session.insert("user_id", &7).await.unwrap();
    manager.finish(&session).await.unwrap();
    assert_eq!(session.id().await.unwrap().as_deref(), Some(id.as_str()));

    let item = raw_item(&store, &key).await.expect("the item");
    assert_eq!(item["val"], AttributeValue::B(Blob::new(UPDATED_BYTES)));
    assert_fresh_expiration(&item);
    assert_eq!(
        item.get("owner_note"),
        Some(&AttributeValue::S("flask".to_owned())),
        "an update keeps other attributes, as Flask-Session's UpdateItem does"
    );

    // Id rotation moves the session to a new item and removes the old one.
    let session = manager.open(Some(&id));
    session.regenerate().await.unwrap();
    manager.finish(&session).await.unwrap();
    let new_id = session.id().await.unwrap().expect("rotated id");
    assert_ne!(new_id, id);
    assert_eq!(raw_item(&store, &key).await, None, "old item removed");
    let item = raw_item(&store, &format!("session:{new_id}"))
        .await
        .expect("new item");
    assert_eq!(item["val"], AttributeValue::B(Blob::new(UPDATED_BYTES)));
    assert_fresh_expiration(&item);
}

#[tokio::test]
async fn expired_items_are_never_served() {
    let store = store().await;
    let manager = SessionManager::new(store.clone(), SessionConfig::default());
    let ttl = Duration::from_secs(300);
    // Expired by an integer and by a fractional expiration, as DynamoDB keeps them until
    // its TTL process gets round to them.
    for expiration in [
        format!("{}", unix_now() as u64 - 10),
        format!("{:.21}", unix_now() - 0.5),
    ] {
        let id = new_id();
        let key = format!("session:{id}");
        store
            .client()
            .put_item()
            .table_name(store.table_name())
            .item("id", AttributeValue::S(key.clone()))
            .item("val", AttributeValue::B(Blob::new(FLASK_BYTES)))
            .item("expiration", AttributeValue::N(expiration.clone()))
            .send()
            .await
            .unwrap();

        assert_eq!(store.load(&key).await.unwrap(), None, "{expiration}");
        let session = manager.open(Some(&id));
        assert_eq!(session.get::<i64>("user_id").await.unwrap(), None);
        assert!(!store.touch(&key, ttl).await.unwrap(), "touch revived it");
        assert!(!store
            .compare_and_set(&key, FLASK_BYTES, b"x", ttl)
            .await
            .unwrap());
        assert!(!store
            .rotate(&key, FLASK_BYTES, &format!("{key}-new"), b"x", ttl)
            .await
            .unwrap());
        assert_eq!(raw_item(&store, &format!("{key}-new")).await, None);
        // The expired leftover does not block a new session under its key.
        assert!(store.create(&key, UPDATED_BYTES, ttl).await.unwrap());
        assert_eq!(
            store.load(&key).await.unwrap().map(|e| e.value).as_deref(),
            Some(UPDATED_BYTES)
        );
    }
}

#[tokio::test]
async fn items_without_a_usable_expiration_or_value_are_not_sessions() {
    let store = store().await;
    let ttl = Duration::from_secs(300);
    let prefix = session_core::testkit::unique_prefix("odd-items");
    let cases: [(&str, Vec<(&str, AttributeValue)>); 3] = [
        (
            "no-expiration",
            vec![("val", AttributeValue::B(Blob::new(FLASK_BYTES)))],
        ),
        (
            "string-value",
            vec![
                ("val", AttributeValue::S("not bytes".to_owned())),
                (
                    "expiration",
                    AttributeValue::N(format!("{}", unix_now() as u64 + 300)),
                ),
            ],
        ),
        (
            "no-value",
            vec![(
                "expiration",
                AttributeValue::N(format!("{}", unix_now() as u64 + 300)),
            )],
        ),
    ];
    for (name, attributes) in cases {
        let key = format!("{prefix}{name}");
        let mut put = store
            .client()
            .put_item()
            .table_name(store.table_name())
            .item("id", AttributeValue::S(key.clone()));
        for (attribute, value) in attributes {
            put = put.item(attribute, value);
        }
        put.send().await.unwrap();
        assert_eq!(store.load(&key).await.unwrap(), None, "{name}");
    }
    // An item without expiration counts as expired: a new session may take its key.
    let key = format!("{prefix}no-expiration");
    assert!(store.create(&key, b"new", ttl).await.unwrap());
    assert_eq!(
        store.load(&key).await.unwrap().map(|e| e.value),
        Some(b"new".to_vec())
    );
}
