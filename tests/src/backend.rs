//! Stores the suite runs on.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use session_core::{MemoryStore, SessionStore};
use session_filesystem::FileStore;

/// A store for one scenario, with whatever must live as long as it (a temporary directory).
pub struct BackendStore {
    /// The store.
    pub store: Arc<dyn SessionStore>,
    _keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

impl BackendStore {
    /// A store that needs nothing else alive.
    pub fn new(store: Arc<dyn SessionStore>) -> BackendStore {
        BackendStore {
            store,
            _keep_alive: None,
        }
    }

    /// A store that needs `keep_alive` (dropped after the store).
    pub fn with_keep_alive(
        store: Arc<dyn SessionStore>,
        keep_alive: impl Any + Send + Sync,
    ) -> BackendStore {
        BackendStore {
            store,
            _keep_alive: Some(Box::new(keep_alive)),
        }
    }
}

/// A kind of store. `open` gives a store no other scenario uses; a backend whose server
/// is not running must panic with a message saying how to start it.
pub trait Backend: Send + Sync + 'static {
    /// A fresh store.
    fn open() -> impl Future<Output = BackendStore> + Send;
}

/// [`MemoryStore`].
#[derive(Debug)]
pub struct Memory;

impl Backend for Memory {
    async fn open() -> BackendStore {
        BackendStore::new(Arc::new(MemoryStore::new()))
    }
}

/// `session_filesystem::FileStore` in a new temporary directory.
#[derive(Debug)]
pub struct Filesystem;

impl Backend for Filesystem {
    async fn open() -> BackendStore {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let store = FileStore::open(dir.path().join("flask_session"))
            .expect("opening a FileStore in a temporary directory");
        BackendStore::with_keep_alive(Arc::new(store), dir)
    }
}

/// `session_redis::RedisStore` on the server at `REDIS_URL` (default
/// `redis://127.0.0.1:6379`). Session ids are random, so scenarios share the server safely.
#[derive(Debug)]
pub struct Redis;

impl Backend for Redis {
    async fn open() -> BackendStore {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let store = session_redis::RedisStore::connect(&url)
            .await
            .unwrap_or_else(|error| {
                panic!("Redis at {url} is not reachable ({error}); start it with `cargo xtask services up redis`")
            });
        BackendStore::new(Arc::new(store))
    }
}

/// `session_memcached::MemcachedStore` on `MEMCACHED_SERVERS` (default `127.0.0.1:11211`).
#[derive(Debug)]
pub struct Memcached;

impl Backend for Memcached {
    async fn open() -> BackendStore {
        let servers =
            std::env::var("MEMCACHED_SERVERS").unwrap_or_else(|_| "127.0.0.1:11211".into());
        let store = session_memcached::MemcachedStore::connect(&servers)
            .await
            .unwrap_or_else(|error| {
                panic!("memcached at {servers} is not usable ({error}); start it with `cargo xtask services up memcached`")
            });
        BackendStore::new(Arc::new(store))
    }
}

/// `session_sql::SqlStore` on PostgreSQL at `POSTGRES_URL`, in a table the suite creates
/// once per process (creating it from parallel tests would race on PostgreSQL's catalog).
#[derive(Debug)]
pub struct Postgres;

const SUITE_TABLE: &str = "http_suite_sessions";

impl Backend for Postgres {
    async fn open() -> BackendStore {
        static CREATED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        let url = std::env::var("POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://sessions:sessions@127.0.0.1:5432/sessions".into());
        let unreachable = |e: &dyn std::fmt::Display| -> ! {
            panic!("PostgreSQL is not reachable ({e}); start it with `cargo xtask services up postgres`")
        };
        let creator_url = url.clone();
        // The pool of a store is bound to the runtime that made it, so the table is created
        // on a runtime of its own, once.
        std::thread::spawn(move || {
            CREATED.get_or_init(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    session_sql::SqlStore::builder()
                        .table(SUITE_TABLE)
                        .url(&creator_url)
                        .connect()
                        .await
                        .unwrap_or_else(|e| unreachable(&e));
                });
            });
        })
        .join()
        .expect("table creation");
        let store = session_sql::SqlStore::builder()
            .table(SUITE_TABLE)
            .table_exists(true)
            .url(&url)
            .connect()
            .await
            .unwrap_or_else(|e| unreachable(&e));
        BackendStore::new(Arc::new(store))
    }
}

/// `session_mongodb::MongoStore` at `MONGODB_URL`, in a database of its own.
#[derive(Debug)]
pub struct MongoDb;

impl Backend for MongoDb {
    async fn open() -> BackendStore {
        let url = std::env::var("MONGODB_URL")
            .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".into());
        let store = session_mongodb::MongoStore::builder()
            .url(url)
            .database(crate::flask::unique("http_suite_"))
            .connect()
            .await
            .unwrap_or_else(|e| {
                panic!("MongoDB is not reachable ({e}); start it with `cargo xtask services up mongodb`")
            });
        BackendStore::new(Arc::new(store))
    }
}

/// `session_dynamo::DynamoStore` at `DYNAMODB_ENDPOINT`, in a table of its own.
#[derive(Debug)]
pub struct DynamoDb;

impl Backend for DynamoDb {
    async fn open() -> BackendStore {
        let endpoint =
            std::env::var("DYNAMODB_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
        let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
        let store = session_dynamo::DynamoStore::builder()
            .endpoint_url(endpoint)
            .region(region)
            .table_name(crate::flask::unique("HttpSuite"))
            .connect()
            .await
            .unwrap_or_else(|e| {
                panic!("DynamoDB is not reachable ({e}); start it with `cargo xtask services up dynamodb`")
            });
        BackendStore::new(Arc::new(store))
    }
}
