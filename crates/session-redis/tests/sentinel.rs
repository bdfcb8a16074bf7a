//! The conformance kit through Redis Sentinel (`REDIS_SENTINEL_URL`, default the sentinel
//! on 127.0.0.1:26379 watching the master named `mymaster`).

mod common;

use session_core::testkit::SeedExt as _;
use std::time::Duration;

use fred::interfaces::{ClientLike, KeysInterface};
use session_core::testkit;
use session_redis::RedisStore;

const DEFAULT_URL: &str = "redis-sentinel://127.0.0.1:26379/0?sentinelServiceName=mymaster";

async fn connect() -> RedisStore {
    common::connect("REDIS_SENTINEL_URL", DEFAULT_URL, "redis-sentinel").await
}

session_core::store_conformance_tests!(async { connect().await });

#[tokio::test]
async fn talks_to_the_master_through_sentinel() {
    let store = connect().await;
    assert!(store.pool().uses_sentinels());
    assert!(!store.is_clustered());
    // Writes only succeed on a master; a replica would answer READONLY.
    let key = format!("{}k", testkit::unique_prefix("sentinel"));
    store
        .put(&key, b"v", Duration::from_secs(60))
        .await
        .unwrap();
    let ttl: i64 = store.pool().ttl(&key).await.unwrap();
    assert!((59..=60).contains(&ttl), "{ttl}");
}
