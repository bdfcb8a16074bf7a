//! MemoryStore passes the same conformance kit every backend runs.

use session_core::testkit::SeedExt as _;
use session_core::MemoryStore;

session_core::store_conformance_tests!(
    async { MemoryStore::new() },
    session_core::testkit::Options {
        cleanup_removes_expired: true,
        ..Default::default()
    }
);

#[tokio::test]
async fn memory_store_is_bounded() {
    use session_core::SessionStore;
    use std::time::Duration;
    let store = MemoryStore::with_max_entries(3);
    for (i, ttl) in [(0, 10), (1, 20), (2, 30), (3, 40)] {
        store
            .put(&format!("k{i}"), b"v", Duration::from_secs(ttl))
            .await
            .unwrap();
    }
    assert_eq!(store.len(), 3);
    assert!(
        store.load("k0").await.unwrap().is_none(),
        "the entry closest to expiry goes first"
    );
    assert!(store.load("k3").await.unwrap().is_some());
}
