//! The conformance kit of session-core on an `AnyStore`: every trait method, the chosen
//! store's atomic rotation and cleanup included, reaches the store behind it. On the
//! filesystem store, which needs no server and overrides `rotate` and `cleanup`.

use session_any::{AnyStore, SessionType};

async fn any_store() -> AnyStore {
    let dir = tempfile::Builder::new()
        .prefix("any-conformance")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch directory")
        .keep()
        // The scratch directory is open to others; the store refuses that, so it gets
        // a private subfolder of its own.
        .join("sessions");
    let dir = dir.to_str().expect("UTF-8 path").to_owned();
    let store = AnyStore::from_lookup(move |name| match name {
        "SESSION_TYPE" => Some("filesystem".to_owned()),
        "SESSION_FILE_DIR" => Some(dir.clone()),
        _ => None,
    })
    .await
    .expect("a filesystem store");
    assert_eq!(store.session_type(), SessionType::Filesystem);
    store
}

session_core::store_conformance_tests!(
    any_store(),
    session_core::testkit::Options {
        cleanup_removes_expired: true,
        ..Default::default()
    }
);
