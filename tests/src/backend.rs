//! Stores the suite runs on, built by session-any from the variables an application would
//! set, as the example apps build theirs.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use session_any::AnyStoreBuilder;
use session_core::SessionStore;

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
    /// Whether the store keeps msgpack's 32-bit floats as 32-bit. Stores that hold data in
    /// another format whose floats are all 64-bit (Python's pickle) widen them.
    const KEEPS_F32: bool = true;

    /// Whether the store keeps an owner index (`docs/owners.md`), so that `GET /sessions`
    /// and `POST /logout-everywhere` work; without one they answer `501` with the store's
    /// explanation. The one place the suite decides it: the owner scenarios also check that
    /// the store says the same (`SessionStore::owner_index`), so a store that gains an
    /// index fails them until its backend here says `true`. Memcached cannot list keys.
    const OWNER_INDEX: bool = false;

    /// A fresh store.
    fn open() -> impl Future<Output = BackendStore> + Send;
}

/// The store session-any builds from `vars` (a `SESSION_TYPE` and that store's
/// variables), as the example apps get theirs. Panics, saying how to start `service`, when
/// the store cannot be built.
pub async fn any_store(vars: &[(&str, String)], service: &str) -> Arc<dyn SessionStore> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect();
    let lookup = |name: &str| {
        vars.iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.clone())
    };
    let mut builder = AnyStoreBuilder::from_lookup(lookup);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        // The DynamoDB emulator accepts any key; the SDK needs one.
        builder = builder.dynamodb(|dynamo| dynamo.credentials("dummy", "dummy"));
    }
    match builder.connect().await {
        Ok(store) => store.into_shared(),
        Err(error) => panic!(
            "cannot build the {service} store ({error}); start it with \
             `cargo xtask services up {service}`"
        ),
    }
}

/// A test variable, or `default`.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// [`MemoryStore`](session_core::MemoryStore), through session-any's `memory` type.
#[derive(Debug)]
pub struct Memory;

impl Backend for Memory {
    const OWNER_INDEX: bool = true;

    async fn open() -> BackendStore {
        BackendStore::new(any_store(&[("SESSION_TYPE", "memory".into())], "memory").await)
    }
}

/// `session_filesystem::FileStore` in a new temporary directory.
#[derive(Debug)]
pub struct Filesystem;

impl Backend for Filesystem {
    const OWNER_INDEX: bool = true;

    async fn open() -> BackendStore {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let path = dir.path().join("flask_session");
        let store = any_store(
            &[
                ("SESSION_TYPE", "filesystem".into()),
                ("SESSION_FILE_DIR", path.display().to_string()),
            ],
            "filesystem",
        )
        .await;
        BackendStore::with_keep_alive(store, dir)
    }
}

/// `session_cachelib::CachelibStore` (Flask's own filesystem layout) in a new temporary
/// directory.
#[derive(Debug)]
pub struct Cachelib;

impl Backend for Cachelib {
    const OWNER_INDEX: bool = true;

    const KEEPS_F32: bool = false;

    async fn open() -> BackendStore {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let path = dir.path().join("flask_session");
        let vars = [
            ("SESSION_TYPE", "cachelib".into()),
            ("SESSION_FILE_DIR", path.display().to_string()),
        ];
        BackendStore::with_keep_alive(any_store(&vars, "cachelib").await, dir)
    }
}

/// `session_redis::RedisStore` on the server at `REDIS_URL` (default
/// `redis://127.0.0.1:6379`). Session ids are random, so scenarios share the server safely.
#[derive(Debug)]
pub struct Redis;

impl Backend for Redis {
    const OWNER_INDEX: bool = true;

    async fn open() -> BackendStore {
        let url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
        let vars = [("SESSION_TYPE", "redis".into()), ("SESSION_REDIS_URL", url)];
        BackendStore::new(any_store(&vars, "redis").await)
    }
}

/// `session_memcached::MemcachedStore` on `MEMCACHED_SERVERS` (default `127.0.0.1:11211`).
#[derive(Debug)]
pub struct Memcached;

impl Backend for Memcached {
    async fn open() -> BackendStore {
        let vars = [
            ("SESSION_TYPE", "memcached".into()),
            (
                "SESSION_MEMCACHED_SERVERS",
                env_or("MEMCACHED_SERVERS", "127.0.0.1:11211"),
            ),
        ];
        BackendStore::new(any_store(&vars, "memcached").await)
    }
}

/// `session_sql::SqlStore` on PostgreSQL at `POSTGRES_URL`, in a table the suite creates
/// once per process (creating it from parallel tests would race on PostgreSQL's catalog).
#[derive(Debug)]
pub struct Postgres;

const SUITE_TABLE: &str = "http_suite_sessions";

impl Backend for Postgres {
    const OWNER_INDEX: bool = true;

    async fn open() -> BackendStore {
        static CREATED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        let url = env_or(
            "POSTGRES_URL",
            "postgres://sessions:sessions@127.0.0.1:5432/sessions",
        );
        let vars = |table_exists: &str| {
            [
                ("SESSION_TYPE", "sqlalchemy".to_owned()),
                ("SESSION_SQL_URL", url.clone()),
                ("SESSION_SQLALCHEMY_TABLE", SUITE_TABLE.to_owned()),
                ("SESSION_SQLALCHEMY_TABLE_EXISTS", table_exists.to_owned()),
            ]
        };
        let create = vars("false");
        // The pool of a store is bound to the runtime that made it, so the table is created
        // on a runtime of its own, once.
        std::thread::spawn(move || {
            CREATED.get_or_init(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(any_store(&create, "postgres"));
            });
        })
        .join()
        .expect("table creation");
        BackendStore::new(any_store(&vars("true"), "postgres").await)
    }
}

/// `session_mongodb::MongoStore` at `MONGODB_URL`, in a database of its own.
#[derive(Debug)]
pub struct MongoDb;

impl Backend for MongoDb {
    const OWNER_INDEX: bool = true;

    async fn open() -> BackendStore {
        let vars = [
            ("SESSION_TYPE", "mongodb".into()),
            (
                "SESSION_MONGODB_URL",
                env_or(
                    "MONGODB_URL",
                    "mongodb://127.0.0.1:27017/?directConnection=true",
                ),
            ),
            ("SESSION_MONGODB_DB", crate::flask::unique("http_suite_")),
        ];
        BackendStore::new(any_store(&vars, "mongodb").await)
    }
}

/// `session_dynamo::DynamoStore` at `DYNAMODB_ENDPOINT`, in a table of its own.
#[derive(Debug)]
pub struct DynamoDb;

impl Backend for DynamoDb {
    const OWNER_INDEX: bool = true;

    async fn open() -> BackendStore {
        let vars = [
            ("SESSION_TYPE", "dynamodb".into()),
            (
                "SESSION_DYNAMODB_ENDPOINT",
                env_or("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
            ),
            ("AWS_REGION", env_or("AWS_REGION", "us-east-1")),
            ("SESSION_DYNAMODB_TABLE", crate::flask::unique("HttpSuite")),
        ];
        BackendStore::new(any_store(&vars, "dynamodb").await)
    }
}
