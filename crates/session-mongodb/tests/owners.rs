//! The owner index in MongoDB: a collection `<collection>_owners` beside Flask-Session's,
//! one document per entry under a unique `(index, key)` index and a TTL index, read back
//! with a separate raw client. Flask's documents are left exactly as Flask-Session writes
//! them. Runs against the server at `MONGODB_URL`, like the other tests of this crate;
//! each test uses collections of its own and drops them.

mod common;

use std::time::Duration;

use mongodb::bson::{doc, Bson, DateTime, Document};
use session_core::{IndexEntry, SessionConfig, SessionManager, SessionStore};
use session_mongodb::{EXPIRATION_INDEX, OWNERS_KEY_INDEX};

async fn documents(collection: &mongodb::Collection<Document>) -> Vec<Document> {
    let mut cursor = collection.find(doc! {}).await.expect("find");
    let mut found = Vec::new();
    while cursor.advance().await.expect("read") {
        found.push(cursor.deserialize_current().expect("a document"));
    }
    found
}

fn now() -> u64 {
    DateTime::now().timestamp_millis() as u64 / 1000
}

#[tokio::test]
async fn the_index_is_a_collection_beside_flasks_with_unique_and_ttl_indexes() {
    let name = common::unique_collection("owners_layout");
    let store = common::connect(&name).await;
    assert_eq!(store.owners_collection().name(), format!("{name}_owners"));
    let sessions = common::raw_collection(&name).await;
    let owners = common::raw_collection(&format!("{name}_owners")).await;
    let manager = SessionManager::new(store.clone(), SessionConfig::default());
    for _ in 0..2 {
        let session = manager.open(None);
        session.set_owner("42").await.unwrap();
        manager.finish(&session).await.unwrap();
    }

    let indexes = common::indexes(&owners).await;
    let by_name = |wanted: &str| {
        indexes
            .iter()
            .find(|index| index.options.as_ref().and_then(|o| o.name.as_deref()) == Some(wanted))
            .unwrap_or_else(|| panic!("{wanted} missing: {indexes:?}"))
    };
    let key_index = by_name(OWNERS_KEY_INDEX);
    assert_eq!(key_index.keys, doc! { "index": 1, "key": 1 });
    assert_eq!(key_index.options.as_ref().unwrap().unique, Some(true));
    let ttl = by_name(EXPIRATION_INDEX);
    assert_eq!(ttl.keys, doc! { "expiration": 1 });
    assert_eq!(
        ttl.options.as_ref().unwrap().expire_after,
        Some(Duration::ZERO)
    );

    // Flask's collection holds the two sessions in Flask's shape and nothing else.
    let flask_docs = documents(&sessions).await;
    assert_eq!(flask_docs.len(), 2);
    for document in &flask_docs {
        let mut fields: Vec<&str> = document.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["_id", "expiration", "id", "val"], "{document}");
    }
    // One index document per session, its TTL date a grace after the session's expiry.
    let index_docs = documents(&owners).await;
    assert_eq!(index_docs.len(), 2);
    for document in &index_docs {
        assert_eq!(document.get_str("index").unwrap(), "session:owner:42");
        let key = document.get_str("key").unwrap();
        assert!(
            flask_docs.iter().any(|d| d.get_str("id").unwrap() == key),
            "{key} names no session"
        );
        let expires_at = document.get_i64("expires_at").unwrap();
        assert_eq!(
            document
                .get_datetime("expiration")
                .unwrap()
                .timestamp_millis(),
            (expires_at + 60) * 1000
        );
        assert!(document.get_i64("created").unwrap() <= document.get_i64("last_seen").unwrap());
    }

    assert_eq!(manager.revoke_owner("42", None).await.unwrap(), 2);
    assert_eq!(documents(&owners).await, vec![]);
    assert_eq!(documents(&sessions).await, vec![]);
    sessions.drop().await.unwrap();
    owners.drop().await.unwrap();
}

#[tokio::test]
async fn documents_that_are_no_entry_or_past_their_grace_are_not_listed() {
    let name = common::unique_collection("owners_bad");
    // No TTL index: what the store filters is all there is.
    let store = common::connect_with(common::builder(&name).skip_index_creation(true)).await;
    let owners = common::raw_collection(&format!("{name}_owners")).await;
    let later = DateTime::from_millis(DateTime::now().timestamp_millis() + 600_000);
    let earlier = DateTime::from_millis(DateTime::now().timestamp_millis() - 1_000);
    let now = now();
    owners
        .insert_many([
            doc! { "index": "i", "key": 5, "created": 1_i64, "last_seen": 1_i64,
            "expires_at": 1_i64, "expiration": later },
            doc! { "index": "i", "key": "no-times", "expiration": later },
            doc! { "index": "i", "key": "negative", "created": -1_i64, "last_seen": 1_i64,
            "expires_at": 1_i64, "expiration": later },
            doc! { "index": "i", "key": "past", "created": 1_i64, "last_seen": 1_i64,
            "expires_at": 1_i64, "expiration": earlier },
        ])
        .await
        .unwrap();
    let entry = IndexEntry {
        key: "good".to_owned(),
        created: now,
        last_seen: now,
        expires_at: now + 300,
    };
    store.index_put("i", &entry).await.unwrap();
    assert_eq!(store.index_list("i").await.unwrap(), vec![entry.clone()]);

    // cleanup removes what is past its grace (here no TTL index would), keeps the rest.
    assert_eq!(
        store.cleanup().await.unwrap(),
        0,
        "index documents are not sessions"
    );
    let left = documents(&owners).await;
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(left
        .iter()
        .all(|document| document.get("key") != Some(&Bson::String("past".to_owned()))));
    owners.drop().await.unwrap();
    common::raw_collection(&name).await.drop().await.unwrap();
}
