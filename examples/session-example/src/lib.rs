//! An axum app with server-side sessions, used by `cargo run -p session-example`, by the
//! HTTP-level test suite and by the benchmarks.
//!
//! | request | effect | response |
//! |---|---|---|
//! | `GET /` | reads the session, changes nothing | the session as a JSON object, `{}` when empty |
//! | `POST /login?user=NAME[&remember=SECONDS]` | sets `user` and makes NAME the session's owner (`session.set_owner`); with `remember`, the session's own lifetime (`session.set_lifetime`: cookie `Expires` and store expiry); then gives the session a new id | `200`, text |
//! | `GET /sessions` | lists the logged-in user's sessions (`SessionManager::sessions_of`) | `200`, JSON `{"sessions": [{"handle", "created", "last_seen", "expires_at", "current"}, …]}` |
//! | `POST /logout-everywhere` | ends the user's other sessions, keeps this one (`SessionManager::revoke_owner`) | `200`, JSON `{"ended": N}` |
//! | `POST /counter` | adds 1 to `counter`, saves | `200`, the stored value as text |
//! | `PUT /data/{key}` | stores the JSON body under `key` | `200`, text |
//! | `DELETE /data/{key}` | removes `key` | `200`, or `404` when absent |
//! | `POST /logout` | clears the session (deleted from the store, deletion cookie) | `200`, text |
//! | `GET /health` | never touches the session | `200` `ok` |
//! | `GET /ui` | never touches the session | the browser page of `session-example-ui` |
//!
//! The responses that carry session data (`GET /`, `POST /counter`, `GET /sessions`) are
//! sent with `Cache-Control: no-store`.
//!
//! Invalid input (a body that is not JSON, a missing or too long `user`, a `remember` that
//! is not a whole number of seconds from 1 to 100 years, a key starting with `_`, a
//! `counter` that is not an integer) answers `400` with a short text; a store failure
//! answers an empty `503`. `GET /sessions` and `POST /logout-everywhere` answer `401`
//! `{"error": …}` when nobody is logged in, and `501` `{"error": …}` (the store's own
//! explanation) on a store that keeps no owner index (memcached; see `docs/owners.md`).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, VARY};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use session_axum::{
    ErrorResponse, Keep, Session, SessionData, SessionError, SessionLayer, SessionManager,
    StoreError,
};

/// The app's routes behind a [`SessionLayer`] for `manager`.
pub fn app(manager: SessionManager) -> Router {
    Router::new()
        .route("/", get(show))
        .route("/login", post(login))
        .route("/counter", post(counter))
        .route("/data/{key}", put(put_data).delete(delete_data))
        .route("/logout", post(logout))
        .route("/sessions", get(sessions))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/health", get(health))
        .merge(session_example_ui::axum_routes())
        // Router state, not an `Extension` layer: the routes that need the manager get a
        // clone when they run, and no request pays for inserting it into its extensions.
        .with_state(manager.clone())
        .layer(SessionLayer::new(manager.on_error(save_failed)))
}

/// The response when the session cannot be saved after a handler: `413` when the session
/// outgrew what the store accepts (the client sent too much), the library's default (an
/// empty `503` for store failures, `500` otherwise) for everything else.
pub fn save_failed(error: &SessionError) -> ErrorResponse {
    match error {
        SessionError::Store(StoreError::TooLarge { .. }) => {
            ErrorResponse::new(413).with_body("session data too large")
        }
        other => ErrorResponse::new(other.status()),
    }
}

/// A handler failure: bad input (`400` with a short reason), no logged-in user (`401`), a
/// store without an owner index (`501`) or a session error (an empty `503`/`500`, detail
/// only in the log).
#[derive(Debug)]
pub enum AppError {
    /// The request is invalid; the text says why.
    BadRequest(String),
    /// The route needs a logged-in user and the session has no owner.
    NotLoggedIn,
    /// The store keeps no owner index; the text is the store's explanation.
    Unsupported(String),
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
            SessionError::Store(StoreError::Unsupported(why)) => AppError::Unsupported(why),
            other => AppError::Session(other.into()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::BadRequest(reason) => (StatusCode::BAD_REQUEST, reason).into_response(),
            AppError::NotLoggedIn => (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({ "error": NOT_LOGGED_IN })),
            )
                .into_response(),
            AppError::Unsupported(why) => (
                StatusCode::NOT_IMPLEMENTED,
                Json(serde_json::json!({ "error": why })),
            )
                .into_response(),
            AppError::Session(error) => error.into_response(),
        }
    }
}

/// `GET /`: the session as a JSON object, or as `key=value` lines when the client asks for
/// `text/plain` first.
async fn show(session: Session, headers: HeaderMap) -> Result<Response, AppError> {
    let data = session.snapshot().await?;
    let accept = headers.get(ACCEPT).and_then(|value| value.to_str().ok());
    let body = match accept {
        Some(accept) if accept.starts_with("text/plain") => text_lines(&data).into_response(),
        _ if data.is_empty() => Json(serde_json::json!({})).into_response(),
        // Written straight from the data, without a serde_json::Value in between.
        _ => Json(data.json_view()).into_response(),
    };
    // The body depends on Accept (and, as every session route's, on Cookie). It is one
    // user's session data: no cache may keep it (a browser's back button included).
    Ok(([(VARY, "Accept"), (CACHE_CONTROL, NO_STORE)], body).into_response())
}

/// `Cache-Control` of the responses that carry session data.
const NO_STORE: &str = "no-store";

/// `key=value` lines of a JSON object, values as JSON.
fn text_lines(data: &SessionData) -> String {
    if data.is_empty() {
        return String::new();
    }
    let json = data.to_json();
    let entries = json.as_object().into_iter().flatten();
    entries
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect()
}

/// The body of `401` answers.
const NOT_LOGGED_IN: &str = "not logged in: POST /login?user=NAME first";

#[derive(Deserialize)]
struct LoginParams {
    user: Option<String>,
    remember: Option<String>,
}

/// The `user` of a login: non-empty, at most [`MAX_OWNER_BYTES`](session_axum::session_core::MAX_OWNER_BYTES).
fn login_user(user: Option<String>) -> Result<String, AppError> {
    let user = user
        .filter(|user| !user.trim().is_empty())
        .ok_or_else(|| AppError::BadRequest("missing user: POST /login?user=NAME".to_owned()))?;
    if user.len() > session_axum::session_core::MAX_OWNER_BYTES {
        return Err(AppError::BadRequest(format!(
            "user must be at most {} bytes",
            session_axum::session_core::MAX_OWNER_BYTES
        )));
    }
    Ok(user)
}

/// The `remember` of a login: whole seconds from 1 to [`MAX_LIFETIME`](session_axum::session_core::MAX_LIFETIME).
fn remember_for(remember: Option<&str>) -> Result<Option<Duration>, AppError> {
    let Some(text) = remember else {
        return Ok(None);
    };
    let max = session_axum::session_core::MAX_LIFETIME.as_secs();
    match text.parse::<u64>() {
        Ok(seconds) if (1..=max).contains(&seconds) => Ok(Some(Duration::from_secs(seconds))),
        _ => Err(AppError::BadRequest(format!(
            "remember must be a whole number of seconds from 1 to {max}"
        ))),
    }
}

async fn login(
    session: Session,
    params: Result<Query<LoginParams>, QueryRejection>,
) -> Result<String, AppError> {
    let params = params.ok().map(|Query(params)| params);
    let remember = remember_for(params.as_ref().and_then(|p| p.remember.as_deref()))?;
    let user = login_user(params.and_then(|params| params.user))?;
    session.insert("user", &user).await?;
    // The owner (`_user_id`, as Flask-Login keeps it) puts the session in the user's index.
    session.set_owner(&user).await?;
    if let Some(lifetime) = remember {
        session.set_lifetime(lifetime).await?;
    }
    // A new id at login, so an id planted before login is worthless afterwards.
    session.regenerate().await?;
    Ok(format!("logged in as {user}"))
}

async fn counter(session: Session) -> Result<Response, AppError> {
    session
        .update("counter", |count: Option<i64>| {
            count.unwrap_or(0).saturating_add(1)
        })
        .await?;
    // Save now so the answer is the value actually stored, after any concurrent requests'
    // increments were merged in.
    session.save().await?;
    let stored: i64 = session.get("counter").await?.unwrap_or(0);
    Ok(([(CACHE_CONTROL, NO_STORE)], stored.to_string()).into_response())
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

/// The logged-in user: the session's owner, or `401`.
async fn logged_in(session: &Session) -> Result<String, AppError> {
    session.owner().await?.ok_or(AppError::NotLoggedIn)
}

/// `GET /sessions`: the logged-in user's sessions, by handle (never an id), the caller's own
/// marked `"current": true`.
async fn sessions(
    session: Session,
    State(manager): State<SessionManager>,
) -> Result<Response, AppError> {
    let owner = logged_in(&session).await?;
    let sessions = manager.sessions_of(&owner, Some(&session)).await?;
    let body = Json(serde_json::json!({ "sessions": sessions }));
    Ok(([(CACHE_CONTROL, NO_STORE)], body).into_response())
}

/// `POST /logout-everywhere`: ends the logged-in user's other sessions, keeps this one.
async fn logout_everywhere(
    session: Session,
    State(manager): State<SessionManager>,
) -> Result<Json<serde_json::Value>, AppError> {
    let owner = logged_in(&session).await?;
    let ended = manager
        .revoke_owner(&owner, Some(Keep::Session(&session)))
        .await?;
    Ok(Json(serde_json::json!({ "ended": ended })))
}

async fn health() -> &'static str {
    "ok"
}
