//! The store conformance kit of `session-core`, run twice against the MongoDB-compatible
//! server at `MONGODB_URL` (default `mongodb://127.0.0.1:27017/?directConnection=true`):
//!
//! - `with_ttl_index`: the store as deployed, both indexes created at start-up;
//! - `without_ttl_index`: only the unique index on `id`, so expired documents stay in the
//!   collection and every expiry guarantee (load, touch, compare-and-set, create, cleanup)
//!   has to come from the store's own filters, not from the server's TTL deletion.
//!
//! On this project's machines the server is mongoeco, a MongoDB emulator (started by
//! `cargo xtask services up mongodb`), not a real mongod; the same tests run unchanged
//! against a real server when `MONGODB_URL` points at one. A server that cannot be
//! reached fails every test with instructions to start it.

mod common;

use session_core::testkit::Options;
use session_mongodb::MAX_VALUE_BYTES;

mod with_ttl_index {
    use super::*;

    fn options() -> Options {
        Options {
            max_value_bytes: Some(MAX_VALUE_BYTES),
            // The TTL index may delete an expired document before cleanup sees it (mongoeco
            // deletes on the next access, mongod within a minute): either is right here.
            cleanup_removes_expired: false,
            ..Options::default()
        }
    }

    session_core::store_conformance_tests!(
        async { common::connect("conformance_with_ttl_index").await },
        options()
    );
}

mod without_ttl_index {
    use super::*;

    fn options() -> Options {
        Options {
            max_value_bytes: Some(MAX_VALUE_BYTES),
            cleanup_removes_expired: true,
            ..Options::default()
        }
    }

    session_core::store_conformance_tests!(
        async { common::connect_without_ttl_index("conformance_without_ttl_index").await },
        options()
    );
}
