//! The default directory is Flask-Session's: `flask_session` under the working directory,
//! resolved once when the store is built. (A test binary of its own: it changes the
//! process's working directory.)

use std::time::Duration;

use session_cachelib::CachelibStore;
use session_core::SessionStore;

#[tokio::test]
async fn the_default_directory_is_flask_session_under_the_working_directory() {
    let temp = tempfile::tempdir().unwrap();
    let cwd = temp.path().canonicalize().unwrap();
    std::env::set_current_dir(&cwd).unwrap();
    let store = CachelibStore::builder().build().unwrap();
    assert_eq!(store.dir(), cwd.join("flask_session"));
    assert!(cwd.join("flask_session").is_dir());

    // Moving elsewhere afterwards does not move the store.
    let other = tempfile::tempdir().unwrap();
    std::env::set_current_dir(other.path()).unwrap();
    store
        .create("session:k", b"\x81\xa1a\x01", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store
        .file_path("session:k")
        .starts_with(cwd.join("flask_session")));
    assert!(!other.path().join("flask_session").exists());
}
