//! The store conformance kit, against the real memcached named by `MEMCACHED_SERVERS`
//! (default 127.0.0.1:11211; start it with `cargo xtask services up memcached`).

mod common;

session_core::store_conformance_tests!(
    common::shared_store(),
    session_core::testkit::Options {
        max_value_bytes: Some(session_memcached::DEFAULT_MAX_VALUE_BYTES),
        ..Default::default()
    }
);
