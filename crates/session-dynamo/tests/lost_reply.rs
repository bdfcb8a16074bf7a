//! A conditional write whose response is lost with its connection: DynamoDB applied it,
//! the client never heard. The SDK's standard retry mode would send it again; applied
//! twice, a conditional write fails its own condition, and "not written" would make the
//! session layer apply the request's change a second time. The store must report such a
//! write as unknown (unavailable), never as not written.
//!
//! A relay between the store and the emulator (session-core's `testkit::ReplyDropper`)
//! forwards everything, except that once armed it drops the next response and closes that
//! connection.

mod common;

use std::time::Duration;

use session_core::testkit::{check_lost_reply, ReplyDropper};
use session_core::{SessionStore, StoreError};

const TTL: Duration = Duration::from_secs(300);

#[tokio::test]
async fn a_conditional_write_whose_response_is_lost_is_never_reported_as_not_written() {
    let table = common::unique_table("lost-reply");
    let direct = common::store(&table).await;
    let relay = ReplyDropper::start(common::emulator_address().await).await;
    // Three attempts, the SDK's default: the store must not use them for this write.
    let relayed = common::builder(&table)
        .endpoint_url(format!("http://127.0.0.1:{}", relay.port()))
        .max_attempts(3)
        .table_exists(true)
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot use {}: {error}", common::where_dynamodb_is()));
    let answer = check_lost_reply(&direct, &relayed, &relay).await;
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_))),
        "{answer:?}"
    );

    // The same for a creation, whose second sending would find its own item.
    relay.arm();
    let created = relayed.create("session:lost-create", b"v", TTL).await;
    assert!(
        matches!(created, Err(StoreError::Unavailable(_))),
        "{created:?}"
    );
    assert!(direct
        .load("session:lost-create")
        .await
        .expect("load")
        .is_some());
}
