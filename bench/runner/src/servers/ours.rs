//! The library under test: the example app's handlers (`POST /counter` uses
//! `session.update` and `session.save`) behind `SessionLayer`, on `RedisStore` with
//! every default (msgpack, refresh threshold, lazy load, compare-and-set saves).

use std::sync::Arc;

use anyhow::Context as _;
use session_any::AnyStore;
use session_core::{SessionConfig, SessionManager, SessionStore};

/// The store an application configured with `SESSION_TYPE=redis` and
/// `SESSION_REDIS_URL=redis_url` gets from session-any: `RedisStore` with its defaults.
pub async fn store(redis_url: &str) -> anyhow::Result<Arc<dyn SessionStore>> {
    AnyStore::from_lookup(|name| match name {
        "SESSION_TYPE" => Some("redis".to_owned()),
        "SESSION_REDIS_URL" => Some(redis_url.to_owned()),
        _ => None,
    })
    .await
    // The store itself, not the AnyStore around it: one dynamic call per store operation.
    .map(AnyStore::into_shared)
    .context("session-any cannot connect the Redis store")
}

/// The example app on a Redis store at `redis_url`.
pub async fn router(redis_url: &str) -> anyhow::Result<axum::Router> {
    let manager = SessionManager::from_shared(store(redis_url).await?, SessionConfig::default());
    Ok(session_example::app(manager))
}
