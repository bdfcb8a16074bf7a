//! Failures: an unreachable endpoint is `Unavailable` within seconds; oversized values and
//! keys are refused before anything is sent; DynamoDB's own size refusal is `TooLarge`;
//! missing credentials fail start-up with one line saying what to set.

mod common;

use session_core::testkit::SeedExt as _;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use session_core::{SessionStore, SetupError, StoreError};
use session_dynamo::{DynamoStore, MAX_KEY_BYTES, MAX_VALUE_BYTES};

const TTL: Duration = Duration::from_secs(300);

/// A store connected through a relay to the emulator, whose relay is then cut: the store
/// was built normally, and now nothing answers at its endpoint.
async fn unreachable_store() -> DynamoStore {
    let mut relay = common::Relay::start().await;
    let store = DynamoStore::builder()
        .endpoint_url(relay.url())
        .credentials("dummy", "dummy")
        .region("us-east-1")
        .table_name("session-dynamo-errors")
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot use {}: {error}", common::where_dynamodb_is()));
    relay.cut().await;
    store
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

    // Start-up fails the same way, whether it must create the table or only check it.
    for table_exists in [false, true] {
        let started = Instant::now();
        let built = DynamoStore::builder()
            .endpoint_url(format!("http://127.0.0.1:{}", common::free_port()))
            .credentials("dummy", "dummy")
            .region("us-east-1")
            .table_exists(table_exists)
            .connect()
            .await;
        let call = if table_exists {
            "GetItem"
        } else {
            "CreateTable"
        };
        match built {
            Err(error @ SetupError::Store(StoreError::Unavailable(_))) => {
                let text = error.to_string();
                assert!(text.contains(call), "{text}");
                assert!(error.is_unavailable());
                // One readable line: the causes by their Display, none of the SDK's Debug.
                assert!(
                    !text.contains('\n') && text.len() < 300 && !text.contains('{'),
                    "not one short line: {text}"
                );
                assert!(text.contains("Connection refused"), "{text}");
            }
            other => panic!("start-up gave {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[tokio::test]
async fn oversized_values_and_keys_are_refused_before_sending() {
    // Nothing answers: any request would fail with Unavailable instead.
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

/// Marks the child process of [`missing_credentials_fail_start_up_with_one_line`].
const CHILD: &str = "SESSION_DYNAMO_TEST_NO_CREDENTIALS_CHILD";

/// With no credentials anywhere (no variables, no profile files, no instance metadata),
/// `connect` fails before sending anything, with one short line naming what to set. The
/// check needs a process whose environment has no AWS variables, so the test runs itself
/// again as a child with a cleared environment.
#[tokio::test]
async fn missing_credentials_fail_start_up_with_one_line() {
    if std::env::var_os(CHILD).is_some() {
        let result = DynamoStore::builder()
            .endpoint_url(common::endpoint().unwrap_or_else(|| common::DEFAULT_ENDPOINT.into()))
            .region("us-east-1")
            .connect()
            .await;
        match result {
            Err(SetupError::Config(error)) => println!("CHILD RESULT: {error}"),
            other => println!("CHILD RESULT: unexpected {other:?}"),
        }
        return;
    }
    let home = tempfile_dir();
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "missing_credentials_fail_start_up_with_one_line",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env(CHILD, "1")
        .env("HOME", &home)
        // No EC2 instance metadata lookups (they would only time out here).
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run the test binary again");
    let _ = std::fs::remove_dir_all(&home);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find_map(|line| line.split_once("CHILD RESULT: ").map(|(_, result)| result))
        .unwrap_or_else(|| panic!("no result from the child: {stdout}"));
    assert!(
        line.starts_with("invalid AWS_ACCESS_KEY_ID: not set"),
        "{line}"
    );
    assert!(line.contains("AWS_SECRET_ACCESS_KEY"), "{line}");
    assert!(line.contains("AWS_PROFILE"), "{line}");
    assert!(line.len() < 300, "not one short line: {line}");
}

/// An empty directory of its own, as the child's home (no `~/.aws` profile files).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "session-dynamo-no-credentials-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("create the child's home");
    dir
}
