//! An actix-web app with server-side sessions, used by `cargo run -p session-example-actix`
//! and by the HTTP-level test suite. It has the endpoints, the environment variables and the
//! behaviour of the axum example (`session-example`); both get their store from
//! `session-any`.
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

use std::fmt;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::ContentType;
use actix_web::http::header::{ACCEPT, CACHE_CONTROL, VARY};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use session_actix::{
    ErrorResponse, Keep, Session, SessionError, SessionManager, SessionMiddleware, StoreError,
};

/// Largest request body accepted, as axum's default body limit (actix-web's own default
/// is 256 KiB).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The app: [`routes`] behind [`middleware`] for `manager`.
///
/// Call it inside the `HttpServer::new` factory with a clone of one manager, so that every
/// worker shares it.
pub fn app(
    manager: SessionManager,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(manager.clone()))
        .wrap(middleware(manager))
        .configure(routes)
}

/// The session middleware the app uses: the library's, with [`save_failed`] as the
/// failure response.
pub fn middleware(manager: SessionManager) -> SessionMiddleware {
    SessionMiddleware::new(manager.on_error(save_failed))
}

/// The app's routes and body limit, without the session middleware. `GET /sessions` and
/// `POST /logout-everywhere` need the manager as `web::Data<SessionManager>` app data, as
/// [`app`] adds it.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .app_data(web::PayloadConfig::new(BODY_LIMIT))
        .service(web::resource("/").get(show))
        .service(web::resource("/login").post(login))
        .service(web::resource("/counter").post(counter))
        .service(
            web::resource("/data/{key}")
                .put(put_data)
                .delete(delete_data),
        )
        .service(web::resource("/logout").post(logout))
        .service(web::resource("/sessions").get(sessions))
        .service(web::resource("/logout-everywhere").post(logout_everywhere))
        .service(web::resource("/health").get(health))
        .configure(session_example_ui::actix_routes);
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

/// `Cache-Control` of the responses that carry session data.
const NO_STORE: &str = "no-store";

fn text(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::plaintext())
        .body(body)
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
    Session(session_actix::Error),
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

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::BadRequest(reason) | AppError::Unsupported(reason) => f.write_str(reason),
            AppError::NotLoggedIn => f.write_str(NOT_LOGGED_IN),
            AppError::Session(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotLoggedIn => StatusCode::UNAUTHORIZED,
            AppError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            AppError::Session(error) => error.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AppError::BadRequest(reason) => text(StatusCode::BAD_REQUEST, reason.clone()),
            AppError::NotLoggedIn => {
                HttpResponse::Unauthorized().json(serde_json::json!({ "error": NOT_LOGGED_IN }))
            }
            AppError::Unsupported(why) => {
                HttpResponse::NotImplemented().json(serde_json::json!({ "error": why }))
            }
            AppError::Session(error) => error.error_response(),
        }
    }
}

/// `GET /`: the session as a JSON object, or as `key=value` lines when the client asks for
/// `text/plain` first.
async fn show(session: Session, request: HttpRequest) -> Result<HttpResponse, AppError> {
    let data = session.snapshot().await?;
    // The body depends on Accept (and, as every session route's, on Cookie). It is one
    // user's session data: no cache may keep it (a browser's back button included).
    let mut response = HttpResponse::Ok();
    response.insert_header((VARY, "Accept"));
    response.insert_header((CACHE_CONTROL, NO_STORE));
    let accept = request
        .headers()
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok());
    Ok(match accept {
        Some(accept) if accept.starts_with("text/plain") => {
            // A session holding nothing (but the permanent flag) has no line.
            let json = if data.is_empty() {
                serde_json::Value::Null
            } else {
                data.to_json()
            };
            let entries = json.as_object().into_iter().flatten();
            let lines: String = entries
                .map(|(key, value)| format!("{key}={value}\n"))
                .collect();
            response.content_type(ContentType::plaintext()).body(lines)
        }
        _ if data.is_empty() => response.json(serde_json::json!({})),
        // Written straight from the data, without a serde_json::Value in between.
        _ => response.json(data.json_view()),
    })
}

/// The body of `401` answers.
const NOT_LOGGED_IN: &str = "not logged in: POST /login?user=NAME first";

#[derive(Deserialize)]
struct LoginParams {
    user: Option<String>,
    remember: Option<String>,
}

/// The `user` of a login: non-empty, at most [`MAX_OWNER_BYTES`](session_actix::session_core::MAX_OWNER_BYTES).
fn login_user(user: Option<String>) -> Result<String, AppError> {
    let max = session_actix::session_core::MAX_OWNER_BYTES;
    let user = user
        .filter(|user| !user.trim().is_empty())
        .ok_or_else(|| AppError::BadRequest("missing user: POST /login?user=NAME".to_owned()))?;
    if user.len() > max {
        return Err(AppError::BadRequest(format!(
            "user must be at most {max} bytes"
        )));
    }
    Ok(user)
}

/// The `remember` of a login: whole seconds from 1 to [`MAX_LIFETIME`](session_actix::session_core::MAX_LIFETIME).
fn remember_for(remember: Option<&str>) -> Result<Option<Duration>, AppError> {
    let Some(text) = remember else {
        return Ok(None);
    };
    let max = session_actix::session_core::MAX_LIFETIME.as_secs();
    match text.parse::<u64>() {
        Ok(seconds) if (1..=max).contains(&seconds) => Ok(Some(Duration::from_secs(seconds))),
        _ => Err(AppError::BadRequest(format!(
            "remember must be a whole number of seconds from 1 to {max}"
        ))),
    }
}

async fn login(session: Session, request: HttpRequest) -> Result<String, AppError> {
    let params = web::Query::<LoginParams>::from_query(request.query_string())
        .ok()
        .map(web::Query::into_inner);
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

async fn counter(session: Session) -> Result<HttpResponse, AppError> {
    session
        .update("counter", |count: Option<i64>| {
            count.unwrap_or(0).saturating_add(1)
        })
        .await?;
    // Save now so the answer is the value actually stored, after any concurrent requests'
    // increments were merged in.
    session.save().await?;
    let stored: i64 = session.get("counter").await?.unwrap_or(0);
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, NO_STORE))
        .content_type(ContentType::plaintext())
        .body(stored.to_string()))
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
    key: web::Path<String>,
    body: web::Bytes,
) -> Result<String, AppError> {
    let key = key.into_inner();
    check_key(&key)?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| AppError::BadRequest("the body is not valid JSON".to_owned()))?;
    session.insert(&key, &value).await?;
    Ok(format!("stored {key}"))
}

async fn delete_data(session: Session, key: web::Path<String>) -> Result<HttpResponse, AppError> {
    let key = key.into_inner();
    check_key(&key)?;
    Ok(match session.remove_value(&key).await? {
        Some(_) => text(StatusCode::OK, format!("removed {key}")),
        None => text(StatusCode::NOT_FOUND, format!("no {key} in the session")),
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
    manager: web::Data<SessionManager>,
) -> Result<HttpResponse, AppError> {
    let owner = logged_in(&session).await?;
    let sessions = manager.sessions_of(&owner, Some(&session)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, NO_STORE))
        .json(serde_json::json!({ "sessions": sessions })))
}

/// `POST /logout-everywhere`: ends the logged-in user's other sessions, keeps this one.
async fn logout_everywhere(
    session: Session,
    manager: web::Data<SessionManager>,
) -> Result<HttpResponse, AppError> {
    let owner = logged_in(&session).await?;
    let ended = manager
        .revoke_owner(&owner, Some(Keep::Session(&session)))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ended": ended })))
}

async fn health() -> &'static str {
    "ok"
}
