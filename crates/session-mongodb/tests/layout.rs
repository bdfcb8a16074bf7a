//! Flask-Session's MongoDB layout, read back with a separate raw client: documents
//! `{_id: ObjectId, id: "session:<id>", val: BinData(0, <msgpack>), expiration: Date}`,
//! the TTL index `expiration_1` (expireAfterSeconds 0) and a unique index on `id`.
//!
//! Runs against the MongoDB-compatible server at `MONGODB_URL` (default
//! `mongodb://127.0.0.1:27017/?directConnection=true`). On this project's machines that
//! is mongoeco, a MongoDB emulator started by `cargo xtask services up mongodb`, not a real
//! mongod; the same tests run unchanged against a real server via `MONGODB_URL`. Each test
//! uses a collection of its own and drops it at the end.

mod common;

use session_core::testkit::SeedExt as _;
use std::time::Duration;

use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, Bson, DateTime, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;
use session_core::{SessionConfig, SessionManager, SessionStore, SetupError, StoreError};
use session_mongodb::{EXPIRATION_INDEX, ID_INDEX};

/// Flask-Session's default lifetime, 31 days, in milliseconds.
const LIFETIME_MS: i64 = 2_678_400_000;

/// msgspec's encoding of `{"_permanent": True, "user_id": 42}`.
const FLASK_BYTES: &[u8] = b"\x82\xaa_permanent\xc3\xa7user_id\x2a";

fn binary(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn index<'a>(indexes: &'a [IndexModel], name: &str) -> Option<&'a IndexModel> {
    indexes.iter().find(|index| {
        index
            .options
            .as_ref()
            .and_then(|options| options.name.as_deref())
            == Some(name)
    })
}

#[tokio::test]
async fn sessions_are_stored_as_flask_session_stores_them() {
    let name = common::unique_collection("layout");
    let store = common::connect(&name).await;
    let raw = common::raw_collection(&name).await;
    let manager = SessionManager::new(store, SessionConfig::default());

    let session = manager.open(None);
    session.insert("user_id", &42).await.unwrap();
    let before = DateTime::now().timestamp_millis();
    manager.finish(&session).await.unwrap();
    let after = DateTime::now().timestamp_millis();
    let id = session
        .id()
        .await
        .unwrap()
        .expect("stored session has an id");
    let key = format!("session:{id}");

    assert_eq!(
        raw.count_documents(doc! {}).await.unwrap(),
        1,
        "exactly one document is written"
    );
    let documents = common::documents_with_id(&raw, &key).await;
    assert_eq!(documents.len(), 1, "no document with id {key:?}");
    let document = &documents[0];
    let mut fields: Vec<&str> = document.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["_id", "expiration", "id", "val"]);
    assert!(
        matches!(document.get("_id"), Some(Bson::ObjectId(_))),
        "_id: {:?}",
        document.get("_id")
    );
    assert_eq!(document.get_str("id").unwrap(), key);
    match document.get("val") {
        Some(Bson::Binary(value)) => {
            assert_eq!(value.subtype, BinarySubtype::Generic);
            assert_eq!(value.bytes, FLASK_BYTES);
        }
        other => panic!("val is not binary: {other:?}"),
    }
    let expiration = match document.get("expiration") {
        Some(Bson::DateTime(date)) => date.timestamp_millis(),
        other => panic!("expiration is not a date: {other:?}"),
    };
    assert!(
        (before + LIFETIME_MS..=after + LIFETIME_MS).contains(&expiration),
        "expiration {expiration} is not now + 31 days ({before}..{after} + {LIFETIME_MS})"
    );

    // A read-only request rewrites nothing.
    let session = manager.open(Some(&id));
    assert_eq!(session.get::<i64>("user_id").await.unwrap(), Some(42));
    manager.finish(&session).await.unwrap();
    let again = common::documents_with_id(&raw, &key).await;
    assert_eq!(again, documents);

    // Logout deletes the document.
    let session = manager.open(Some(&id));
    session.clear().await.unwrap();
    manager.finish(&session).await.unwrap();
    assert_eq!(raw.count_documents(doc! {}).await.unwrap(), 0);
    raw.drop().await.unwrap();
}

#[tokio::test]
async fn a_document_written_by_flask_session_is_read() {
    let name = common::unique_collection("flask_written");
    let store = common::connect(&name).await;
    let raw = common::raw_collection(&name).await;
    // What Flask-Session's update_one({"id": key}, {"$set": ...}, upsert=True) leaves.
    let sid = "99eb3546-85ba-4a5c-9c36-4a8a2a7b3c1d";
    let expiration = DateTime::from_millis(DateTime::now().timestamp_millis() + 3_600_000);
    raw.insert_one(doc! {
        "id": format!("session:{sid}"),
        "val": binary(FLASK_BYTES),
        "expiration": expiration,
    })
    .await
    .unwrap();

    let entry = store
        .load(&format!("session:{sid}"))
        .await
        .unwrap()
        .expect("Flask's document loads");
    assert_eq!(entry.value, FLASK_BYTES);
    let expires_at = entry.expires_at.expect("the expiration is reported");
    assert_eq!(
        expires_at,
        std::time::UNIX_EPOCH
            + Duration::from_millis(expiration.timestamp_millis().try_into().unwrap())
    );

    let manager = SessionManager::new(store, SessionConfig::default());
    let session = manager.open(Some(sid));
    assert_eq!(session.get::<i64>("user_id").await.unwrap(), Some(42));
    assert_eq!(session.id().await.unwrap().as_deref(), Some(sid));
    manager.finish(&session).await.unwrap();
    raw.drop().await.unwrap();
}

#[tokio::test]
async fn indexes_are_flask_sessions_ttl_index_and_a_unique_id_index() {
    let name = common::unique_collection("indexes");
    let raw = common::raw_collection(&name).await;
    // Flask-Session may have created its TTL index first: create_index("expiration",
    // expireAfterSeconds=0). The store's identical index is compatible.
    raw.create_index(
        IndexModel::builder()
            .keys(doc! { "expiration": 1 })
            .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
            .build(),
    )
    .await
    .unwrap();
    let store = common::connect(&name).await;
    // Start-up twice (a second instance, a restart) is fine too.
    common::connect(&name).await;

    let indexes = common::indexes(&raw).await;
    let expiration = index(&indexes, EXPIRATION_INDEX).expect("expiration_1 exists");
    assert_eq!(expiration.keys, doc! { "expiration": 1 });
    let options = expiration.options.as_ref().unwrap();
    assert_eq!(options.expire_after, Some(Duration::ZERO));
    assert_ne!(options.unique, Some(true));
    let id = index(&indexes, ID_INDEX).expect("id_1 exists");
    assert_eq!(id.keys, doc! { "id": 1 });
    assert_eq!(id.options.as_ref().unwrap().unique, Some(true));
    assert_eq!(
        indexes.len(),
        3,
        "_id_, expiration_1 and id_1 only: {indexes:?}"
    );

    // The unique index keeps one document per id, whoever writes.
    store
        .put("session:x", b"\x80", Duration::from_secs(60))
        .await
        .unwrap();
    let duplicate = raw
        .insert_one(doc! {
            "id": "session:x",
            "val": binary(b"\x80"),
            "expiration": DateTime::now(),
        })
        .await;
    assert!(
        duplicate.is_err(),
        "a second document with one id was accepted"
    );
    raw.drop().await.unwrap();
}

#[tokio::test]
async fn skip_index_creation_creates_none() {
    let name = common::unique_collection("no_indexes");
    let store = common::connect_with(common::builder(&name).skip_index_creation(true)).await;
    store
        .put("session:a", b"\x80", Duration::from_secs(60))
        .await
        .unwrap();
    let raw = common::raw_collection(&name).await;
    let indexes = common::indexes(&raw).await;
    let names: Vec<Option<&str>> = indexes
        .iter()
        .map(|index| index.options.as_ref().and_then(|o| o.name.as_deref()))
        .collect();
    assert_eq!(names, [Some("_id_")], "only MongoDB's own _id index");
    // Creating them later is what ensure_indexes is for.
    store.ensure_indexes().await.unwrap();
    assert_eq!(common::indexes(&raw).await.len(), 3);
    raw.drop().await.unwrap();
}

#[tokio::test]
async fn a_conflicting_id_index_is_reported_with_a_hint() {
    let name = common::unique_collection("conflict");
    let raw = common::raw_collection(&name).await;
    // What issue #139's advice leaves behind: a non-unique index on `id`.
    raw.create_index(IndexModel::builder().keys(doc! { "id": 1 }).build())
        .await
        .unwrap();
    match common::builder(&name).connect().await {
        Err(SetupError::Store(StoreError::Backend(error))) => {
            let message = error.to_string();
            assert!(message.contains("cannot create index id_1"), "{message}");
            assert!(message.contains("skip_index_creation"), "{message}");
        }
        other => panic!("a non-unique id index gave {other:?}"),
    }
    raw.drop().await.unwrap();
}

#[tokio::test]
async fn duplicate_ids_left_without_the_index_are_reported_and_deleted_together() {
    let name = common::unique_collection("duplicates");
    let raw = common::raw_collection(&name).await;
    let expiration = DateTime::from_millis(DateTime::now().timestamp_millis() + 60_000);
    let duplicate = doc! { "id": "session:dup", "val": binary(b"\x80"), "expiration": expiration };
    raw.insert_many([duplicate.clone(), duplicate])
        .await
        .unwrap();
    match common::builder(&name).connect().await {
        Err(SetupError::Store(StoreError::Backend(error))) => {
            assert!(error.to_string().contains("same `id`"), "{error}")
        }
        other => panic!("duplicate ids gave {other:?}"),
    }
    // Without the index the store still works, and logout removes every copy.
    let store = common::connect_with(common::builder(&name).skip_index_creation(true)).await;
    assert!(store.load("session:dup").await.unwrap().is_some());
    store.delete("session:dup").await.unwrap();
    assert_eq!(
        common::documents_with_id(&raw, "session:dup").await,
        Vec::<Document>::new()
    );
    raw.drop().await.unwrap();
}
