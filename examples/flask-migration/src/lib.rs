//! The migration demo: the original Flask app (Flask-Session 0.8) and the Rust example app
//! (`session-example`) on one Redis and one cookie, behind one entry point that sends each
//! route to the side that serves it today. Moving a route from Flask to Rust is one line in
//! [`FLASK_ROUTES`].
//!
//! | path | goes to |
//! |---|---|
//! | a route in [`FLASK_ROUTES`] | Flask (not moved yet) |
//! | `/flask/...` | Flask, always (prefix removed), to compare the two sides |
//! | `/rust/...` | Rust, always (prefix removed) |
//! | anything else | Rust (moved) |
//!
//! Every response carries `X-Served-By: flask` or `rust`.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{HeaderName, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use session_core::{SessionConfig, SessionManager};
use tower::ServiceExt as _;

/// The routes Flask still serves, as (method, path). Everything else is Rust's.
pub const FLASK_ROUTES: &[(&str, &str)] = &[("POST", "/login"), ("POST", "/logout")];

/// Largest request body forwarded to Flask (the Rust app's own limit).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// How long Flask may take to answer `/health` after starting.
const FLASK_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The header naming the side that answered.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");

/// Which app serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The Flask app.
    Flask,
    /// The Rust app.
    Rust,
}

impl Side {
    /// `flask` or `rust`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Flask => "flask",
            Side::Rust => "rust",
        }
    }
}

/// Where `method path` goes, and the path that side sees.
pub fn route(method: &Method, path: &str) -> (Side, String) {
    for (prefix, side) in [("/flask", Side::Flask), ("/rust", Side::Rust)] {
        if let Some(rest) = path.strip_prefix(prefix) {
            if rest.is_empty() {
                return (side, "/".to_owned());
            }
            if rest.starts_with('/') {
                return (side, rest.to_owned());
            }
        }
    }
    let flask = FLASK_ROUTES
        .iter()
        .any(|(m, p)| method.as_str() == *m && path == *p);
    let side = if flask { Side::Flask } else { Side::Rust };
    (side, path.to_owned())
}

/// What the demo needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The shared Redis (`REDIS_URL`).
    pub redis_url: String,
    /// The Python of a venv with Flask-Session 0.8 (`FLASK_PYTHON`).
    pub flask_python: PathBuf,
    /// The entry point's address (`HOST`, `PORT`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The shared secret (`SECRET_KEY`).
    pub secret_key: String,
    /// Whether Flask's own log goes to this process's stderr.
    pub show_flask_log: bool,
}

impl Settings {
    /// From the environment: `REDIS_URL` (default `redis://127.0.0.1:6379`), `FLASK_PYTHON`
    /// (required), `HOST`/`PORT` (default 127.0.0.1:8080), `SECRET_KEY` (default a demo
    /// value).
    pub fn from_env() -> anyhow::Result<Settings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let flask_python = var("FLASK_PYTHON").context(
            "FLASK_PYTHON is not set: build the venv with `cargo xtask flask-venv` and set \
             FLASK_PYTHON to the python it prints, or run `cargo xtask demo`",
        )?;
        let host = var("HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
        let port = var("PORT").unwrap_or_else(|| "8080".to_owned());
        let listen = format!("{host}:{port}")
            .parse()
            .with_context(|| format!("invalid HOST/PORT: {host}:{port}"))?;
        Ok(Settings {
            redis_url: var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
            flask_python: flask_python.into(),
            listen,
            secret_key: var("SECRET_KEY")
                .unwrap_or_else(|| "flask-migration-demo-secret".to_owned()),
            show_flask_log: true,
        })
    }
}

/// The running demo: the entry point, the Flask process and the Rust app. Dropping it stops
/// them.
pub struct Demo {
    /// The entry point, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Flask's own address (to reach it directly).
    pub flask_url: String,
    /// The Rust app's session manager (its store and configuration).
    pub manager: SessionManager,
    flask: tokio::process::Child,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.server.abort();
        let _ = self.flask.start_kill();
    }
}

#[derive(Clone)]
struct Proxy {
    rust: Router,
    flask: String,
    client: reqwest::Client,
}

/// Starts Flask, the Rust app and the entry point.
pub async fn start(settings: &Settings) -> anyhow::Result<Demo> {
    // Both sides read the same options; the Rust side's come from the same names.
    let shared = [
        ("SESSION_TYPE", "redis".to_owned()),
        ("SESSION_REDIS_URL", settings.redis_url.clone()),
        ("REDIS_URL", settings.redis_url.clone()),
        ("SECRET_KEY", settings.secret_key.clone()),
    ];
    let lookup = |name: &str| {
        shared
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
            .or_else(|| std::env::var(name).ok())
    };
    let config = SessionConfig::from_lookup(lookup)?;
    let store = session_any::AnyStore::from_lookup(lookup)
        .await
        .with_context(|| format!("cannot reach Redis at {}", settings.redis_url))?;
    let manager = SessionManager::try_from_shared(store.into_shared(), config)?;

    let (flask, flask_url) = start_flask(settings, &manager).await?;
    let proxy = Proxy {
        rust: session_example::app(manager.clone()),
        flask: flask_url.clone(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} (HOST, PORT)", settings.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = Router::new().fallback(dispatch).with_state(proxy);
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the demo's entry point stopped");
        }
    });
    Ok(Demo {
        url,
        flask_url,
        manager,
        flask,
        server,
    })
}

async fn start_flask(
    settings: &Settings,
    manager: &SessionManager,
) -> anyhow::Result<(tokio::process::Child, String)> {
    // A free port for Flask: bind, read it, release it for werkzeug.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flask/app.py");
    let config = manager.config();
    let output = || {
        if settings.show_flask_log {
            Stdio::inherit()
        } else {
            Stdio::null()
        }
    };
    let mut child = tokio::process::Command::new(&settings.flask_python)
        .arg(&script)
        .env("FLASK_PORT", port.to_string())
        .env("REDIS_URL", &settings.redis_url)
        .env("SECRET_KEY", &settings.secret_key)
        .env("SESSION_COOKIE_NAME", config.cookie_name())
        .env("SESSION_KEY_PREFIX", config.key_prefix())
        .stdin(Stdio::null())
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {} (FLASK_PYTHON): build it with `cargo xtask flask-venv`",
                settings.flask_python.display()
            )
        })?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + FLASK_START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the Flask app exited at start ({status}); is Flask-Session 0.8 in FLASK_PYTHON's venv and Redis up?");
        }
        let ready = client.get(format!("{url}/health")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return Ok((child, url));
        }
        if Instant::now() >= deadline {
            bail!("the Flask app did not answer on {url} within {FLASK_START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The entry point: every request goes to the side [`route`] names.
async fn dispatch(State(proxy): State<Proxy>, request: Request) -> Response {
    let (side, path) = route(request.method(), request.uri().path());
    let mut response = match side {
        Side::Rust => to_rust(&proxy, request, &path).await,
        Side::Flask => to_flask(&proxy, request, &path).await,
    };
    response
        .headers_mut()
        .insert(SERVED_BY, HeaderValue::from_static(side.name()));
    response
}

fn with_path(uri: &Uri, path: &str) -> String {
    match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

async fn to_rust(proxy: &Proxy, mut request: Request, path: &str) -> Response {
    let target = with_path(request.uri(), path);
    match target.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    }
    match proxy.rust.clone().oneshot(request).await {
        Ok(response) => response,
        Err(infallible) => match infallible {},
    }
}

/// Hop-by-hop headers and those reqwest/axum set themselves.
fn forwarded(name: &HeaderName) -> bool {
    ![HOST, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING].contains(name)
}

async fn to_flask(proxy: &Proxy, request: Request, path: &str) -> Response {
    let url = format!("{}{}", proxy.flask, with_path(request.uri(), path));
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut outgoing = proxy.client.request(parts.method, url).body(body);
    for (name, value) in parts.headers.iter().filter(|(name, _)| forwarded(name)) {
        outgoing = outgoing.header(name, value);
    }
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, "the Flask app did not answer");
            return StatusCode::BAD_GATEWAY.into_response();
        }
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let Ok(bytes) = answer.bytes().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in headers.iter().filter(|(name, _)| forwarded(name)) {
        response.headers_mut().append(name, value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_table_and_the_prefixes() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(route(&post, "/login"), (Side::Flask, "/login".into()));
        assert_eq!(route(&post, "/logout"), (Side::Flask, "/logout".into()));
        assert_eq!(route(&get, "/login"), (Side::Rust, "/login".into()));
        assert_eq!(route(&post, "/counter"), (Side::Rust, "/counter".into()));
        assert_eq!(route(&get, "/ui"), (Side::Rust, "/ui".into()));
        assert_eq!(route(&get, "/flask"), (Side::Flask, "/".into()));
        assert_eq!(
            route(&post, "/flask/counter"),
            (Side::Flask, "/counter".into())
        );
        assert_eq!(route(&post, "/rust/login"), (Side::Rust, "/login".into()));
        // Only whole path segments are prefixes.
        assert_eq!(route(&get, "/flasky"), (Side::Rust, "/flasky".into()));
    }
}
