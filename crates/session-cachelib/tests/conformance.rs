//! CachelibStore passes the conformance kit every store runs, on a real directory: once
//! with the kit's own values (not sessions, so kept as raw bytes behind a pickled `None`)
//! and once with every value wrapped in a session map, so that each check also runs
//! through the pickle path Flask reads.

mod common;

fn options() -> session_core::testkit::Options {
    session_core::testkit::Options {
        cleanup_removes_expired: true,
        ..Default::default()
    }
}

mod raw_values {
    use super::*;
    session_core::store_conformance_tests!(async { common::temp_store() }, options());
}

mod session_maps {
    use super::*;
    session_core::store_conformance_tests!(
        async { common::AsSessions(common::temp_store()) },
        options()
    );
}
