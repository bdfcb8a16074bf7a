//! [`MemoryStore`]: an in-process store for tests and development.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::store::{IndexEntry, SessionStore, StoredEntry};

/// Default bound on the number of entries of a [`MemoryStore`].
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

struct Entry {
    value: Vec<u8>,
    expires_at: SystemTime,
}

/// Sessions in a map inside the process: expiring, bounded, atomic. Data is lost when the
/// process exits and is not shared between processes, so use it for tests and development.
///
/// When full, a write first drops expired entries, then the entry closest to expiry.
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    /// The owner index: per index name, per session key, its entry.
    owners: Mutex<HashMap<String, HashMap<String, IndexEntry>>>,
    max_entries: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store holding up to [`DEFAULT_MAX_ENTRIES`] sessions.
    pub fn new() -> MemoryStore {
        MemoryStore::with_max_entries(DEFAULT_MAX_ENTRIES)
    }

    /// A store holding up to `max_entries` sessions (at least 1).
    pub fn with_max_entries(max_entries: usize) -> MemoryStore {
        MemoryStore {
            entries: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(1),
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        let now = SystemTime::now();
        self.lock().values().filter(|e| e.expires_at > now).count()
    }

    /// True when no live entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave a half-written map: recover it.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, IndexEntry>>> {
        self.owners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, map: &mut HashMap<String, Entry>, key: &str, value: &[u8], ttl: Duration) {
        let now = SystemTime::now();
        if !map.contains_key(key) && map.len() >= self.max_entries {
            map.retain(|_, e| e.expires_at > now);
            if map.len() >= self.max_entries {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, e)| e.expires_at)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                expires_at: expiry(now, ttl),
            },
        );
    }
}

/// When an entry written at `now` with `ttl` expires; a TTL past the clock's range (only
/// a caller bypassing the configuration can ask for one) is capped, never a panic.
fn expiry(now: SystemTime, ttl: Duration) -> SystemTime {
    now.checked_add(ttl)
        .unwrap_or_else(|| now + crate::config::MAX_LIFETIME)
}

fn live<'a>(map: &'a HashMap<String, Entry>, key: &str) -> Option<&'a Entry> {
    map.get(key).filter(|e| e.expires_at > SystemTime::now())
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        Ok(live(&self.lock(), key).map(|e| StoredEntry {
            value: e.value.clone(),
            expires_at: Some(e.expires_at),
        }))
    }

    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let mut map = self.lock();
        if live(&map, key).is_some() {
            return Ok(false);
        }
        self.insert(&mut map, key, value, ttl);
        Ok(true)
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut map = self.lock();
        if live(&map, key).is_none_or(|e| e.value != expected) {
            return Ok(false);
        }
        self.insert(&mut map, key, value, ttl);
        Ok(true)
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let mut map = self.lock();
        match map.get_mut(key).filter(|e| e.expires_at > now) {
            Some(entry) => {
                entry.expires_at = expiry(now, ttl);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let mut map = self.lock();
        if live(&map, key).is_none_or(|e| e.value != expected) {
            return Ok(false);
        }
        map.remove(key);
        Ok(true)
    }

    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut map = self.lock();
        if live(&map, old_key).is_none_or(|e| e.value != expected) || live(&map, new_key).is_some()
        {
            return Ok(false);
        }
        map.remove(old_key);
        self.insert(&mut map, new_key, value, ttl);
        Ok(true)
    }

    async fn cleanup(&self) -> Result<u64, StoreError> {
        let now = SystemTime::now();
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, e| e.expires_at > now);
        Ok((before - map.len()) as u64)
    }

    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<crate::ScanPage, StoreError> {
        let now = SystemTime::now();
        let live: Vec<String> = self
            .lock()
            .iter()
            .filter(|(key, entry)| entry.expires_at > now && key.starts_with(prefix))
            .map(|(key, _)| key.clone())
            .collect();
        Ok(crate::ScanPage::from_keys(
            live,
            prefix,
            cursor.as_deref(),
            limit,
        ))
    }

    fn owner_index(&self) -> bool {
        true
    }

    async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        let now = crate::owner::unix_now();
        let mut owners = self.owners();
        let entries = owners.entry(index.to_owned()).or_default();
        // Entries past their expiry go with every write, so an index never grows without
        // bound even when nobody lists it.
        entries.retain(|_, e| e.expires_at > now);
        entries.insert(entry.key.clone(), entry.clone());
        Ok(())
    }

    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        let mut owners = self.owners();
        if let Some(entries) = owners.get_mut(index) {
            entries.remove(key);
            if entries.is_empty() {
                owners.remove(index);
            }
        }
        Ok(())
    }

    async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        Ok(self
            .owners()
            .get(index)
            .map(|entries| entries.values().cloned().collect())
            .unwrap_or_default())
    }
}
