//! Expired documents are never served, even while they are still in the collection (the
//! TTL monitor of a real server runs about once a minute), and documents the store did
//! not write in its layout do not break it.
//!
//! The collection here has the unique index on `id` but no TTL index, so an expired
//! document inserted directly stays present and only the store's own filters hide it.
//! Runs against the MongoDB-compatible server at `MONGODB_URL` (default
//! `mongodb://127.0.0.1:27017/?directConnection=true`): on this project's machines
//! mongoeco, a MongoDB emulator started by `cargo xtask services up mongodb`, not a real
//! mongod; the same tests run unchanged against a real server via `MONGODB_URL`.

mod common;

use session_core::testkit::SeedExt as _;
use std::time::Duration;

use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, Bson, DateTime, Document};
use mongodb::Collection;
use session_core::{testkit, SessionConfig, SessionManager, SessionStore};
use session_mongodb::MongoStore;

const COLLECTION: &str = "expiry";
const TTL: Duration = Duration::from_secs(300);

/// msgspec's encoding of `{"_permanent": True, "user_id": 42}`.
const FLASK_BYTES: &[u8] = b"\x82\xaa_permanent\xc3\xa7user_id\x2a";

fn binary(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn ago(seconds: i64) -> DateTime {
    DateTime::from_millis(DateTime::now().timestamp_millis() - seconds * 1000)
}

async fn setup() -> (MongoStore, Collection<Document>, String) {
    let store = common::connect_without_ttl_index(COLLECTION).await;
    let raw = common::raw_collection(COLLECTION).await;
    let key = format!("{}k", testkit::unique_prefix("mongo-expiry"));
    (store, raw, key)
}

async fn insert_expired(raw: &Collection<Document>, key: &str, value: &[u8]) {
    raw.insert_one(doc! { "id": key, "val": binary(value), "expiration": ago(10) })
        .await
        .expect("insert an expired document");
}

#[tokio::test]
async fn an_expired_document_still_present_is_never_served() {
    let (store, raw, key) = setup().await;
    insert_expired(&raw, &key, b"stale").await;

    assert_eq!(store.load(&key).await.unwrap(), None);
    assert!(!store.touch(&key, TTL).await.unwrap(), "touch revived it");
    assert!(
        !store
            .compare_and_set(&key, b"stale", b"new", TTL)
            .await
            .unwrap(),
        "compare-and-set wrote over an expired document"
    );
    // Still there: the store hid it, nobody deleted it.
    let documents = common::documents_with_id(&raw, &key).await;
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0].get("val"), Some(&binary(b"stale")));

    // create takes the id over, leaving one document.
    assert!(store.create(&key, b"fresh", TTL).await.unwrap());
    let documents = common::documents_with_id(&raw, &key).await;
    assert_eq!(documents.len(), 1, "{documents:?}");
    assert_eq!(documents[0].get("val"), Some(&binary(b"fresh")));
    let entry = store.load(&key).await.unwrap().expect("created entry");
    assert_eq!(entry.value, b"fresh");
}

#[tokio::test]
async fn an_expired_flask_session_starts_a_new_session() {
    let (store, raw, _) = setup().await;
    let sid = testkit::unique_prefix("sid").replace(':', "");
    let key = format!("session:{sid}");
    insert_expired(&raw, &key, FLASK_BYTES).await;

    let manager = SessionManager::new(store, SessionConfig::default());
    let session = manager.open(Some(&sid));
    assert_eq!(session.get::<i64>("user_id").await.unwrap(), None);
    session.insert("user_id", &7).await.unwrap();
    manager.finish(&session).await.unwrap();
    let new_sid = session.id().await.unwrap().expect("new id");
    assert_ne!(new_sid, sid, "the expired session's id was reused");
    assert_eq!(
        common::documents_with_id(&raw, &format!("session:{new_sid}"))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn cleanup_deletes_expired_documents_and_keeps_live_ones() {
    let (store, raw, key) = setup().await;
    let live = format!("{key}-live");
    insert_expired(&raw, &key, b"stale").await;
    store.put(&live, b"live", TTL).await.unwrap();

    let removed = store.cleanup().await.unwrap();
    assert!(removed >= 1, "cleanup removed {removed}");
    assert!(common::documents_with_id(&raw, &key).await.is_empty());
    assert_eq!(
        store.load(&live).await.unwrap().map(|entry| entry.value),
        Some(b"live".to_vec())
    );
}

#[tokio::test]
async fn an_entry_saved_with_a_short_ttl_is_hidden_once_it_passes() {
    let (store, raw, key) = setup().await;
    store
        .put(&key, b"brief", Duration::from_millis(300))
        .await
        .unwrap();
    // Poll until the expiry passes (with a deadline), then check the document is still
    // there: without a TTL index only the store's filter hides it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.load(&key).await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "entry never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(common::documents_with_id(&raw, &key).await.len(), 1);
}

#[tokio::test]
async fn documents_in_another_shape_are_no_session() {
    let (store, raw, key) = setup().await;
    let later = DateTime::from_millis(DateTime::now().timestamp_millis() + 60_000);
    let cases = [
        (
            "string-val",
            doc! { "val": "not binary", "expiration": later },
        ),
        ("no-val", doc! { "expiration": later }),
        ("no-expiration", doc! { "val": binary(b"\x80") }),
        (
            "string-expiration",
            doc! { "val": binary(b"\x80"), "expiration": "2999-01-01" },
        ),
    ];
    for (name, mut document) in cases {
        let case_key = format!("{key}-{name}");
        document.insert("id", case_key.clone());
        raw.insert_one(document).await.unwrap();
        assert_eq!(store.load(&case_key).await.unwrap(), None, "{name}");
        // save repairs it in place.
        store.put(&case_key, b"\x80", TTL).await.unwrap();
        assert_eq!(
            store.load(&case_key).await.unwrap().map(|e| e.value),
            Some(b"\x80".to_vec()),
            "{name}"
        );
        assert_eq!(common::documents_with_id(&raw, &case_key).await.len(), 1);
    }

    // Another binary subtype (0x80, user defined) is still the session's bytes.
    let user_subtype = format!("{key}-user-subtype");
    raw.insert_one(doc! {
        "id": &user_subtype,
        "val": Bson::Binary(Binary { subtype: BinarySubtype::UserDefined(0x80), bytes: b"\x80".to_vec() }),
        "expiration": later,
    })
    .await
    .unwrap();
    assert_eq!(
        store.load(&user_subtype).await.unwrap().map(|e| e.value),
        Some(b"\x80".to_vec())
    );
}
