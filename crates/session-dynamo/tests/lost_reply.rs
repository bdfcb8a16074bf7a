//! A conditional write whose response is lost with its connection: DynamoDB applied it,
//! the client never heard. The SDK's standard retry mode would send it again; applied
//! twice, a conditional write fails its own condition, and "not written" would make the
//! session layer apply the request's change a second time. The store must report such a
//! write as unknown (unavailable), never as not written.
//!
//! A relay between the store and the emulator forwards everything, except that once armed
//! it drops the next response and closes that connection.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use session_core::{SessionStore, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const TTL: Duration = Duration::from_secs(300);

/// A TCP relay to the emulator that, when armed, swallows the next response and closes
/// that connection.
struct ResponseDropper {
    port: u16,
    armed: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl ResponseDropper {
    async fn start() -> ResponseDropper {
        let upstream = common::emulator_address().await;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let armed = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let armed = armed.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let armed = armed.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            relay(client, server, armed).await;
                        }
                    });
                }
            }
        });
        ResponseDropper { port, armed, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

impl Drop for ResponseDropper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, armed: Arc<AtomicBool>) {
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
                    // The response is dropped; both halves close below.
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
async fn a_conditional_write_whose_response_is_lost_is_never_reported_as_not_written() {
    let table = common::unique_table("lost-reply");
    let direct = common::store(&table).await;
    let relay = ResponseDropper::start().await;
    // Three attempts, the SDK's default: the store must not use them for this write.
    let relayed = common::builder(&table)
        .endpoint_url(relay.url())
        .max_attempts(3)
        .table_exists(true)
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot use {}: {error}", common::where_dynamodb_is()));
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
        "DynamoDB applied the write"
    );
    match answer {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("a write that DynamoDB applied, its response lost, was answered {other:?}"),
    }

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

    // The store goes on over a new connection.
    assert!(relayed
        .compare_and_set(key, b"new", b"newer", TTL)
        .await
        .expect("compare-and-set after the lost response"));
}
