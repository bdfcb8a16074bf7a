//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use rmpv::Value;
use session_cachelib::{CachelibStore, CachelibStoreBuilder};
use session_core::testkit::Guarded;
use session_core::{IndexEntry, SessionStore, StoreError, StoredEntry};
use tempfile::TempDir;

/// A [`CachelibStore`] in a fresh temporary directory, removed when the store (and so the
/// test holding it) is dropped. Derefs to the store.
pub type TempStore = Guarded<CachelibStore, TempDir>;

pub fn temp_store() -> TempStore {
    temp_store_with(|builder| builder)
}

/// A store built by `configure` from a builder already pointed at a fresh directory.
pub fn temp_store_with(
    configure: impl FnOnce(CachelibStoreBuilder) -> CachelibStoreBuilder,
) -> TempStore {
    let guard = tempfile::tempdir().expect("temporary directory");
    let builder = CachelibStore::builder().dir(guard.path().join("flask_session"));
    let store = configure(builder).build().expect("open store");
    Guarded { store, guard }
}

/// Names in the store's directory, sorted.
pub fn names(store: &CachelibStore) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.dir())
        .expect("listing the store")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Writes a cache file directly, as another cachelib writer (Flask) would.
pub fn plant(store: &CachelibStore, key: &str, expires: u32, payload: &[u8]) -> PathBuf {
    let path = store.file_path(key);
    let mut bytes = expires.to_ne_bytes().to_vec();
    bytes.extend_from_slice(payload);
    std::fs::write(&path, bytes).expect("planting a cache file");
    path
}

/// The expiry header and payload of `key`'s file.
pub fn file(store: &CachelibStore, key: &str) -> Option<(u32, Vec<u8>)> {
    let bytes = std::fs::read(store.file_path(key)).ok()?;
    let expires = u32::from_ne_bytes(bytes[..4].try_into().unwrap());
    Some((expires, bytes[4..].to_vec()))
}

/// Runs a store's checks on session maps: every value `v` goes in as the msgpack map
/// `{"v": bin(v)}` and comes out of it, so each write takes the pickle path (a dict Flask
/// can read) instead of the raw-bytes one.
pub struct AsSessions<S>(pub S);

/// `{"v": bin(value)}` as msgpack.
pub fn wrap(value: &[u8]) -> Vec<u8> {
    msgpack(&Value::Map(vec![(
        Value::from("v"),
        Value::Binary(value.to_vec()),
    )]))
}

fn unwrap(bytes: Vec<u8>) -> Vec<u8> {
    let value = rmpv::decode::read_value(&mut bytes.as_slice()).expect("a msgpack session");
    match value {
        Value::Map(mut entries) if entries.len() == 1 => match entries.pop() {
            Some((key, Value::Binary(inner))) if key == Value::from("v") => inner,
            other => panic!("not a wrapped value: {other:?}"),
        },
        other => panic!("not a wrapped value: {other:?}"),
    }
}

pub fn msgpack(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).expect("encoding");
    out
}

#[session_core::async_trait]
impl<S: SessionStore> SessionStore for AsSessions<S> {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        Ok(self.0.load(key).await?.map(|entry| StoredEntry {
            value: unwrap(entry.value),
            expires_at: entry.expires_at,
        }))
    }
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.0.create(key, &wrap(value), ttl).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.0
            .compare_and_set(key, &wrap(expected), &wrap(value), ttl)
            .await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.0.touch(key, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await
    }
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.0.compare_and_delete(key, &wrap(expected)).await
    }
    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.0
            .rotate(old_key, &wrap(expected), new_key, &wrap(value), ttl)
            .await
    }
    async fn cleanup(&self) -> Result<u64, StoreError> {
        self.0.cleanup().await
    }
    fn owner_index(&self) -> bool {
        self.0.owner_index()
    }
    async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        self.0.index_put(index, entry).await
    }
    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        self.0.index_remove(index, key).await
    }
    async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        self.0.index_list(index).await
    }
}

/// Adds one to the integer `n` of the session under `key` with load + compare_and_set,
/// retrying on conflict; returns how many attempts it took.
pub async fn increment(store: &dyn SessionStore, key: &str, ttl: Duration) -> u32 {
    for attempt in 1..=10_000 {
        let current = store
            .load(key)
            .await
            .expect("load")
            .expect("counter exists")
            .value;
        let n = counter_of(&current);
        let next = counter(n + 1);
        if store
            .compare_and_set(key, &current, &next, ttl)
            .await
            .expect("compare_and_set")
        {
            return attempt;
        }
        tokio::task::yield_now().await;
    }
    panic!("an increment never succeeded");
}

/// The session `{"_permanent": true, "n": n}` as msgpack.
pub fn counter(n: u64) -> Vec<u8> {
    msgpack(&Value::Map(vec![
        (Value::from("_permanent"), Value::Boolean(true)),
        (Value::from("n"), Value::from(n)),
    ]))
}

/// `n` of a [`counter`] session.
pub fn counter_of(bytes: &[u8]) -> u64 {
    let value = rmpv::decode::read_value(&mut &bytes[..]).expect("a msgpack session");
    let Value::Map(entries) = value else {
        panic!("not a map: {value:?}");
    };
    entries
        .iter()
        .find(|(key, _)| *key == Value::from("n"))
        .and_then(|(_, n)| n.as_u64())
        .expect("n")
}
