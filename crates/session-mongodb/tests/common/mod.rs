//! Helpers shared by the integration tests: the server from `MONGODB_URL`, raw access to
//! collections, and a TCP relay the outage tests can cut and restore.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::time::Duration;

use mongodb::bson::{doc, Document};
use mongodb::options::{ClientOptions, IndexOptions, ServerAddress};
use mongodb::{Client, Collection, IndexModel};
use session_mongodb::{MongoStore, MongoStoreBuilder};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The MongoDB-compatible server `cargo xtask services up mongodb` starts.
pub const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017/?directConnection=true";

/// All test collections live in this database; each test module uses its own collections.
pub const DATABASE: &str = "session_mongodb_tests";

pub fn url() -> String {
    std::env::var("MONGODB_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn unreachable(url: &str, error: impl std::fmt::Display) -> ! {
    panic!(
        "cannot reach the MongoDB-compatible server at {url} (MONGODB_URL): {error}; \
         start it with `cargo xtask services up mongodb`"
    )
}

/// A builder for the test server, database [`DATABASE`] and `collection`.
pub fn builder(collection: &str) -> MongoStoreBuilder {
    MongoStore::builder()
        .url(url())
        .database(DATABASE)
        .collection(collection)
}

/// Connects `builder`, failing the test with instructions when the server is down.
pub async fn connect_with(builder: MongoStoreBuilder) -> MongoStore {
    match builder.connect().await {
        Ok(store) => store,
        Err(error) => unreachable(&url(), error),
    }
}

/// A store on `collection` with the default options (both indexes created).
pub async fn connect(collection: &str) -> MongoStore {
    connect_with(builder(collection)).await
}

/// A store on `collection` with the unique index on `id` but no TTL index, so expired
/// documents stay until something deletes them: what the store itself does about expiry
/// is then all there is.
pub async fn connect_without_ttl_index(collection: &str) -> MongoStore {
    let store = connect_with(builder(collection).skip_index_creation(true)).await;
    let unique_id = IndexModel::builder()
        .keys(doc! { "id": 1 })
        .options(
            IndexOptions::builder()
                .name("id_1".to_owned())
                .unique(true)
                .build(),
        )
        .build();
    store
        .collection()
        .create_index(unique_id)
        .await
        .expect("create the unique index on id");
    store
}

/// A collection name no other test uses.
pub fn unique_collection(prefix: &str) -> String {
    let nonce = session_core::SessionId::generate(6).expect("random name");
    // Ids may contain '-'; collection names allow it, but keep names plain.
    format!("{prefix}_{}", nonce.as_str().replace('-', "_"))
}

/// A client of its own (not the store's) for reading and writing raw documents.
pub async fn raw_client() -> Client {
    let url = url();
    let mut options = ClientOptions::parse(&url)
        .await
        .unwrap_or_else(|error| unreachable(&url, error));
    options.server_selection_timeout = Some(Duration::from_secs(5));
    Client::with_options(options).unwrap_or_else(|error| unreachable(&url, error))
}

pub async fn raw_collection(collection: &str) -> Collection<Document> {
    raw_client().await.database(DATABASE).collection(collection)
}

/// All documents with `id` = `key`.
pub async fn documents_with_id(collection: &Collection<Document>, key: &str) -> Vec<Document> {
    let mut cursor = collection
        .find(doc! { "id": key })
        .await
        .expect("find raw documents");
    let mut documents = Vec::new();
    while cursor.advance().await.expect("read raw documents") {
        documents.push(cursor.deserialize_current().expect("a BSON document"));
    }
    documents
}

/// The collection's indexes.
pub async fn indexes(collection: &Collection<Document>) -> Vec<IndexModel> {
    let mut cursor = collection.list_indexes().await.expect("list indexes");
    let mut indexes = Vec::new();
    while cursor.advance().await.expect("read indexes") {
        indexes.push(cursor.deserialize_current().expect("an index description"));
    }
    indexes
}

/// A port nothing listens on at the moment of the call.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Client options for the test server with only its host swapped for `127.0.0.1:port`
/// (credentials and other options kept), connected directly, with the store's default
/// time limits.
pub async fn options_via(port: u16) -> ClientOptions {
    let url = url();
    let mut options = ClientOptions::parse(&url)
        .await
        .unwrap_or_else(|error| unreachable(&url, error));
    options.hosts = vec![ServerAddress::Tcp {
        host: "127.0.0.1".to_owned(),
        port: Some(port),
    }];
    options.repl_set_name = None;
    options.direct_connection = Some(true);
    options.server_selection_timeout = Some(session_mongodb::DEFAULT_SERVER_SELECTION_TIMEOUT);
    options.connect_timeout = Some(session_mongodb::DEFAULT_CONNECT_TIMEOUT);
    options
}

/// The first server of the test URL.
pub async fn upstream() -> SocketAddr {
    let url = url();
    let options = ClientOptions::parse(&url)
        .await
        .unwrap_or_else(|error| unreachable(&url, error));
    let (host, port) = match options.hosts.first() {
        Some(ServerAddress::Tcp { host, port }) => (host.clone(), port.unwrap_or(27017)),
        other => panic!("MONGODB_URL names no TCP server: {other:?}"),
    };
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .ok()
        .and_then(|mut addresses| addresses.next())
        .unwrap_or_else(|| unreachable(&url, "host does not resolve"))
}

/// A TCP relay from a local port to the server: cutting it looks, to the store, like the
/// server going away (connections reset, new ones refused); restoring it on the same port
/// brings the server back.
pub struct Relay {
    pub port: u16,
    upstream: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    pub async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let mut relay = Relay {
            port,
            upstream,
            task: None,
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        self.task = Some(tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every relayed connection.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every relayed connection.
    pub async fn cut(&mut self) {
        let task = self.task.take().expect("relay running");
        task.abort();
        let _ = task.await;
    }

    /// Listens on the same port again.
    pub async fn restore(&mut self) {
        assert!(self.task.is_none(), "relay already running");
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("re-bind the relay's port");
        self.serve(listener);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
