//! Finding 4 of the reliability issue: the default rotation (`rotate_in_steps`, which the
//! MongoDB store uses) must not lose a write, nor revive a logout, that lands on the old
//! entry while the rotation is under way. The store here pauses inside the rotation, after
//! the new entry is written and before the old one is removed, while a second client
//! writes or logs out; then the rotation resumes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use session_core::{
    async_trait, rotate_in_steps, MemoryStore, SessionStore, StoreError, StoredEntry,
};
use tokio::sync::Notify;

const TTL: Duration = Duration::from_secs(60);

/// A memory store whose next `compare_and_delete` stops until resumed.
#[derive(Default)]
struct PausingStore {
    inner: MemoryStore,
    armed: AtomicBool,
    paused: Notify,
    resume: Notify,
}

#[async_trait]
impl SessionStore for PausingStore {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        self.inner.load(key).await
    }
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.inner.create(key, value, ttl).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.compare_and_set(key, expected, value, ttl).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.touch(key, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.paused.notify_one();
            self.resume.notified().await;
        }
        self.inner.compare_and_delete(key, expected).await
    }
}

/// Starts `rotate_in_steps(old -> new)` on `store` and returns once it is paused between
/// its two steps, with the task that finishes it.
async fn paused_rotation(
    store: &Arc<PausingStore>,
) -> tokio::task::JoinHandle<Result<bool, StoreError>> {
    store.inner.create("old", b"v1", TTL).await.unwrap();
    store.armed.store(true, Ordering::SeqCst);
    let rotating = store.clone();
    let task =
        tokio::spawn(
            async move { rotate_in_steps(&*rotating, "old", b"v1", "new", b"v1", TTL).await },
        );
    tokio::time::timeout(Duration::from_secs(5), store.paused.notified())
        .await
        .expect("the rotation never reached its second step");
    assert!(
        store.inner.load("new").await.unwrap().is_some(),
        "paused after writing the new entry"
    );
    task
}

async fn value(store: &PausingStore, key: &str) -> Option<Vec<u8>> {
    store
        .inner
        .load(key)
        .await
        .unwrap()
        .map(|entry| entry.value)
}

#[tokio::test]
async fn a_write_during_rotation_is_kept_and_the_rotation_undone() {
    let store = Arc::new(PausingStore::default());
    let rotation = paused_rotation(&store).await;
    // Another request saves the session under its old id meanwhile.
    assert!(store
        .inner
        .compare_and_set("old", b"v1", b"v2", TTL)
        .await
        .unwrap());
    store.resume.notify_one();
    assert!(
        !rotation.await.unwrap().unwrap(),
        "the rotation reported success"
    );
    assert_eq!(
        value(&store, "old").await.as_deref(),
        Some(&b"v2"[..]),
        "the write was lost"
    );
    assert_eq!(
        value(&store, "new").await,
        None,
        "the session is valid under two ids"
    );
}

#[tokio::test]
async fn a_logout_during_rotation_is_not_revived_under_the_new_id() {
    let store = Arc::new(PausingStore::default());
    let rotation = paused_rotation(&store).await;
    // Another request logs the session out meanwhile.
    store.inner.delete("old").await.unwrap();
    store.resume.notify_one();
    assert!(
        !rotation.await.unwrap().unwrap(),
        "the rotation reported success"
    );
    assert_eq!(value(&store, "old").await, None);
    assert_eq!(
        value(&store, "new").await,
        None,
        "the logged-out session came back"
    );
}

#[tokio::test]
async fn an_undisturbed_rotation_moves_the_entry() {
    let store = Arc::new(PausingStore::default());
    let rotation = paused_rotation(&store).await;
    store.resume.notify_one();
    assert!(rotation.await.unwrap().unwrap());
    assert_eq!(value(&store, "old").await, None);
    assert_eq!(value(&store, "new").await.as_deref(), Some(&b"v1"[..]));
}
