//! Failures: an unreachable endpoint is `Unavailable` within seconds; oversized values and
//! keys are refused before anything is sent; DynamoDB's own size refusal is `TooLarge`.

mod common;

use session_core::testkit::SeedExt as _;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use session_core::{SessionStore, StoreError};
use session_dynamo::{DynamoStore, MAX_KEY_BYTES, MAX_VALUE_BYTES};

const TTL: Duration = Duration::from_secs(300);

/// A store pointed at a port nothing listens on; `table_exists` so that building it
/// makes no call.
async fn unreachable_store() -> DynamoStore {
    DynamoStore::builder()
        .endpoint_url(format!("http://127.0.0.1:{}", common::free_port()))
        .credentials("dummy", "dummy")
        .region("us-east-1")
        .table_exists(true)
        .build()
        .await
        .expect("no call is made")
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_within_seconds() {
    let store = unreachable_store().await;
    let started = Instant::now();
    let load = store.load("session:abc").await;
    assert!(matches!(load, Err(StoreError::Unavailable(_))), "{load:?}");
    let save = store.put("session:abc", b"v", TTL).await;
    assert!(matches!(save, Err(StoreError::Unavailable(_))), "{save:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    // Start-up that must create the table fails the same way.
    let started = Instant::now();
    let built = DynamoStore::builder()
        .endpoint_url(format!("http://127.0.0.1:{}", common::free_port()))
        .credentials("dummy", "dummy")
        .region("us-east-1")
        .build()
        .await;
    match built {
        Err(StoreError::Unavailable(error)) => {
            assert!(error.to_string().contains("CreateTable"), "{error}")
        }
        other => panic!("start-up gave {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn oversized_values_and_keys_are_refused_before_sending() {
    // Nothing listens: any request would fail with Unavailable instead.
    let store = unreachable_store().await;
    let too_large = vec![0u8; MAX_VALUE_BYTES + 1];
    for result in [
        store.create("k", &too_large, TTL).await,
        store.compare_and_set("k", b"v", &too_large, TTL).await,
        store.rotate("k", b"v", "k2", &too_large, TTL).await,
    ] {
        match result {
            Err(StoreError::TooLarge { size, limit }) => {
                assert_eq!((size, limit), (MAX_VALUE_BYTES + 1, MAX_VALUE_BYTES))
            }
            other => panic!("gave {other:?}"),
        }
    }

    let long_key = "k".repeat(MAX_KEY_BYTES + 1);
    for result in [
        store.create(&long_key, b"v", TTL).await,
        store.create("", b"v", TTL).await,
        store.rotate("k", b"v", &long_key, b"v", TTL).await,
    ] {
        assert!(
            matches!(result, Err(StoreError::InvalidKey(_))),
            "{result:?}"
        );
    }
    // A key that cannot be stored cannot exist: no call needed to say so.
    assert_eq!(store.load(&long_key).await.unwrap(), None);
    assert!(!store.touch(&long_key, TTL).await.unwrap());
    assert!(!store.compare_and_set("", b"v", b"w", TTL).await.unwrap());
    store.delete(&long_key).await.unwrap();
}

#[tokio::test]
async fn dynamodbs_own_size_refusal_is_too_large() {
    let store = common::store("session-dynamo-errors").await;
    let key = format!("{}big", session_core::testkit::unique_prefix("size"));
    // Another writer's attribute fills most of the item; the session value then fits our
    // own limit but not the item, which an update keeps whole.
    assert!(store.create(&key, b"v1", TTL).await.unwrap());
    store
        .client()
        .update_item()
        .table_name(store.table_name())
        .key("id", AttributeValue::S(key.clone()))
        .update_expression("SET extra = :other")
        .expression_attribute_values(":other", AttributeValue::S("o".repeat(300_000)))
        .send()
        .await
        .unwrap();
    let value = vec![7u8; 200_000];
    assert!(value.len() <= store.max_value_bytes());
    match store.compare_and_set(&key, b"v1", &value, TTL).await {
        Err(StoreError::TooLarge { size, .. }) => assert_eq!(size, value.len()),
        other => panic!("gave {other:?}"),
    }
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn concurrent_stores_share_one_table_without_losing_updates() {
    // Two stores (two clients, as two services would have) on one session.
    let first = common::store("session-dynamo-errors").await;
    let second = common::store("session-dynamo-errors").await;
    let key = format!("{}shared", session_core::testkit::unique_prefix("two"));
    first.put(&key, b"v1", TTL).await.unwrap();
    assert!(second
        .compare_and_set(&key, b"v1", b"v2", TTL)
        .await
        .unwrap());
    assert!(!first
        .compare_and_set(&key, b"v1", b"v3", TTL)
        .await
        .unwrap());
    assert_eq!(
        first.load(&key).await.unwrap().map(|e| e.value),
        Some(b"v2".to_vec())
    );
}
