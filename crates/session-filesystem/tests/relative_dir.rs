//! Relative directories resolve once, when the store is opened. Alone in its test binary
//! because it changes the process's working directory.

use session_core::testkit::SeedExt as _;
use std::time::Duration;

use session_core::SessionStore;
use session_filesystem::FileStore;

#[tokio::test]
async fn relative_directory_is_resolved_when_opened() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    std::env::set_current_dir(first.path()).unwrap();
    let expected = std::env::current_dir().unwrap().join("flask_session");
    assert_eq!(FileStore::default_dir(), expected);

    let store = FileStore::open("flask_session").unwrap();
    assert_eq!(store.dir(), expected);
    assert!(expected.join("locks").is_dir());

    // Moving the process elsewhere does not move the store.
    std::env::set_current_dir(second.path()).unwrap();
    store
        .put("session:k", b"v", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(expected.join("index-v5").is_dir());
    assert!(!second.path().join("flask_session").exists());
    assert_eq!(store.load("session:k").await.unwrap().unwrap().value, b"v");
}

#[cfg(unix)]
#[test]
fn a_new_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().unwrap();
    let store = FileStore::open(temp.path().join("nested").join("flask_session")).unwrap();
    let mode = std::fs::metadata(store.dir()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}
