//! The owner index in DynamoDB: a table `<table>_owners` (partition key `index`, sort key
//! `key`, TTL on `expiration`) beside Flask-Session's. A listing reads every page of its
//! Query; items that are no entry or past their expiration are left out; a missing owners
//! table means no owner index with `table_exists`, and a clear error when it disappears
//! later. Runs against the emulator at `DYNAMODB_ENDPOINT` (see `common/mod.rs`); each
//! test uses tables of its own and deletes them.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use common::Recorder;
use session_core::testkit::SeedExt as _;
use session_core::{IndexEntry, SessionStore, StoreError};
use session_dynamo::DynamoStore;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn fresh(purpose: &str) -> (DynamoStore, Client) {
    let table = common::unique_table(purpose);
    let store = common::store(&table).await;
    let client = store.client().clone();
    (store, client)
}

async fn drop_tables(client: &Client, store: &DynamoStore) {
    for name in [store.table_name(), store.owners_table_name()] {
        let _ = client.delete_table().table_name(name).send().await;
    }
}

#[tokio::test]
async fn a_listing_reads_every_page_of_its_query() {
    let (store, client) = fresh("owners-pages").await;
    let now = now();
    // About 1 KiB per item: 1,100 of them exceed the 1 MB a Query page returns.
    let padding = "p".repeat(1000);
    let store = Arc::new(store);
    let mut puts = tokio::task::JoinSet::new();
    for n in 0..1100 {
        let store = store.clone();
        let key = format!("session:{n:05}{padding}");
        puts.spawn(async move {
            let entry = IndexEntry {
                key,
                created: now,
                last_seen: now,
                expires_at: now + 600,
            };
            store.index_put("session:owner:many", &entry).await
        });
        while puts.len() >= 16 {
            puts.join_next().await.unwrap().unwrap().unwrap();
        }
    }
    while let Some(put) = puts.join_next().await {
        put.unwrap().unwrap();
    }
    let recorder = Recorder::default();
    let counted = DynamoStore::from_client(recorder.attach(&client), store.table_name(), true)
        .await
        .unwrap();
    recorder.clear();
    let mut listed = counted.index_list("session:owner:many").await.unwrap();
    let queries = recorder
        .operations()
        .iter()
        .filter(|op| *op == "Query")
        .count();
    assert!(queries >= 2, "one page only: {:?}", recorder.operations());
    assert_eq!(listed.len(), 1100);
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    listed.dedup_by(|a, b| a.key == b.key);
    assert_eq!(listed.len(), 1100, "an entry listed twice");
    drop_tables(&client, &store).await;
}

#[tokio::test]
async fn items_that_are_no_entry_or_past_their_expiration_are_left_out() {
    let (store, client) = fresh("owners-bad").await;
    let now = now();
    let n = |v: u64| AttributeValue::N(v.to_string());
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let items: Vec<HashMap<String, AttributeValue>> = vec![
        // No times.
        HashMap::from([("index".into(), s("i")), ("key".into(), s("no-times"))]),
        // A time that is a string.
        HashMap::from([
            ("index".into(), s("i")),
            ("key".into(), s("string-time")),
            ("created".into(), s("1")),
            ("last_seen".into(), n(1)),
            ("expires_at".into(), n(now + 600)),
            ("expiration".into(), n(now + 660)),
        ]),
        // Past its expiration, not yet deleted by TTL.
        HashMap::from([
            ("index".into(), s("i")),
            ("key".into(), s("past")),
            ("created".into(), n(1)),
            ("last_seen".into(), n(1)),
            ("expires_at".into(), n(now - 120)),
            ("expiration".into(), n(now - 60)),
        ]),
    ];
    for item in items {
        client
            .put_item()
            .table_name(store.owners_table_name())
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    let good = IndexEntry {
        key: "good".to_owned(),
        created: now,
        last_seen: now,
        expires_at: now + 600,
    };
    store.index_put("i", &good).await.unwrap();
    assert_eq!(store.index_list("i").await.unwrap(), vec![good.clone()]);
    // The stored item carries the TTL attribute a grace after the session's expiry.
    let stored = client
        .get_item()
        .table_name(store.owners_table_name())
        .key("index", s("i"))
        .key("key", s("good"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored.item().and_then(|item| item.get("expiration")),
        Some(&n(now + 600 + 60))
    );
    // Keys DynamoDB cannot hold are refused before anything is sent.
    let empty = IndexEntry {
        key: String::new(),
        ..good
    };
    assert!(matches!(
        store.index_put("i", &empty).await,
        Err(StoreError::InvalidKey(_))
    ));
    drop_tables(&client, &store).await;
}

#[tokio::test]
async fn without_the_owners_table_there_is_no_index_and_a_clear_error() {
    let (store, client) = fresh("owners-missing").await;
    client
        .delete_table()
        .table_name(store.owners_table_name())
        .send()
        .await
        .unwrap();
    // Started on it with table_exists: no owner index, the sessions work.
    let existing = DynamoStore::from_client(client.clone(), store.table_name(), true)
        .await
        .expect("Flask's table alone is enough to start");
    assert!(!existing.owner_index());
    match existing.index_list("session:owner:1").await {
        Err(StoreError::Unsupported(message)) => {
            assert!(message.contains(store.owners_table_name()), "{message}");
        }
        other => panic!("{other:?}"),
    }
    existing
        .put("session:k", b"v", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    // The store that created it, after it was deleted: an error naming the table and
    // saying what it must look like.
    let entry = IndexEntry {
        key: "session:k".to_owned(),
        created: 1,
        last_seen: 1,
        expires_at: now() + 60,
    };
    match store.index_put("session:owner:1", &entry).await {
        Err(StoreError::Backend(error)) => {
            let message = error.to_string();
            assert!(message.contains(store.owners_table_name()), "{message}");
            assert!(message.contains("ResourceNotFoundException"), "{message}");
            assert!(message.contains("sort key `key`"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    drop_tables(&client, &store).await;
}
