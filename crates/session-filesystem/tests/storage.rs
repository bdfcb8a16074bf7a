//! What ends up on disk: shared content, leaks, cleanup, and damaged files.

mod common;

use session_core::testkit::SeedExt as _;
use std::time::{Duration, Instant, SystemTime};

use common::{content_files, index_files, TempStore};
use session_core::{SessionStore, SetupError, StoreError};
use session_filesystem::FileStore;

const TTL: Duration = Duration::from_secs(300);
const SHORT: Duration = Duration::from_secs(1);

async fn value(store: &dyn SessionStore, key: &str) -> Option<Vec<u8>> {
    store
        .load(key)
        .await
        .expect("load")
        .map(|entry| entry.value)
}

/// Waits until every key in `keys` loads as missing, failing after a deadline.
async fn wait_until_expired(store: &dyn SessionStore, keys: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    for key in keys {
        while value(store, key).await.is_some() {
            assert!(Instant::now() < deadline, "{key} did not expire");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn identical_data_under_two_keys_survives_deleting_one() {
    let temp = common::temp_store();
    temp.put("session:a", b"same bytes", TTL).await.unwrap();
    temp.put("session:b", b"same bytes", TTL).await.unwrap();
    assert_eq!(
        content_files(&temp.store).len(),
        2,
        "content shared between keys"
    );

    temp.delete("session:a").await.unwrap();
    assert_eq!(value(&temp, "session:a").await, None);
    assert_eq!(
        value(&temp, "session:b").await.as_deref(),
        Some(&b"same bytes"[..])
    );
    assert_eq!(content_files(&temp.store).len(), 1);

    // Rewriting the same bytes under the same key must not remove the new content either.
    temp.put("session:b", b"same bytes", TTL).await.unwrap();
    assert!(temp
        .compare_and_set("session:b", b"same bytes", b"same bytes", TTL)
        .await
        .unwrap());
    assert_eq!(
        value(&temp, "session:b").await.as_deref(),
        Some(&b"same bytes"[..])
    );
    assert_eq!(content_files(&temp.store).len(), 1);
}

#[tokio::test]
async fn overwrites_touches_and_deletes_leave_no_files_behind() {
    let temp = common::temp_store();
    for i in 0..100 {
        let data = if i % 2 == 0 {
            b"even".to_vec()
        } else {
            format!("odd {i}").into_bytes()
        };
        temp.put("session:k", &data, TTL).await.unwrap();
        assert!(temp.touch("session:k", TTL).await.unwrap());
    }
    assert_eq!(content_files(&temp.store).len(), 1, "old content leaked");
    let buckets = index_files(&temp.store);
    assert_eq!(buckets.len(), 1);
    let bucket_bytes = std::fs::metadata(&buckets[0]).unwrap().len();
    assert!(
        bucket_bytes < 4096,
        "index bucket grew to {bucket_bytes} bytes"
    );

    let current = value(&temp, "session:k").await.unwrap();
    assert!(temp
        .compare_and_set("session:k", &current, b"cas", TTL)
        .await
        .unwrap());
    assert!(temp.create("session:other", b"x", TTL).await.unwrap());
    assert!(temp
        .rotate("session:other", b"x", "session:rotated", b"y", TTL)
        .await
        .unwrap());
    assert_eq!(content_files(&temp.store).len(), 2);

    temp.delete("session:k").await.unwrap();
    temp.delete("session:rotated").await.unwrap();
    assert_eq!(content_files(&temp.store), Vec::<std::path::PathBuf>::new());
    assert_eq!(index_files(&temp.store), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn touch_rewrites_only_the_expiry() {
    let temp = common::temp_store();
    temp.put("session:k", b"v", SHORT).await.unwrap();
    let before = content_files(&temp.store);
    let written = std::fs::metadata(&before[0]).unwrap().modified().unwrap();
    assert!(temp.touch("session:k", TTL).await.unwrap());
    assert_eq!(
        content_files(&temp.store),
        before,
        "touch wrote new content"
    );
    let touched = std::fs::metadata(&before[0]).unwrap().modified().unwrap();
    assert_eq!(touched, written, "touch rewrote the content file");
    let entry = temp.load("session:k").await.unwrap().unwrap();
    let expires_at = entry.expires_at.expect("expiry");
    assert!(
        expires_at > SystemTime::now() + TTL - Duration::from_secs(10),
        "expiry not extended"
    );
    assert_eq!(entry.value, b"v");
}

#[tokio::test]
async fn cleanup_removes_expired_entries_and_their_files_and_keeps_live_ones() {
    let temp = common::temp_store();
    let expiring: Vec<String> = (0..5).map(|i| format!("session:expiring{i}")).collect();
    let live: Vec<String> = (0..3).map(|i| format!("session:live{i}")).collect();
    for key in &expiring {
        temp.put(key, b"same", SHORT).await.unwrap();
    }
    for key in &live {
        temp.put(key, b"same", TTL).await.unwrap();
    }
    assert_eq!(
        temp.cleanup().await.unwrap(),
        0,
        "cleanup removed live entries"
    );
    assert_eq!(content_files(&temp.store).len(), 8);

    wait_until_expired(&temp, &expiring).await;
    assert_eq!(temp.cleanup().await.unwrap(), 5);
    assert_eq!(
        content_files(&temp.store).len(),
        3,
        "expired content left behind"
    );
    assert_eq!(
        index_files(&temp.store).len(),
        3,
        "expired index entries left behind"
    );
    for key in &live {
        assert_eq!(value(&temp, key).await.as_deref(), Some(&b"same"[..]));
    }
    assert_eq!(temp.cleanup().await.unwrap(), 0);
}

#[tokio::test]
async fn cleanup_of_an_empty_or_new_directory_is_zero() {
    let temp = common::temp_store();
    assert_eq!(temp.cleanup().await.unwrap(), 0);
}

#[tokio::test]
async fn expired_entries_report_their_expiry_and_vanish_from_every_operation() {
    let temp = common::temp_store();
    temp.put("session:k", b"v", SHORT).await.unwrap();
    let entry = temp.load("session:k").await.unwrap().unwrap();
    let expires_at = entry.expires_at.expect("the file store knows the expiry");
    let remaining = expires_at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(remaining <= SHORT, "expiry {remaining:?} away");

    wait_until_expired(&temp, &["session:k".to_owned()]).await;
    assert!(!temp.touch("session:k", TTL).await.unwrap());
    assert!(!temp
        .compare_and_set("session:k", b"v", b"w", TTL)
        .await
        .unwrap());
    assert!(!temp
        .rotate("session:k", b"v", "session:n", b"w", TTL)
        .await
        .unwrap());
    assert!(temp.create("session:k", b"fresh", TTL).await.unwrap());
    assert_eq!(
        value(&temp, "session:k").await.as_deref(),
        Some(&b"fresh"[..])
    );
    assert_eq!(
        content_files(&temp.store).len(),
        1,
        "expired content not replaced"
    );
}

#[tokio::test]
async fn huge_ttls_do_not_overflow() {
    let temp = common::temp_store();
    temp.put("session:forever", b"v", Duration::MAX)
        .await
        .unwrap();
    assert_eq!(
        value(&temp, "session:forever").await.as_deref(),
        Some(&b"v"[..])
    );
    assert!(temp.touch("session:forever", Duration::MAX).await.unwrap());
    temp.put("session:zero", b"v", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        value(&temp, "session:zero").await,
        None,
        "a zero TTL is expired at once"
    );
}

// ---- damaged files: never a panic, always a defined outcome ----

/// Saves one entry and returns the store with the path of its only content file.
async fn one_entry() -> (TempStore, std::path::PathBuf) {
    let temp = common::temp_store();
    temp.put("session:k", b"precious data", TTL).await.unwrap();
    let files = content_files(&temp.store);
    assert_eq!(files.len(), 1);
    (temp, files[0].clone())
}

/// A damaged entry reads as missing and the key is usable again at once.
async fn assert_reads_as_missing_and_recovers(temp: &TempStore) {
    assert_eq!(value(temp, "session:k").await, None);
    assert!(!temp.touch("session:k", TTL).await.unwrap());
    assert!(!temp
        .compare_and_set("session:k", b"precious data", b"x", TTL)
        .await
        .unwrap());
    assert!(
        temp.create("session:k", b"fresh", TTL).await.unwrap(),
        "damage blocks create"
    );
    assert_eq!(
        value(temp, "session:k").await.as_deref(),
        Some(&b"fresh"[..])
    );
    temp.delete("session:k").await.unwrap();
    assert_eq!(value(temp, "session:k").await, None);
    assert_eq!(
        content_files(&temp.store).len(),
        0,
        "damaged content left behind"
    );
}

#[tokio::test]
async fn truncated_content_reads_as_missing() {
    let (temp, content) = one_entry().await;
    let bytes = std::fs::read(&content).unwrap();
    std::fs::write(&content, &bytes[..bytes.len() / 2]).unwrap();
    assert_reads_as_missing_and_recovers(&temp).await;
}

#[tokio::test]
async fn empty_content_reads_as_missing() {
    let (temp, content) = one_entry().await;
    std::fs::write(&content, b"").unwrap();
    assert_reads_as_missing_and_recovers(&temp).await;
}

#[tokio::test]
async fn overwritten_content_reads_as_missing() {
    let (temp, content) = one_entry().await;
    let len = std::fs::metadata(&content).unwrap().len() as usize;
    std::fs::write(&content, vec![0xAB; len]).unwrap();
    assert_reads_as_missing_and_recovers(&temp).await;
}

#[tokio::test]
async fn deleted_content_reads_as_missing() {
    let (temp, content) = one_entry().await;
    std::fs::remove_file(&content).unwrap();
    assert_reads_as_missing_and_recovers(&temp).await;
}

#[tokio::test]
async fn garbage_index_bucket_reads_as_missing() {
    let (temp, _) = one_entry().await;
    let bucket = index_files(&temp.store).remove(0);
    std::fs::write(
        &bucket,
        b"\xff\xfe not an index \x00\n\tgarbage\t{\"key\":1}\n",
    )
    .unwrap();
    assert_eq!(value(&temp, "session:k").await, None);
    assert!(temp.create("session:k", b"fresh", TTL).await.unwrap());
    assert_eq!(
        value(&temp, "session:k").await.as_deref(),
        Some(&b"fresh"[..])
    );
    assert_eq!(
        temp.cleanup().await.unwrap(),
        0,
        "the new live entry must survive cleanup"
    );
    assert_eq!(
        value(&temp, "session:k").await.as_deref(),
        Some(&b"fresh"[..])
    );
}

#[tokio::test]
async fn garbage_appended_to_an_index_bucket_does_not_hide_later_writes() {
    let (temp, _) = one_entry().await;
    let bucket = index_files(&temp.store).remove(0);
    let mut bytes = std::fs::read(&bucket).unwrap();
    bytes.extend_from_slice(b"\n\xc3\x28 half a line of another writer");
    std::fs::write(&bucket, bytes).unwrap();
    // The entry before the damage is still intact and readable.
    assert_eq!(
        value(&temp, "session:k").await.as_deref(),
        Some(&b"precious data"[..])
    );
    // A write after the damage must be visible, not hidden behind the unreadable line.
    temp.put("session:k", b"second", TTL).await.unwrap();
    assert_eq!(
        value(&temp, "session:k").await.as_deref(),
        Some(&b"second"[..])
    );
    assert!(temp.touch("session:k", TTL).await.unwrap());
    assert_eq!(
        value(&temp, "session:k").await.as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(content_files(&temp.store).len(), 1);
}

#[tokio::test]
async fn truncated_index_bucket_falls_back_to_missing() {
    let temp = common::temp_store();
    temp.put("session:k", b"first", TTL).await.unwrap();
    temp.put("session:k", b"second", TTL).await.unwrap();
    // Cut the newest index line in half: the older line points at content removed by the
    // second save, so the entry reads as missing rather than as stale data.
    let bucket = index_files(&temp.store).remove(0);
    let bytes = std::fs::read(&bucket).unwrap();
    std::fs::write(&bucket, &bytes[..bytes.len() - 20]).unwrap();
    assert_eq!(value(&temp, "session:k").await, None);
    temp.put("session:k", b"third", TTL).await.unwrap();
    assert_eq!(
        value(&temp, "session:k").await.as_deref(),
        Some(&b"third"[..])
    );
}

#[tokio::test]
async fn entries_written_by_other_cacache_users_are_not_sessions() {
    let temp = common::temp_store();
    // A valid cacache entry without this store's header or expiry metadata.
    cacache::write_sync(temp.dir(), "session:foreign", b"raw").unwrap();
    assert_eq!(value(&temp, "session:foreign").await, None);
    assert!(!temp.touch("session:foreign", TTL).await.unwrap());
    assert_eq!(
        temp.cleanup().await.unwrap(),
        1,
        "a foreign entry is garbage to cleanup"
    );
    assert_eq!(content_files(&temp.store).len(), 0);
    assert!(temp.create("session:foreign", b"mine", TTL).await.unwrap());
    assert_eq!(
        value(&temp, "session:foreign").await.as_deref(),
        Some(&b"mine"[..])
    );
}

#[tokio::test]
async fn an_unusable_lock_folder_is_a_backend_error() {
    let temp = common::temp_store();
    let locks = temp.dir().join("locks");
    std::fs::remove_dir_all(&locks).unwrap();
    std::fs::write(&locks, b"a file where the lock folder belongs").unwrap();
    let result = temp.put("session:k", b"v", TTL).await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    let result = temp.load("session:k").await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");

    // Once the folder is back, the store works again without being reopened.
    std::fs::remove_file(&locks).unwrap();
    temp.put("session:k", b"v", TTL).await.unwrap();
    assert_eq!(value(&temp, "session:k").await.as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn a_content_path_that_cannot_be_read_is_a_backend_error() {
    let (temp, content) = one_entry().await;
    // A directory where the content file should be: an I/O failure, not damaged data.
    std::fs::remove_file(&content).unwrap();
    std::fs::create_dir(&content).unwrap();
    let result = temp.load("session:k").await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    std::fs::remove_dir(&content).unwrap();
    assert_eq!(value(&temp, "session:k").await, None);
}

/// The option name of a setup error that must be a configuration error.
fn config_option(result: Result<FileStore, SetupError>) -> (&'static str, String) {
    match result {
        Err(SetupError::Config(error)) => (error.option, error.to_string()),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_directory_that_is_a_file_cannot_be_opened() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let (option, message) = config_option(FileStore::open(&file));
    assert_eq!(option, "SESSION_FILE_DIR");
    assert!(message.contains("not a directory"), "{message}");
}

/// A directory of Flask-Session's own filesystem sessions (cachelib's FileSystemCache:
/// files named by the md5 or sha256 hex digest of `session:<sid>`, holding a 4-byte
/// expiry and a pickle) is refused, and left exactly as it was.
#[tokio::test]
async fn a_cachelib_directory_is_refused_and_left_alone() {
    // md5("session:abc") as cachelib <= 0.15 names it; sha256 as cachelib >= 0.16 does.
    for name in [
        "32607b0dcb9d5a58fbe913b473137833",
        "a29d803b477eb42083ebd25596356c45c98474d5c0dacb79829833ca2176e85b",
    ] {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("flask_session");
        std::fs::create_dir(&dir).unwrap();
        let mut content = 0u32.to_le_bytes().to_vec();
        content.extend_from_slice(b"\x80\x05}\x94.");
        std::fs::write(dir.join(name), &content).unwrap();

        let (option, message) = config_option(FileStore::open(&dir));
        assert_eq!(option, "SESSION_FILE_DIR");
        assert!(message.contains("SESSION_TYPE=cachelib"), "{message}");
        assert!(message.contains(name), "{message}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(left, [name], "the directory was changed");
    }
}

/// Hex-looking names elsewhere (in a subdirectory, or a directory of that name, or
/// upper case) are not cachelib's, and a directory this store wrote opens again.
#[tokio::test]
async fn only_top_level_cachelib_files_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("flask_session");
    let store = FileStore::open(&dir).unwrap();
    store
        .put("session:k", b"v", Duration::from_secs(60))
        .await
        .unwrap();
    let hex = "32607b0dcb9d5a58fbe913b473137833";
    std::fs::create_dir(dir.join(hex)).unwrap();
    std::fs::write(dir.join("locks").join(hex), b"x").unwrap();
    std::fs::write(dir.join(hex.to_ascii_uppercase()), b"x").unwrap();
    let again = FileStore::open(&dir).expect("reopen our own directory");
    assert_eq!(again.load("session:k").await.unwrap().unwrap().value, b"v");
}
