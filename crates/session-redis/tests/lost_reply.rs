//! A write whose reply is lost with its connection: Redis ran it, the client never heard.
//! fred would send the command again on the next connection; a compare-and-set sent again
//! finds its own new bytes, answers "not written", and the session layer would then apply
//! the request's change a second time (an increment counted twice). The store must report
//! such a write as unknown (unavailable), never as not written.
//!
//! A relay between the store and a private `redis-server` (session-core's
//! `testkit::ReplyDropper`) forwards everything, except that once armed it drops the next
//! reply from Redis and closes that connection.

mod common;

use std::net::SocketAddr;

use session_core::testkit::{check_lost_reply, ReplyDropper};
use session_core::StoreError;
use session_redis::RedisStore;

#[tokio::test]
async fn a_compare_and_set_whose_reply_is_lost_is_never_reported_as_not_written() {
    let server = common::PrivateRedis::start().await;
    let relay = ReplyDropper::start(SocketAddr::from(([127, 0, 0, 1], server.port))).await;
    let direct = RedisStore::builder()
        .url(server.url())
        .pool_size(1)
        .connect()
        .await
        .expect("connect to the private server");
    // Tracking off (no invalidation pushes on the relayed connection) and no batching,
    // so that the next reply after arming is the compare-and-set's own.
    let relayed = RedisStore::builder()
        .url(format!("redis://127.0.0.1:{}", relay.port()))
        .pool_size(1)
        .client_tracking(false)
        .write_batching(false)
        .connect()
        .await
        .expect("connect through the relay");
    let answer = check_lost_reply(&direct, &relayed, &relay).await;
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_))),
        "{answer:?}"
    );
}
