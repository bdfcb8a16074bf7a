//! Outages: a private `redis-server` is killed and restarted on the same port. While it is
//! down every call fails with `Unavailable` within the command timeout; once it is back the
//! same store works again, scripts included (the new server's script cache is empty).

mod common;

use session_core::testkit::SeedExt as _;
use std::time::{Duration, Instant};

use fred::interfaces::LuaInterface;
use session_core::{SessionStore, StoreError};
use session_redis::RedisStore;

const TTL: Duration = Duration::from_secs(300);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Scheduling slack on a busy 2-core machine on top of the command timeout.
const SLACK: Duration = Duration::from_secs(3);

async fn store_for(server: &common::PrivateRedis) -> RedisStore {
    RedisStore::builder()
        .url(server.url())
        .command_timeout(COMMAND_TIMEOUT)
        .connect_timeout(COMMAND_TIMEOUT)
        .reconnect_max_delay(Duration::from_millis(500))
        .connect()
        .await
        .expect("connect to the private server")
}

/// Runs `call` and checks it fails with `Unavailable` within the timeout.
async fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let result = tokio::time::timeout(COMMAND_TIMEOUT + SLACK * 2, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung while the server was down"));
    let elapsed = started.elapsed();
    match result {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{what} while the server was down gave {other:?}"),
    }
    assert!(
        elapsed <= COMMAND_TIMEOUT + SLACK,
        "{what} took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_survives_a_server_restart() {
    let mut server = common::PrivateRedis::start().await;
    let store = store_for(&server).await;
    store.put("k", b"before", TTL).await.unwrap();
    assert!(store
        .compare_and_set("k", b"before", b"v1", TTL)
        .await
        .unwrap());

    server.kill().await;
    assert_unavailable("load", store.load("k")).await;
    assert_unavailable("save", store.put("k", b"v", TTL)).await;
    assert_unavailable("create", store.create("new", b"v", TTL)).await;
    assert_unavailable(
        "compare_and_set",
        store.compare_and_set("k", b"v1", b"v2", TTL),
    )
    .await;
    assert_unavailable("touch", store.touch("k", TTL)).await;
    assert_unavailable("delete", store.delete("k")).await;
    assert_unavailable("rotate", store.rotate("k", b"v1", "k2", b"v2", TTL)).await;

    // Many requests at once during the outage: none hangs.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.load(&format!("k{i}")).await })
        })
        .collect();
    let started = Instant::now();
    for task in tasks {
        assert!(matches!(
            task.await.unwrap(),
            Err(StoreError::Unavailable(_))
        ));
    }
    assert!(
        started.elapsed() <= COMMAND_TIMEOUT + SLACK,
        "took {:?}",
        started.elapsed()
    );

    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.put("k", b"after", TTL).await {
            Ok(()) => break,
            Err(StoreError::Unavailable(error)) => {
                assert!(
                    Instant::now() < deadline,
                    "store did not reconnect: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("after the restart: {other}"),
        }
    }
    // The same store instance works again, scripts included.
    assert_eq!(
        store.load("k").await.unwrap().map(|e| e.value),
        Some(b"after".to_vec())
    );
    assert!(store
        .compare_and_set("k", b"after", b"v3", TTL)
        .await
        .unwrap());
    assert!(store.rotate("k", b"v3", "k2", b"v4", TTL).await.unwrap());
    assert_eq!(store.load("k").await.unwrap(), None);
    assert_eq!(
        store.load("k2").await.unwrap().map(|e| e.value),
        Some(b"v4".to_vec())
    );
}

#[tokio::test]
async fn scripts_are_resent_after_the_script_cache_is_flushed() {
    let server = common::PrivateRedis::start().await;
    let store = store_for(&server).await;
    store.put("k", b"v1", TTL).await.unwrap();
    assert!(store.compare_and_set("k", b"v1", b"v2", TTL).await.unwrap());
    let () = store.pool().script_flush(false).await.unwrap();
    assert!(store.compare_and_set("k", b"v2", b"v3", TTL).await.unwrap());
    let () = store.pool().script_flush(false).await.unwrap();
    assert!(store.rotate("k", b"v3", "k2", b"v4", TTL).await.unwrap());
    // Loading is a script too.
    let () = store.pool().script_flush(false).await.unwrap();
    assert_eq!(
        store.load("k2").await.unwrap().map(|e| e.value),
        Some(b"v4".to_vec())
    );
    assert_eq!(store.load("k").await.unwrap(), None);
}
