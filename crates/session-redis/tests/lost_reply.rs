//! A write whose reply is lost with its connection: Redis ran it, the client never heard.
//! fred would send the command again on the next connection; a compare-and-set sent again
//! finds its own new bytes, answers "not written", and the session layer would then apply
//! the request's change a second time (an increment counted twice). The store must report
//! such a write as unknown (unavailable), never as not written.
//!
//! Reads, and writes that leave nothing more when run twice, are sent again instead: the
//! request is served rather than answered 503.
//!
//! A relay between the store and a private `redis-server` (session-core's
//! `testkit::ReplyDropper`) forwards everything, except that once armed it drops the next
//! reply from Redis and closes that connection.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use session_core::testkit::{check_lost_reply, ReplyDropper};
use session_core::{SessionStore, StoreError};
use session_redis::RedisStore;

/// A private server, a relay to it, a store connected directly and one through the relay
/// (tracking off: no invalidation pushes on the relayed connection, so that the next reply
/// after arming is the command's own; no batching).
async fn relayed_pair() -> (common::PrivateRedis, ReplyDropper, RedisStore, RedisStore) {
    let server = common::PrivateRedis::start().await;
    let relay = ReplyDropper::start(SocketAddr::from(([127, 0, 0, 1], server.port))).await;
    let direct = RedisStore::builder()
        .url(server.url())
        .pool_size(1)
        .connect()
        .await
        .expect("connect to the private server");
    let relayed = RedisStore::builder()
        .url(format!("redis://127.0.0.1:{}", relay.port()))
        .pool_size(1)
        .client_tracking(false)
        .write_batching(false)
        .connect()
        .await
        .expect("connect through the relay");
    (server, relay, direct, relayed)
}

const TTL: Duration = Duration::from_secs(300);

// Commands that change nothing, or nothing more when run twice, are sent again on the next
// connection: the request is served instead of answered 503.

#[tokio::test]
async fn a_load_whose_reply_is_lost_is_read_again() {
    let (_server, relay, direct, relayed) = relayed_pair().await;
    let key = "session:lost-read";
    assert!(direct.create(key, b"stored", TTL).await.expect("create"));
    relay.arm();
    let loaded = relayed.load(key).await;
    let entry = loaded.expect("the load is read again on the next connection");
    assert_eq!(entry.map(|entry| entry.value), Some(b"stored".to_vec()));
}

#[tokio::test]
async fn a_touch_whose_reply_is_lost_is_sent_again() {
    let (_server, relay, direct, relayed) = relayed_pair().await;
    let key = "session:lost-touch";
    assert!(direct.create(key, b"stored", TTL).await.expect("create"));
    relay.arm();
    let touched = relayed.touch(key, TTL * 2).await;
    assert!(touched.expect("the touch is sent again on the next connection"));
    let entry = direct.load(key).await.expect("load").expect("still stored");
    let left = entry
        .expires_at
        .expect("an expiry")
        .duration_since(std::time::SystemTime::now());
    assert!(
        left.expect("in the future") > TTL,
        "the new lifetime was set"
    );
}

#[tokio::test]
async fn a_create_whose_reply_is_lost_is_never_reported_as_not_created() {
    let (_server, relay, direct, relayed) = relayed_pair().await;
    let key = "session:lost-create";
    relay.arm();
    // Sent again, the create would find its own entry and answer "not created".
    let created = relayed.create(key, b"stored", TTL).await;
    assert!(
        matches!(created, Err(StoreError::Unavailable(_))),
        "{created:?}"
    );
    let entry = direct.load(key).await.expect("load");
    assert_eq!(entry.map(|entry| entry.value), Some(b"stored".to_vec()));
}

#[tokio::test]
async fn a_compare_and_set_whose_reply_is_lost_is_never_reported_as_not_written() {
    let (_server, relay, direct, relayed) = relayed_pair().await;
    let answer = check_lost_reply(&direct, &relayed, &relay).await;
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_))),
        "{answer:?}"
    );
}
