//! Comparisons (b) and (c): what an application writes without a session library. The
//! session is a JSON object under `session:<id>`; the id is 32 random bytes in a
//! `session` cookie. `POST /counter` is `GET key`, decode, +1, `SET key value EX ttl`:
//! one read and one write, last writer wins. The same handlers run on fred and redis-rs, and, as the reference (e), on a map in
//! the server process.

use std::future::Future;

use anyhow::Context as _;
use axum::extract::{Query, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

const COOKIE_NAME: &str = "session";
const KEY_PREFIX: &str = "session:";
/// 31 days, as the library's default lifetime.
const TTL_SECONDS: i64 = 31 * 24 * 60 * 60;
/// 32 random bytes in unpadded URL-safe base64.
const ID_CHARS: usize = 43;

/// The two Redis commands the handlers need.
pub trait Kv: Clone + Send + Sync + 'static {
    /// `GET key`.
    fn get(&self, key: String) -> impl Future<Output = anyhow::Result<Option<Vec<u8>>>> + Send;
    /// `SET key value EX seconds`.
    fn set_ex(
        &self,
        key: String,
        value: Vec<u8>,
        seconds: i64,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

#[derive(Clone)]
struct FredKv(fred::clients::Pool);

impl Kv for FredKv {
    async fn get(&self, key: String) -> anyhow::Result<Option<Vec<u8>>> {
        use fred::interfaces::KeysInterface as _;
        Ok(self.0.get(key).await?)
    }

    async fn set_ex(&self, key: String, value: Vec<u8>, seconds: i64) -> anyhow::Result<()> {
        use fred::interfaces::KeysInterface as _;
        let expire = Some(fred::types::Expiration::EX(seconds));
        let () = self.0.set(key, value, expire, None, false).await?;
        Ok(())
    }
}

#[derive(Clone)]
struct RedisRsKv(redis::aio::ConnectionManager);

impl Kv for RedisRsKv {
    async fn get(&self, key: String) -> anyhow::Result<Option<Vec<u8>>> {
        use redis::AsyncCommands as _;
        Ok(self.0.clone().get(key).await?)
    }

    async fn set_ex(&self, key: String, value: Vec<u8>, seconds: i64) -> anyhow::Result<()> {
        use redis::AsyncCommands as _;
        let seconds = u64::try_from(seconds).unwrap_or(1);
        let () = self.0.clone().set_ex(key, value, seconds).await?;
        Ok(())
    }
}

/// The reference (e): the handlers on a map in this process, no store round trip.
#[derive(Clone, Default)]
struct MemoryKv(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>);

impl Kv for MemoryKv {
    async fn get(&self, key: String) -> anyhow::Result<Option<Vec<u8>>> {
        let map = self.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        Ok(map.get(&key).cloned())
    }

    async fn set_ex(&self, key: String, value: Vec<u8>, _seconds: i64) -> anyhow::Result<()> {
        let mut map = self.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        map.insert(key, value);
        Ok(())
    }
}

/// The handlers on an in-process map: what (b) would serve without its Redis round trips.
pub fn memory_router() -> Router {
    router(MemoryKv::default())
}

/// The handlers on a fred pool of [`session_redis::default_pool_size`] connections (one
/// per CPU the process may use, at most 4), the size the library's store uses, so that
/// the comparison is about the session layer.
pub async fn fred_router(redis_url: &str) -> anyhow::Result<Router> {
    use fred::interfaces::ClientLike as _;
    let config = fred::types::config::Config::from_url(redis_url).context("invalid Redis URL")?;
    let pool =
        fred::types::Builder::from_config(config).build_pool(session_redis::default_pool_size())?;
    pool.init().await.context("fred cannot connect")?;
    Ok(router(FredKv(pool)))
}

/// The handlers on redis-rs' `ConnectionManager` (one multiplexed connection that
/// reconnects by itself), the setup redis-rs documents for async servers.
pub async fn redis_rs_router(redis_url: &str) -> anyhow::Result<Router> {
    let client = redis::Client::open(redis_url).context("invalid Redis URL")?;
    let manager = redis::aio::ConnectionManager::new(client)
        .await
        .context("redis-rs cannot connect")?;
    Ok(router(RedisRsKv(manager)))
}

fn router<K: Kv>(kv: K) -> Router {
    Router::new()
        .route("/", get(show::<K>))
        .route("/login", post(login::<K>))
        .route("/counter", post(counter::<K>))
        .with_state(kv)
}

/// The session id from the `session` cookie, when it has the right shape.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE_NAME
                && value.len() == ID_CHARS
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .then(|| value.to_owned())
        })
}

fn new_session_id() -> Result<String, StatusCode> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn key(id: &str) -> String {
    format!("{KEY_PREFIX}{id}")
}

fn unavailable(error: anyhow::Error) -> StatusCode {
    eprintln!("redis error: {error:#}");
    StatusCode::SERVICE_UNAVAILABLE
}

async fn load<K: Kv>(kv: &K, id: &str) -> Result<Map<String, Value>, StatusCode> {
    Ok(match kv.get(key(id)).await.map_err(unavailable)? {
        // Undecodable data counts as an empty session.
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        None => Map::new(),
    })
}

async fn store<K: Kv>(kv: &K, id: &str, data: &Map<String, Value>) -> Result<(), StatusCode> {
    let bytes = serde_json::to_vec(data).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    kv.set_ex(key(id), bytes, TTL_SECONDS)
        .await
        .map_err(unavailable)
}

fn with_cookie(mut response: Response, id: &str) -> Response {
    let cookie = format!("{COOKIE_NAME}={id}; HttpOnly; Path=/");
    if let Ok(value) = HeaderValue::try_from(cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

async fn counter<K: Kv>(State(kv): State<K>, headers: HeaderMap) -> Result<Response, StatusCode> {
    let existing = session_id(&headers);
    let is_new = existing.is_none();
    let (id, mut data) = match existing {
        Some(id) => {
            let data = load(&kv, &id).await?;
            (id, data)
        }
        None => (new_session_id()?, Map::new()),
    };
    let count = data.get("counter").and_then(Value::as_i64).unwrap_or(0) + 1;
    data.insert("counter".to_owned(), Value::from(count));
    store(&kv, &id, &data).await?;
    let response = count.to_string().into_response();
    // Last writer wins: a concurrent request's increment in between is overwritten.
    Ok(if is_new {
        with_cookie(response, &id)
    } else {
        response
    })
}

async fn show<K: Kv>(State(kv): State<K>, headers: HeaderMap) -> Result<Json<Value>, StatusCode> {
    let data = match session_id(&headers) {
        Some(id) => load(&kv, &id).await?,
        None => Map::new(),
    };
    Ok(Json(Value::Object(data)))
}

#[derive(Deserialize)]
struct LoginParams {
    user: String,
}

async fn login<K: Kv>(
    State(kv): State<K>,
    Query(params): Query<LoginParams>,
) -> Result<Response, StatusCode> {
    let id = new_session_id()?;
    let mut data = Map::new();
    data.insert("user".to_owned(), Value::from(params.user));
    store(&kv, &id, &data).await?;
    Ok(with_cookie("logged in".into_response(), &id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_ids_are_read_from_the_cookie() {
        let id = new_session_id().unwrap();
        assert_eq!(id.len(), ID_CHARS);
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::try_from(format!("other=1; session={id}")).unwrap(),
        );
        assert_eq!(session_id(&headers), Some(id));
        headers.insert(COOKIE, HeaderValue::from_static("session=short"));
        assert_eq!(session_id(&headers), None);
        let wrong_chars = format!("session={}", "./".repeat(ID_CHARS).split_at(ID_CHARS).0);
        headers.insert(COOKIE, HeaderValue::try_from(wrong_chars).unwrap());
        assert_eq!(session_id(&headers), None);
    }
}
