//! Throttling, end to end: DynamoDB answers a request it did not process with
//! `ThrottlingException` (HTTP 400). A conditional write may be sent again after that answer
//! and after no other (see `tests/lost_reply.rs` for why), and at most as many times as the
//! client's attempts allow; reads keep the SDK's own retries.
//!
//! The emulator never throttles, so a proxy between the store and the emulator answers
//! the next requests it is told to with DynamoDB's throttling answer, and forwards the others.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_core::{SessionStore, StoreError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const TTL: Duration = Duration::from_secs(300);

/// DynamoDB's answer to a throttled request (the body as the service sends it).
const THROTTLED_BODY: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;

/// An HTTP/1.1 proxy to the emulator that answers the next [`throttle`](Self::throttle)
/// requests with [`THROTTLED_BODY`] instead of forwarding them, and records the DynamoDB
/// operation of every request and whether it was throttled.
struct Throttler {
    port: u16,
    to_throttle: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<(String, bool)>>>,
    task: JoinHandle<()>,
}

impl Throttler {
    async fn start() -> Throttler {
        let upstream = common::emulator_address().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let to_throttle = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (to_throttle, seen) = (to_throttle.clone(), seen.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (to_throttle, seen) = (to_throttle.clone(), seen.clone());
                    tokio::spawn(async move {
                        let _ = serve(client, upstream, &to_throttle, &seen).await;
                    });
                }
            }
        });
        Throttler {
            port,
            to_throttle,
            seen,
            task,
        }
    }

    /// Throttles the next `requests` requests.
    fn throttle(&self, requests: usize) {
        self.to_throttle.store(requests, Ordering::SeqCst);
    }

    /// The requests seen since the last call: operation, and whether it was throttled.
    fn take_seen(&self) -> Vec<(String, bool)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Throttler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers the requests of one client connection, one at a time.
async fn serve(
    mut client: TcpStream,
    upstream: std::net::SocketAddr,
    to_throttle: &AtomicUsize,
    seen: &Mutex<Vec<(String, bool)>>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_message(&mut client, &mut buffer).await? else {
            return Ok(());
        };
        let operation = header(&request, "x-amz-target")
            .and_then(|target| target.rsplit('.').next().map(str::to_owned))
            .unwrap_or_default();
        let throttled = to_throttle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        seen.lock().unwrap().push((operation, throttled));
        if throttled {
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\n\
                 x-amzn-requestid: throttled\r\ncontent-length: {}\r\n\r\n{THROTTLED_BODY}",
                THROTTLED_BODY.len()
            );
            client.write_all(answer.as_bytes()).await?;
        } else {
            let mut server = TcpStream::connect(upstream).await?;
            server.write_all(&request).await?;
            let mut server_buffer = Vec::new();
            let response = read_message(&mut server, &mut server_buffer)
                .await?
                .expect("the emulator answered nothing");
            client.write_all(&response).await?;
        }
    }
}

/// One HTTP/1.1 message (head and a `content-length` body) from `stream`, with what was
/// read past it left in `buffer`; `None` when the stream ends between messages.
async fn read_message(
    stream: &mut (impl AsyncRead + Unpin),
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let length: usize = header(&buffer[..head_end], "content-length")
        .map(|value| value.parse().expect("a numeric content-length"))
        .expect("the proxy handles messages with a content-length only");
    while buffer.len() < head_end + length {
        let read = stream.read(&mut chunk).await?;
        assert!(read > 0, "the stream ended inside a message");
        buffer.extend_from_slice(&chunk[..read]);
    }
    let rest = buffer.split_off(head_end + length);
    Ok(Some(std::mem::replace(buffer, rest)))
}

/// The value of header `name` in the head of `message`.
fn header(message: &[u8], name: &str) -> Option<String> {
    let head_end = message.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&message[..head_end]).ok()?;
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// A store on the emulator directly, one through a [`Throttler`] (three attempts per
/// call, the SDK's default), and the throttler.
async fn stores(
    purpose: &str,
) -> (
    session_dynamo::DynamoStore,
    session_dynamo::DynamoStore,
    Throttler,
) {
    let table = common::unique_table(purpose);
    let direct = common::store(&table).await;
    let throttler = Throttler::start().await;
    let throttled = common::builder(&table)
        .endpoint_url(format!("http://127.0.0.1:{}", throttler.port))
        .max_attempts(3)
        .table_exists(true)
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot use {}: {error}", common::where_dynamodb_is()));
    (direct, throttled, throttler)
}

/// What the proxy records for attempts of `operation`, throttled or not in turn.
fn attempts(operation: &str, throttled: &[bool]) -> Vec<(String, bool)> {
    throttled
        .iter()
        .map(|throttled| (operation.to_owned(), *throttled))
        .collect()
}

#[tokio::test]
async fn a_throttled_conditional_write_is_sent_again_until_it_is_written() {
    let (direct, store, throttler) = stores("throttle-write").await;
    let key = "session:throttled-write";
    assert!(direct.create(key, b"old", TTL).await.expect("create"));
    throttler.take_seen();

    throttler.throttle(2);
    let written = store.compare_and_set(key, b"old", b"new", TTL).await;
    assert!(written.expect("written on the third attempt"));
    let seen = throttler.take_seen();
    let operation = seen.first().map(|(operation, _)| operation.clone());
    let operation = operation.expect("the write reached the proxy");
    assert_eq!(seen, attempts(&operation, &[true, true, false]));
    let stored = direct.load(key).await.expect("load").expect("stored");
    assert_eq!(stored.value, b"new");

    // The same for a creation.
    throttler.throttle(1);
    let created = store.create("session:throttled-create", b"v", TTL).await;
    assert!(created.expect("created on the second attempt"));
    assert_eq!(throttler.take_seen().len(), 2);
}

#[tokio::test]
async fn a_conditional_write_throttled_on_every_attempt_fails_after_the_clients_attempts() {
    let (direct, store, throttler) = stores("throttle-always").await;
    let key = "session:throttled-always";
    assert!(direct.create(key, b"old", TTL).await.expect("create"));
    throttler.take_seen();

    throttler.throttle(usize::MAX);
    let written = store.compare_and_set(key, b"old", b"new", TTL).await;
    throttler.throttle(0);
    assert!(
        matches!(written, Err(StoreError::Unavailable(_))),
        "{written:?}"
    );
    let seen = throttler.take_seen();
    assert_eq!(seen.len(), 3, "three attempts and no more: {seen:?}");
    assert!(seen.iter().all(|(_, throttled)| *throttled));
    let stored = direct.load(key).await.expect("load").expect("stored");
    assert_eq!(stored.value, b"old");
}

#[tokio::test]
async fn a_throttled_read_is_retried_by_the_sdk() {
    let (direct, store, throttler) = stores("throttle-read").await;
    let key = "session:throttled-read";
    assert!(direct.create(key, b"stored", TTL).await.expect("create"));
    throttler.take_seen();

    throttler.throttle(2);
    let loaded = store.load(key).await.expect("loaded on the third attempt");
    assert_eq!(loaded.map(|entry| entry.value), Some(b"stored".to_vec()));
    assert_eq!(
        throttler.take_seen(),
        attempts("GetItem", &[true, true, false])
    );
}
