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
        let store = FileStore::new(dir.path().join("flask_session"))
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
        let store = session_redis::RedisStore::from_url(&url)
            .await
            .unwrap_or_else(|error| {
                panic!("Redis at {url} is not reachable ({error}); start it with `cargo xtask services up redis`")
            });
        BackendStore::new(Arc::new(store))
    }
}
