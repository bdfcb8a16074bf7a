//! An axum app with server-side sessions, used by `cargo run -p session-example`, by the
//! HTTP-level test suite and by the benchmarks.
//!
//! | request | effect | response |
//! |---|---|---|
//! | `GET /` | reads the session, changes nothing | the session as a JSON object, `{}` when empty |
//! | `POST /login?user=NAME` | sets `user`, then gives the session a new id | `200`, text |
//! | `POST /counter` | adds 1 to `counter`, saves | `200`, the stored value as text |
//! | `PUT /data/{key}` | stores the JSON body under `key` | `200`, text |
//! | `DELETE /data/{key}` | removes `key` | `200`, or `404` when absent |
//! | `POST /logout` | clears the session (deleted from the store, deletion cookie) | `200`, text |
//! | `GET /health` | never touches the session | `200` `ok` |
//!
//! Invalid input (a body that is not JSON, a missing `user`, a key starting with `_`, a
//! `counter` that is not an integer) answers `400` with a short text; a store failure
//! answers an empty `503`.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use session_axum::{
    default_error_response, MemoryStore, Session, SessionError, SessionLayer, SessionManager,
    SessionStore, StoreError,
};
use session_filesystem::FileStore;

/// The app's routes behind a [`SessionLayer`] for `manager`.
pub fn app(manager: SessionManager) -> Router {
    Router::new()
        .route("/", get(show))
        .route("/login", post(login))
        .route("/counter", post(counter))
        .route("/data/{key}", put(put_data).delete(delete_data))
        .route("/logout", post(logout))
        .route("/health", get(health))
        .layer(SessionLayer::new(manager).on_error(save_failed))
}

/// The response when the session cannot be saved after a handler: `413` when the session
/// outgrew what the store accepts (the client sent too much), the library's default (an
/// empty `503` for store failures, `500` otherwise) for everything else.
fn save_failed(error: &SessionError) -> Response {
    match error {
        SessionError::Store(StoreError::TooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "session data too large").into_response()
        }
        other => default_error_response(other),
    }
}

/// The `SESSION_TYPE` values this example accepts.
const SUPPORTED: &str =
    "filesystem, memory, redis, memcached, sqlalchemy (or sql), mongodb, dynamodb";

/// The cargo feature that builds the store of `session_type`, for the network backends.
fn backend_feature(session_type: &str) -> Option<&'static str> {
    match session_type {
        "redis" => Some("redis"),
        "memcached" => Some("memcached"),
        "sqlalchemy" | "sql" => Some("sql"),
        "mongodb" => Some("mongodb"),
        "dynamodb" => Some("dynamodb"),
        _ => None,
    }
}

/// A boolean option read through `get`: true/false, 1/0, yes/no, on/off; unset is false.
#[cfg_attr(not(any(feature = "sql", feature = "dynamodb")), allow(dead_code))]
fn flag(get: &impl Fn(&str) -> Option<String>, name: &str) -> anyhow::Result<bool> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => anyhow::bail!("invalid {name}: {v:?} is not a boolean"),
    }
}

/// Redis URL used when `SESSION_REDIS_URL` is unset (Flask-Session's default server).
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The session store chosen by `SESSION_TYPE` (see [`store_from_lookup`]).
pub async fn store_from_env() -> anyhow::Result<Arc<dyn SessionStore>> {
    store_from_lookup(|name| std::env::var(name).ok()).await
}

/// The session store chosen by the `SESSION_TYPE` variable read through `lookup`:
///
/// - `filesystem` (the default): files under `SESSION_FILE_DIR` (default `flask_session`);
/// - `memory`: in the process, lost on exit;
/// - `redis`: Redis at `SESSION_REDIS_URL` (default `redis://127.0.0.1:6379`; cluster and
///   sentinel URLs as `session-redis` documents them);
/// - `memcached`: `SESSION_MEMCACHED_SERVERS`, comma-separated `host:port` (default
///   `127.0.0.1:11211`);
/// - `sqlalchemy` (or `sql`): `SESSION_SQL_URL` (`postgres://`, `mysql://`, `sqlite://`; falls
///   back to `SQLALCHEMY_DATABASE_URI`), `SESSION_SQLALCHEMY_TABLE`, `_SCHEMA`, `_SEQUENCE`,
///   `_TABLE_EXISTS`;
/// - `mongodb`: `SESSION_MONGODB_URL` (default `mongodb://127.0.0.1:27017`),
///   `SESSION_MONGODB_DB`, `SESSION_MONGODB_COLLECT`;
/// - `dynamodb`: `SESSION_DYNAMODB_ENDPOINT` (default `http://localhost:8000`),
///   `SESSION_DYNAMODB_TABLE`, `SESSION_DYNAMODB_TABLE_EXISTS`, region from `AWS_REGION`.
///
/// Anything else is an error that names `SESSION_TYPE`; so is a network backend whose cargo
/// feature (`redis`, `memcached`, `sql`, `mongodb`, `dynamodb`, all on by default) is off.
pub async fn store_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Arc<dyn SessionStore>> {
    let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    let session_type = get("SESSION_TYPE")
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "filesystem".to_owned());
    let store: Arc<dyn SessionStore> = match session_type.as_str() {
        "filesystem" => {
            let dir = get("SESSION_FILE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(FileStore::default_dir);
            let store = FileStore::open(&dir).with_context(|| {
                format!(
                    "cannot open the session directory {} (SESSION_FILE_DIR)",
                    dir.display()
                )
            })?;
            tracing::info!(dir = %store.dir().display(), "sessions are stored in files");
            Arc::new(store)
        }
        "memory" => {
            tracing::warn!("sessions are kept in memory and lost when the process exits");
            Arc::new(MemoryStore::new())
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let url = get("SESSION_REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
            let store = session_redis::RedisStore::connect(&url)
                .await
                .context("cannot connect to Redis (SESSION_REDIS_URL)")?;
            tracing::info!("sessions are stored in Redis");
            Arc::new(store)
        }
        #[cfg(feature = "memcached")]
        "memcached" => {
            let servers = get("SESSION_MEMCACHED_SERVERS").unwrap_or_default();
            let store = session_memcached::MemcachedStore::connect(&servers)
                .await
                .context("cannot connect to memcached (SESSION_MEMCACHED_SERVERS)")?;
            let servers: Vec<&str> = store.servers().collect();
            tracing::info!(?servers, "sessions are stored in memcached");
            Arc::new(store)
        }
        #[cfg(feature = "sql")]
        "sqlalchemy" | "sql" => {
            let url = get("SESSION_SQL_URL")
                .or_else(|| get("SQLALCHEMY_DATABASE_URI"))
                .context("SESSION_TYPE=sqlalchemy needs SESSION_SQL_URL (postgres://, mysql://, sqlite://)")?;
            let mut builder = session_sql::SqlStore::builder();
            if let Some(table) = get("SESSION_SQLALCHEMY_TABLE") {
                builder = builder.table(table);
            }
            if let Some(schema) = get("SESSION_SQLALCHEMY_SCHEMA") {
                builder = builder.schema(schema);
            }
            if let Some(sequence) = get("SESSION_SQLALCHEMY_SEQUENCE") {
                builder = builder.sequence(sequence);
            }
            builder = builder.table_exists(flag(&get, "SESSION_SQLALCHEMY_TABLE_EXISTS")?);
            let store = builder
                .url(&url)
                .connect()
                .await
                .context("cannot open the session table (SESSION_SQL_URL)")?;
            tracing::info!("sessions are stored in SQL");
            Arc::new(store)
        }
        #[cfg(feature = "mongodb")]
        "mongodb" => {
            let mut builder = session_mongodb::MongoStore::builder();
            if let Some(url) = get("SESSION_MONGODB_URL") {
                builder = builder.url(url);
            }
            if let Some(database) = get("SESSION_MONGODB_DB") {
                builder = builder.database(database);
            }
            if let Some(collection) = get("SESSION_MONGODB_COLLECT") {
                builder = builder.collection(collection);
            }
            let store = builder
                .connect()
                .await
                .context("cannot connect to MongoDB (SESSION_MONGODB_URL)")?;
            tracing::info!("sessions are stored in MongoDB");
            Arc::new(store)
        }
        #[cfg(feature = "dynamodb")]
        "dynamodb" => {
            let mut builder = session_dynamo::DynamoStore::builder()
                .table_exists(flag(&get, "SESSION_DYNAMODB_TABLE_EXISTS")?);
            if let Some(endpoint) = get("SESSION_DYNAMODB_ENDPOINT") {
                builder = builder.endpoint_url(endpoint);
            }
            if let Some(table) = get("SESSION_DYNAMODB_TABLE") {
                builder = builder.table_name(table);
            }
            if let Some(region) = get("AWS_REGION") {
                builder = builder.region(region);
            }
            let store = builder
                .connect()
                .await
                .context("cannot open the DynamoDB table (SESSION_DYNAMODB_ENDPOINT)")?;
            tracing::info!("sessions are stored in DynamoDB");
            Arc::new(store)
        }
        other => match backend_feature(other) {
            Some(feature) => anyhow::bail!(
                "SESSION_TYPE={other} needs this program built with the cargo feature \
                 {feature:?} (on by default)"
            ),
            None => anyhow::bail!(
                "invalid SESSION_TYPE: {other:?} is not a session type (supported: {SUPPORTED})"
            ),
        },
    };
    Ok(store)
}

/// A handler failure: bad input (`400` with a short reason) or a session error (an empty
/// `503`/`500`, detail only in the log).
#[derive(Debug)]
pub enum AppError {
    /// The request is invalid; the text says why.
    BadRequest(String),
    /// The session failed.
    Session(session_axum::Error),
}

impl From<SessionError> for AppError {
    fn from(error: SessionError) -> Self {
        match error {
            // A stored value of the wrong type for this handler is the client's doing (for
            // instance `PUT /data/counter` with a string), not a server fault.
            SessionError::Value { key, .. } => {
                AppError::BadRequest(format!("the session value {key:?} has an unexpected type"))
            }
            other => AppError::Session(other.into()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::BadRequest(reason) => (StatusCode::BAD_REQUEST, reason).into_response(),
            AppError::Session(error) => error.into_response(),
        }
    }
}

async fn show(session: Session) -> Result<Json<serde_json::Value>, AppError> {
    let data = session.data().await?;
    if data.is_empty() {
        return Ok(Json(serde_json::Value::Object(serde_json::Map::new())));
    }
    Ok(Json(data.to_json()))
}

#[derive(Deserialize)]
struct LoginParams {
    user: Option<String>,
}

async fn login(
    session: Session,
    params: Result<Query<LoginParams>, QueryRejection>,
) -> Result<String, AppError> {
    let user = params
        .ok()
        .and_then(|Query(params)| params.user)
        .filter(|user| !user.trim().is_empty())
        .ok_or_else(|| AppError::BadRequest("missing user: POST /login?user=NAME".to_owned()))?;
    session.insert("user", &user).await?;
    // A new id at login, so an id planted before login is worthless afterwards.
    session.regenerate().await?;
    Ok(format!("logged in as {user}"))
}

async fn counter(session: Session) -> Result<String, AppError> {
    session
        .update("counter", |count: Option<i64>| {
            count.unwrap_or(0).saturating_add(1)
        })
        .await?;
    // Save now so the answer is the value actually stored, after any concurrent requests'
    // increments were merged in.
    session.save().await?;
    let stored: i64 = session.get("counter").await?.unwrap_or(0);
    Ok(stored.to_string())
}

/// Keys starting with `_` are reserved for the library (`_permanent`, `_session_created`).
fn check_key(key: &str) -> Result<(), AppError> {
    if key.is_empty() || key.starts_with('_') {
        return Err(AppError::BadRequest(
            "keys must be non-empty and must not start with _".to_owned(),
        ));
    }
    Ok(())
}

async fn put_data(
    session: Session,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<String, AppError> {
    check_key(&key)?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| AppError::BadRequest("the body is not valid JSON".to_owned()))?;
    session.insert(&key, &value).await?;
    Ok(format!("stored {key}"))
}

async fn delete_data(session: Session, Path(key): Path<String>) -> Result<Response, AppError> {
    check_key(&key)?;
    Ok(match session.remove_value(&key).await? {
        Some(_) => format!("removed {key}").into_response(),
        None => (StatusCode::NOT_FOUND, format!("no {key} in the session")).into_response(),
    })
}

async fn logout(session: Session) -> Result<&'static str, AppError> {
    session.clear().await?;
    Ok("logged out")
}

async fn health() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    async fn store_for(pairs: &[(&str, &str)]) -> anyhow::Result<Arc<dyn SessionStore>> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        store_from_lookup(|name| vars.get(name).cloned()).await
    }

    #[tokio::test]
    async fn unknown_and_unsupported_types_name_session_type() {
        for value in ["bogus", "pickle", "cachelib"] {
            let error = store_for(&[("SESSION_TYPE", value)])
                .await
                .err()
                .unwrap_or_else(|| panic!("SESSION_TYPE={value} was accepted"));
            let message = error.to_string();
            assert!(message.contains("SESSION_TYPE"), "{message}");
            assert!(message.contains(&value.to_ascii_lowercase()), "{message}");
        }
    }

    #[test]
    fn every_network_backend_names_its_cargo_feature() {
        for session_type in [
            "redis",
            "memcached",
            "sqlalchemy",
            "sql",
            "mongodb",
            "dynamodb",
        ] {
            assert!(backend_feature(session_type).is_some(), "{session_type}");
        }
        assert_eq!(backend_feature("memory"), None);
        assert_eq!(backend_feature("filesystem"), None);
    }

    #[tokio::test]
    async fn memory_and_filesystem_stores_work() {
        let memory = store_for(&[("SESSION_TYPE", " Memory ")]).await.unwrap();
        memory
            .create("k", b"v", std::time::Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(memory.load("k").await.unwrap().unwrap().value, b"v");

        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("sessions");
        let dir_text = dir.to_str().unwrap();
        for session_type in [None, Some("filesystem")] {
            let mut vars = vec![("SESSION_FILE_DIR", dir_text)];
            if let Some(session_type) = session_type {
                vars.push(("SESSION_TYPE", session_type));
            }
            let store = store_for(&vars).await.unwrap();
            store
                .create("k", b"v", std::time::Duration::from_secs(60))
                .await
                .unwrap();
            assert!(dir.is_dir(), "the filesystem store did not use {dir_text}");
            assert_eq!(store.load("k").await.unwrap().unwrap().value, b"v");
        }
    }
}
