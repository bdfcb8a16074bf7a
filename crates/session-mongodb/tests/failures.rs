//! Failure modes: an unreachable or silent server gives `StoreError::Unavailable` within
//! seconds, a server that goes away and comes back is picked up again without rebuilding
//! the store, and oversized values and keys are refused before anything is sent.
//!
//! Outages are staged with a TCP relay in front of the MongoDB-compatible server at
//! `MONGODB_URL` (default `mongodb://127.0.0.1:27017/?directConnection=true`), so the shared
//! server itself is never stopped. On this project's machines that server is mongoeco, a
//! MongoDB emulator started by `cargo xtask services up mongodb`, not a real mongod; the
//! same tests run unchanged against a real server via `MONGODB_URL`.

mod common;

use session_core::testkit::SeedExt as _;
use std::time::{Duration, Instant};

use mongodb::Client;
use session_core::{testkit, SessionStore, SetupError, StoreError};
use session_mongodb::{MongoStore, MAX_KEY_BYTES, MAX_VALUE_BYTES};
use tokio::net::TcpListener;

const COLLECTION: &str = "failures";
const TTL: Duration = Duration::from_secs(300);

/// Generous bound for "within a few seconds": the defaults give up after 3 s of server
/// selection (5 s for a whole operation).
const PROMPTLY: Duration = Duration::from_secs(8);

fn key(name: &str) -> String {
    format!("{}{name}", testkit::unique_prefix("mongo-failures"))
}

#[tokio::test]
async fn nothing_listening_is_unavailable_within_seconds() {
    let url = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        common::free_port()
    );
    let started = Instant::now();
    let result = MongoStore::connect(&url).await;
    assert!(
        matches!(result, Err(SetupError::Store(StoreError::Unavailable(_)))),
        "{:?}",
        result.map(|_| ())
    );
    assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
    // The start-up error is one readable line, not the driver's topology dump.
    let text = result.err().unwrap().to_string();
    assert!(
        !text.contains('\n') && text.len() < 300 && !text.contains("Topology"),
        "not one short line: {text}"
    );
    assert!(text.contains("Connection refused"), "{text}");

    // The same with index creation skipped: connect still asks the server.
    let started = Instant::now();
    let result = MongoStore::builder()
        .url(&url)
        .skip_index_creation(true)
        .connect()
        .await;
    assert!(
        matches!(result, Err(SetupError::Store(StoreError::Unavailable(_)))),
        "{:?}",
        result.map(|_| ())
    );
    assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_within_seconds() {
    // Accepts connections and then says nothing, like a hung server or a dropped route.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let result = MongoStore::connect(&format!(
        "mongodb://127.0.0.1:{port}/?directConnection=true"
    ))
    .await;
    assert!(
        matches!(result, Err(SetupError::Store(StoreError::Unavailable(_)))),
        "{:?}",
        result.map(|_| ())
    );
    assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
    silent.abort();
}

#[tokio::test]
async fn an_outage_is_unavailable_and_the_store_recovers() {
    let mut relay = common::Relay::start(common::upstream().await).await;
    // A ready client, as an application would pass one (SESSION_MONGODB). A short server
    // selection keeps the test quick; the defaults are timed by the tests above.
    let mut options = common::options_via(relay.port).await;
    options.server_selection_timeout = Some(Duration::from_secs(1));
    let client = Client::with_options(options).unwrap();
    let store = common::connect_with(
        MongoStore::builder()
            .client(client)
            .database(common::DATABASE)
            .collection(COLLECTION),
    )
    .await;
    let key = key("outage");
    store.put(&key, b"before", TTL).await.unwrap();

    relay.cut().await;
    // The relay's connections close asynchronously: poll until the store notices.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let started = Instant::now();
        let result = store.load(&key).await;
        assert!(
            started.elapsed() < PROMPTLY,
            "a call took {:?} during the outage",
            started.elapsed()
        );
        match result {
            Err(StoreError::Unavailable(_)) => break,
            Ok(_) => {}
            Err(other) => panic!("an outage gave {other}, not Unavailable"),
        }
        assert!(Instant::now() < deadline, "the outage was never noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for result in [
        store.put(&key, b"during", TTL).await.map(|_| ()),
        store.create(&key, b"during", TTL).await.map(|_| ()),
        store.touch(&key, TTL).await.map(|_| ()),
        store.delete(&key).await,
    ] {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }

    relay.restore().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let entry = loop {
        match store.load(&key).await {
            Ok(entry) => break entry,
            Err(StoreError::Unavailable(_)) => {
                assert!(Instant::now() < deadline, "the store never recovered");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("after the outage: {other}"),
        }
    };
    assert_eq!(entry.map(|e| e.value), Some(b"before".to_vec()));
    store.put(&key, b"after", TTL).await.unwrap();
}

#[tokio::test]
async fn oversized_values_and_keys_are_refused_before_sending() {
    let store = common::connect(COLLECTION).await;
    let key = key("large");
    let too_large = vec![7u8; MAX_VALUE_BYTES + 1];
    for result in [
        store.put(&key, &too_large, TTL).await.map(|_| ()),
        store.create(&key, &too_large, TTL).await.map(|_| ()),
        store
            .compare_and_set(&key, b"x", &too_large, TTL)
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(StoreError::TooLarge { size, limit }) => {
                assert_eq!(size, MAX_VALUE_BYTES + 1);
                assert_eq!(limit, MAX_VALUE_BYTES);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.load(&key).await.unwrap(), None);

    // Compare-and-set carries the expected and the new value in one command.
    let half = vec![1u8; MAX_VALUE_BYTES / 2 + 1];
    assert!(matches!(
        store.compare_and_set(&key, &half, &half, TTL).await,
        Err(StoreError::TooLarge { .. })
    ));

    let long_key = "k".repeat(MAX_KEY_BYTES + 1);
    assert!(matches!(
        store.put(&long_key, b"v", TTL).await,
        Err(StoreError::InvalidKey(_))
    ));
    assert!(matches!(
        store.load(&long_key).await,
        Err(StoreError::InvalidKey(_))
    ));
}

#[tokio::test]
async fn the_largest_accepted_value_round_trips() {
    let store = common::connect(COLLECTION).await;
    let key = format!("{}{}", key("max"), "k".repeat(200));
    let largest: Vec<u8> = (0..MAX_VALUE_BYTES).map(|i| (i % 251) as u8).collect();
    store.put(&key, &largest, TTL).await.unwrap();
    let loaded = store.load(&key).await.unwrap().expect("largest value");
    assert!(loaded.value == largest, "the largest value changed");
    // Largest expected value plus a small new one still fits in one command.
    let small = b"\x80";
    let room = MAX_VALUE_BYTES - small.len();
    store.put(&key, &largest[..room], TTL).await.unwrap();
    assert!(store
        .compare_and_set(&key, &largest[..room], small, TTL)
        .await
        .unwrap());
    assert_eq!(
        store.load(&key).await.unwrap().map(|e| e.value),
        Some(small.to_vec())
    );
    store.delete(&key).await.unwrap();
}
