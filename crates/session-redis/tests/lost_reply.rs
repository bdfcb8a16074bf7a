//! A write whose reply is lost with its connection: Redis ran it, the client never heard.
//! fred would send the command again on the next connection; a compare-and-set sent again
//! finds its own new bytes, answers "not written", and the session layer would then apply
//! the request's change a second time (an increment counted twice). The store must report
//! such a write as unknown (unavailable), never as not written.
//!
//! A proxy between the store and a private `redis-server` forwards everything, except
//! that once armed it drops the next reply from Redis and closes the client's connection.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fred::interfaces::KeysInterface;
use fred::types::Expiration;
use session_core::{SessionStore, StoreError};
use session_redis::RedisStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const TTL: Duration = Duration::from_secs(300);

/// A TCP proxy to `127.0.0.1:upstream` that, when armed, swallows the next reply and
/// closes that client connection.
struct ReplyDropper {
    port: u16,
    armed: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl ReplyDropper {
    async fn start(upstream: u16) -> ReplyDropper {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let armed = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let armed = armed.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(client, upstream, armed.clone()));
                }
            }
        });
        ReplyDropper { port, armed, task }
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

impl Drop for ReplyDropper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, upstream: u16, armed: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    });
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match server_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                if armed.swap(false, Ordering::SeqCst) {
                    // The reply is dropped; both halves close below.
                    break;
                }
                if client_write.write_all(&buffer[..read]).await.is_err() {
                    break;
                }
            }
        }
    }
    requests.abort();
}

#[tokio::test]
async fn a_compare_and_set_whose_reply_is_lost_is_never_reported_as_not_written() {
    let server = common::PrivateRedis::start().await;
    let proxy = ReplyDropper::start(server.port).await;
    let direct = RedisStore::builder()
        .url(server.url())
        .pool_size(1)
        .connect()
        .await
        .expect("connect to the private server");
    // Tracking off (no invalidation pushes on the proxied connection) and no batching,
    // so that the next reply after arming is the compare-and-set's own.
    let proxied = RedisStore::builder()
        .url(format!("redis://127.0.0.1:{}", proxy.port))
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
