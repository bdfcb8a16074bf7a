//! Comparison (a): tower-sessions with tower-sessions-redis-store, set up as the store's
//! documented example does (a fred pool of 6 connections, `SessionManagerLayer` with
//! `with_secure(false)` for plain HTTP) and the counter handler of tower-sessions' docs.
//! Everything else keeps its default (session-cookie expiry, no `always_save`).
//!
//! Comparison (a'): the same Redis store and handlers behind tower-sessions'
//! `CachingSessionStore`, with tower-sessions-moka-store's `MokaStore` as the cache, as
//! tower-sessions' "Layered caching" documentation shows (`MokaStore::new(Some(10_000))`).

use anyhow::Context as _;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tower_sessions::{CachingSessionStore, Session, SessionManagerLayer, SessionStore};
use tower_sessions_moka_store::MokaStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_redis_store::RedisStore;

const COUNTER_KEY: &str = "counter";
const USER_KEY: &str = "user";

/// Sessions the moka cache of (a') holds at most: the figure of tower-sessions' own
/// example, and the default bound of ours (`SESSION_CACHE_MAX_ENTRIES`).
const MOKA_CAPACITY: u64 = 10_000;

/// The tower-sessions app on Redis at `redis_url`.
pub async fn router(redis_url: &str) -> anyhow::Result<Router> {
    Ok(app(redis_store(redis_url).await?))
}

/// The tower-sessions app on a moka cache in front of the Redis store at `redis_url`.
pub async fn caching_router(redis_url: &str) -> anyhow::Result<Router> {
    let moka_store = MokaStore::new(Some(MOKA_CAPACITY));
    let caching_store = CachingSessionStore::new(moka_store, redis_store(redis_url).await?);
    Ok(app(caching_store))
}

async fn redis_store(redis_url: &str) -> anyhow::Result<RedisStore<Pool>> {
    let config = Config::from_url(redis_url).context("invalid Redis URL")?;
    let pool = Pool::new(config, None, None, None, 6)?;
    // The connection task runs for the life of the process.
    let _connection = pool.connect();
    pool.wait_for_connect()
        .await
        .context("tower-sessions' fred pool cannot connect")?;
    Ok(RedisStore::new(pool))
}

/// The routes and handlers, the same for (a) and (a').
fn app<S: SessionStore + Clone>(store: S) -> Router {
    let layer = SessionManagerLayer::new(store).with_secure(false);
    Router::new()
        .route("/", get(show))
        .route("/login", post(login))
        .route("/counter", post(counter))
        .layer(layer)
}

fn internal(error: tower_sessions::session::Error) -> StatusCode {
    eprintln!("tower-sessions error: {error}");
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn counter(session: Session) -> Result<String, StatusCode> {
    let count: usize = session
        .get(COUNTER_KEY)
        .await
        .map_err(internal)?
        .unwrap_or_default();
    let count = count + 1;
    session.insert(COUNTER_KEY, count).await.map_err(internal)?;
    Ok(count.to_string())
}

/// tower-sessions has no "all values" accessor, so the app reads the keys it knows.
async fn show(session: Session) -> Result<Json<serde_json::Value>, StatusCode> {
    let mut object = serde_json::Map::new();
    for key in [USER_KEY, COUNTER_KEY] {
        if let Some(value) = session.get_value(key).await.map_err(internal)? {
            object.insert(key.to_owned(), value);
        }
    }
    Ok(Json(serde_json::Value::Object(object)))
}

#[derive(Deserialize)]
struct LoginParams {
    user: String,
}

async fn login(
    session: Session,
    axum::extract::Query(params): axum::extract::Query<LoginParams>,
) -> Result<&'static str, StatusCode> {
    session
        .insert(USER_KEY, params.user)
        .await
        .map_err(internal)?;
    // A new id at login, as tower-sessions' docs advise against session fixation.
    session.cycle_id().await.map_err(internal)?;
    Ok("logged in")
}
