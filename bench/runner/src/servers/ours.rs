//! The library under test: the example app's handlers (`POST /counter` uses
//! `session.update` and `session.save`) behind `SessionLayer`, on `RedisStore` with
//! every default (msgpack, refresh threshold, lazy load, compare-and-set saves).

use anyhow::Context as _;
use session_core::{SessionConfig, SessionManager};
use session_redis::RedisStore;

/// The example app on a Redis store at `redis_url`.
pub async fn router(redis_url: &str) -> anyhow::Result<axum::Router> {
    let store = RedisStore::connect(redis_url)
        .await
        .context("session-redis cannot connect")?;
    let manager = SessionManager::new(store, SessionConfig::default());
    Ok(session_example::app(manager))
}
