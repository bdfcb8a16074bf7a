//! A compare-and-set whose reply is lost with its connection: the server applied it, the
//! client never heard. A client that sent it again would find its own new bytes and answer
//! "not written", and the session layer would apply the request's change a second time.
//! The MongoDB driver sends a write again only as a retryable write, which a replica set
//! recognises by its transaction number and answers without applying it twice; against a
//! standalone server (the test server) it does not send it again. Either way the store
//! must answer "written" or unavailable (outcome unknown), never "not written".
//!
//! session-core's `testkit::ReplyDropper` relays to the server and, once armed, drops the
//! next reply and closes that connection.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use session_core::testkit::ReplyDropper;
use session_core::{SessionStore, StoreError};

const TTL: Duration = Duration::from_secs(300);

/// The test server's address, from its URL (`mongodb://[user@]host:port/...`).
async fn server_address() -> SocketAddr {
    let url = common::url();
    let authority = url
        .strip_prefix("mongodb://")
        .expect("a mongodb:// URL")
        .split(['/', '?'])
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    tokio::net::lookup_host(authority)
        .await
        .expect("resolve the server")
        .next()
        .expect("an address")
}

#[tokio::test]
async fn a_compare_and_set_whose_reply_is_lost_is_never_reported_as_not_written() {
    let collection = common::unique_collection("lost_reply");
    let direct = common::connect(&collection).await;
    let relay = ReplyDropper::start(server_address().await).await;
    let relayed = common::connect_with(
        session_mongodb::MongoStore::builder()
            .url(format!(
                "mongodb://127.0.0.1:{}/?directConnection=true",
                relay.port()
            ))
            .database(common::DATABASE)
            .collection(&collection),
    )
    .await;
    let key = "session:lost-reply";
    assert!(direct.create(key, b"old", TTL).await.expect("create"));
    relay.arm();
    let answer = relayed.compare_and_set(key, b"old", b"new", TTL).await;
    let stored = direct
        .load(key)
        .await
        .expect("load")
        .map(|entry| entry.value);
    assert_eq!(
        stored.as_deref(),
        Some(&b"new"[..]),
        "the server applied the write"
    );
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_)) | Ok(true)),
        "a write the server applied, its reply lost, was answered {answer:?}"
    );
}
