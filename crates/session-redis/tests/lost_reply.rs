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
use std::time::Duration;

use fred::interfaces::KeysInterface;
use fred::types::Expiration;
use session_core::testkit::ReplyDropper;
use session_core::{SessionStore, StoreError};
use session_redis::RedisStore;

const TTL: Duration = Duration::from_secs(300);

#[tokio::test]
async fn a_compare_and_set_whose_reply_is_lost_is_never_reported_as_not_written() {
    let server = common::PrivateRedis::start().await;
    let proxy = ReplyDropper::start(SocketAddr::from(([127, 0, 0, 1], server.port))).await;
    let direct = RedisStore::builder()
        .url(server.url())
        .pool_size(1)
        .connect()
        .await
        .expect("connect to the private server");
    // Tracking off (no invalidation pushes on the proxied connection) and no batching,
    // so that the next reply after arming is the compare-and-set's own.
    let proxied = RedisStore::builder()
        .url(format!("redis://127.0.0.1:{}", proxy.port()))
        .pool_size(1)
        .client_tracking(false)
        .write_batching(false)
        .connect()
        .await
        .expect("connect through the proxy");
    let key = "session:lost-reply";
    let set = |value: &'static [u8]| {
        let direct = direct.clone();
        async move {
            let _: () = direct
                .pool()
                .set(key, value, Some(Expiration::EX(300)), None, false)
                .await
                .expect("SET");
        }
    };
    // A first write loads the script into the server's cache, so that the write under
    // test is answered by one reply.
    set(b"warm").await;
    assert!(proxied
        .compare_and_set(key, b"warm", b"old", TTL)
        .await
        .expect("compare-and-set through the proxy"));

    proxy.arm();
    let answer = proxied.compare_and_set(key, b"old", b"new", TTL).await;
    let stored: Option<Vec<u8>> = direct.pool().get(key).await.expect("GET");
    assert_eq!(stored.as_deref(), Some(&b"new"[..]), "Redis ran the write");
    match answer {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("a write that Redis ran, its reply lost, was answered {other:?}"),
    }

    // The store reconnects and goes on.
    assert!(proxied
        .compare_and_set(key, b"new", b"newer", TTL)
        .await
        .expect("compare-and-set after the reconnect"));
}
