//! A TCP relay that loses one reply, for the tests that a store never reports a write
//! whose reply was lost as "not written".

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::error::StoreError;
use crate::store::SessionStore;

/// A TCP relay to a server that forwards both ways until [armed](ReplyDropper::arm), then
/// drops the next bytes the server sends and closes that connection: a connection that
/// breaks after the server ran a request and before its reply arrived. A client that sends
/// the request again on a new connection runs it twice.
pub struct ReplyDropper {
    port: u16,
    armed: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl ReplyDropper {
    /// Listens on a free port of 127.0.0.1 and relays each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> ReplyDropper {
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
        ReplyDropper { port, armed, task }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops the next reply (whatever the server sends next, on any connection).
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

impl Drop for ReplyDropper {
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
                    // The reply is dropped; both connections close below.
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

/// Checks that `relayed`, a store that reaches its server through `relay`, never answers
/// "not written" for a compare-and-set whose reply was lost after the server applied it. A
/// client that sent the write again would find its own new bytes and answer "not written",
/// and the session layer would apply the request's change a second time. `direct` reaches
/// the same server without the relay. Also checks that `relayed` goes on afterwards.
///
/// Returns `relayed`'s answer to that write, "written" or an error (the outcome unknown),
/// for the caller to check further.
pub async fn check_lost_reply(
    direct: &dyn SessionStore,
    relayed: &dyn SessionStore,
    relay: &ReplyDropper,
) -> Result<bool, StoreError> {
    let key = format!("{}key", super::unique_prefix("lost_reply"));
    let ttl = Duration::from_secs(300);
    assert!(direct.create(&key, b"old", ttl).await.expect("create"));
    // A first write through the relay opens its connection and loads whatever the store
    // loads on first use (Redis's script), so that the write under test gets one reply.
    assert!(relayed
        .compare_and_set(&key, b"old", b"old", ttl)
        .await
        .expect("compare-and-set through the relay"));

    relay.arm();
    let answer = relayed.compare_and_set(&key, b"old", b"new", ttl).await;
    let stored = direct
        .load(&key)
        .await
        .expect("load")
        .map(|entry| entry.value);
    assert_eq!(
        stored.as_deref(),
        Some(&b"new"[..]),
        "the server applied the write"
    );
    assert!(
        !matches!(answer, Ok(false)),
        "a write the server applied, its reply lost, was answered \"not written\""
    );

    assert!(relayed
        .compare_and_set(&key, b"new", b"newer", ttl)
        .await
        .expect("compare-and-set after the lost reply"));
    answer
}
