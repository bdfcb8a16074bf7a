//! The store conformance kit against DynamoDB (the emulator at `DYNAMODB_ENDPOINT`, or AWS;
//! see `common/mod.rs`), in table `session-dynamo-conformance`.

mod common;

use session_core::testkit::Options;

session_core::store_conformance_tests!(
    async { common::store("session-dynamo-conformance").await },
    Options {
        max_value_bytes: Some(common::max_value_bytes()),
        // cleanup() deletes expired items (optional, TTL exists, but it works).
        cleanup_removes_expired: true,
        ..Options::default()
    }
);
