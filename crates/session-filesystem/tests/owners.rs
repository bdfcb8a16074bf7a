//! The owner index on disk: one private file per entry under `owners-v1`, gone with the
//! owner's last session, pruned by `cleanup` for owners nobody lists, and corrupt files
//! skipped rather than failing a listing.

mod common;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{files_under, TempStore};
use session_core::{IndexEntry, SessionConfig, SessionManager, SessionStore};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn owners_dir(temp: &TempStore) -> PathBuf {
    temp.dir().join("owners-v1")
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn owned_sessions_have_private_index_files_removed_with_the_sessions() {
    let temp = common::temp_store();
    let config = SessionConfig::builder().build().unwrap();
    let manager = SessionManager::new(temp.store.clone(), config);
    for _ in 0..2 {
        let session = manager.open(None);
        session.set_owner("42").await.unwrap();
        manager.finish(&session).await.unwrap();
    }
    let listed = temp.store.index_list("session:owner:42").await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let files = files_under(&owners_dir(&temp));
    assert_eq!(files.len(), 2, "{files:?}");
    #[cfg(unix)]
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(mode(&owners_dir(&temp)), 0o700);
    }
    assert_eq!(manager.sessions_of("42", None).await.unwrap().len(), 2);
    assert_eq!(manager.revoke_owner("42", None).await.unwrap(), 2);
    assert_eq!(
        std::fs::read_dir(owners_dir(&temp)).unwrap().count(),
        0,
        "the owner's index directory outlived its last entry"
    );
}

#[tokio::test]
async fn cleanup_prunes_long_expired_entries_of_owners_nobody_lists() {
    let temp = common::temp_store();
    let now = now();
    let entry = |key: &str, expires_at: u64| IndexEntry {
        key: key.to_owned(),
        created: now - 7200,
        last_seen: now - 7200,
        expires_at,
    };
    let store = &temp.store;
    store
        .index_put("session:owner:gone", &entry("session:a", now - 3600))
        .await
        .unwrap();
    store
        .index_put("session:owner:mixed", &entry("session:b", now - 3600))
        .await
        .unwrap();
    store
        .index_put("session:owner:mixed", &entry("session:c", now + 3600))
        .await
        .unwrap();
    assert_eq!(files_under(&owners_dir(&temp)).len(), 3);
    assert_eq!(
        store.cleanup().await.unwrap(),
        0,
        "index entries are not sessions"
    );
    assert_eq!(files_under(&owners_dir(&temp)).len(), 1);
    assert_eq!(
        std::fs::read_dir(owners_dir(&temp)).unwrap().count(),
        1,
        "the emptied index directory was kept"
    );
    assert_eq!(
        store.index_list("session:owner:mixed").await.unwrap(),
        vec![entry("session:c", now + 3600)]
    );
}

#[tokio::test]
async fn corrupt_index_files_are_skipped_and_the_owner_still_listed() {
    let temp = common::temp_store();
    let config = SessionConfig::builder().build().unwrap();
    let manager = SessionManager::new(temp.store.clone(), config);
    let session = manager.open(None);
    session.set_owner("7").await.unwrap();
    manager.finish(&session).await.unwrap();
    let file = files_under(&owners_dir(&temp)).pop().unwrap();
    let index_dir = file.parent().unwrap().to_path_buf();
    std::fs::write(index_dir.join("0123abcd"), b"\xff\x00garbage").unwrap();
    std::fs::write(index_dir.join("truncated"), b"v1 12").unwrap();
    let listed = manager.sessions_of("7", Some(&session)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].current);
    assert_eq!(
        files_under(&index_dir),
        vec![file.clone()],
        "corrupt files were kept"
    );
    // A truncated write of the real entry reads as no entry, not as an error.
    std::fs::write(&file, b"v1 1 2").unwrap();
    assert_eq!(manager.sessions_of("7", None).await.unwrap(), vec![]);
}
