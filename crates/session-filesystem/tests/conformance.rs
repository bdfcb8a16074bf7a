//! FileStore passes the conformance kit every store runs, on a real directory.

mod common;

session_core::store_conformance_tests!(
    async { common::temp_store() },
    session_core::testkit::Options {
        cleanup_removes_expired: true,
        ..Default::default()
    }
);
