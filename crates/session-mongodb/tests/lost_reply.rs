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

use session_core::testkit::{check_lost_reply, ReplyDropper};
use session_core::StoreError;

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
    // Written, or unavailable: the driver does not send the write again here.
    let answer = check_lost_reply(&direct, &relayed, &relay).await;
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_)) | Ok(true)),
        "{answer:?}"
    );
}
