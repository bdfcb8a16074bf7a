//! The library under test: the example app's handlers (`POST /counter` uses
//! `session.update` and `session.save`) behind `SessionLayer`, on `RedisStore` with
//! every default (msgpack, refresh threshold, lazy load, compare-and-set saves, the
//! in-process cache kept coherent by Redis's client tracking).

use std::sync::Arc;

use anyhow::Context as _;
use session_any::AnyStore;
use session_core::{SessionConfig, SessionManager, SessionStore};

/// The cache's options, the only ones ours takes from the environment: the memory check
/// sets `SESSION_CACHE_MAX_ENTRIES`, and `SESSION_CACHE=false` measures ours without its
/// cache. Every other option keeps its default whatever the environment holds.
pub const CACHE_ENV_NAMES: [&str; 4] = [
    "SESSION_CACHE",
    "SESSION_CACHE_MAX_ENTRIES",
    "SESSION_CACHE_MAX_BYTES",
    "SESSION_CACHE_MAX_STALENESS",
];

fn cache_option(name: &str) -> Option<String> {
    CACHE_ENV_NAMES
        .contains(&name)
        .then(|| std::env::var(name).ok())
        .flatten()
}

/// `SessionConfig::default()` with the cache options of the environment.
pub fn config() -> anyhow::Result<SessionConfig> {
    SessionConfig::from_lookup(cache_option).context("invalid SESSION_CACHE* variable")
}

/// The store an application configured with `SESSION_TYPE=redis` and
/// `SESSION_REDIS_URL=redis_url` gets from session-any: `RedisStore` with its defaults.
pub async fn store(redis_url: &str) -> anyhow::Result<Arc<dyn SessionStore>> {
    AnyStore::from_lookup(|name| match name {
        "SESSION_TYPE" => Some("redis".to_owned()),
        "SESSION_REDIS_URL" => Some(redis_url.to_owned()),
        // session-any skips Redis's client tracking when the cache is off.
        other => cache_option(other),
    })
    .await
    // The store itself, not the AnyStore around it: one dynamic call per store operation.
    .map(AnyStore::into_shared)
    .context("session-any cannot connect the Redis store")
}

/// The example app on a Redis store at `redis_url`.
pub async fn router(redis_url: &str) -> anyhow::Result<axum::Router> {
    let manager = SessionManager::from_shared(store(redis_url).await?, config()?);
    Ok(session_example::app(manager))
}
