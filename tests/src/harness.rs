//! [`Harness`]: the example app on one store and one adapter, with request helpers.

use session_core::testkit::SeedExt as _;
use std::ops::Sub;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cookie::Cookie;
use http::header::{COOKIE, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use session_core::testkit::TestStore;
use session_core::{SessionConfig, SessionConfigBuilder, SessionManager, SessionStore};

use crate::adapter::{Adapter, Server};
use crate::backend::{Backend, BackendStore};
use crate::client::TestClient;

/// The example app served by adapter `A` on a fresh store, wrapped in a [`TestStore`].
pub struct Harness<A: Adapter> {
    /// The in-process client.
    pub client: A::Client,
    /// The store the app uses: counts calls, can be switched off.
    pub store: Arc<TestStore<Arc<dyn SessionStore>>>,
    /// The manager the app uses.
    pub manager: SessionManager,
    _backend: BackendStore,
}

/// A snapshot of the store call counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    /// `load` calls.
    pub reads: u64,
    /// `save`, `create`, `compare_and_set`, `rotate` and `delete` calls.
    pub writes: u64,
    /// `touch` calls.
    pub touches: u64,
    /// All calls.
    pub total: u64,
}

impl Sub for Calls {
    type Output = Calls;

    fn sub(self, earlier: Calls) -> Calls {
        Calls {
            reads: self.reads - earlier.reads,
            writes: self.writes - earlier.writes,
            touches: self.touches - earlier.touches,
            total: self.total - earlier.total,
        }
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (failing the test) when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "expected a JSON body, got {} {:?}: {error}",
                self.status,
                self.text()
            )
        })
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect()
    }

    /// Every token of every `Vary` header.
    pub fn vary(&self) -> Vec<String> {
        self.headers
            .get_all(VARY)
            .iter()
            .flat_map(|value| {
                String::from_utf8_lossy(value.as_bytes())
                    .split(',')
                    .map(|token| token.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Whether `Vary` lists `Cookie` (exactly once is checked by the scenarios).
    pub fn varies_on_cookie(&self) -> bool {
        self.vary()
            .iter()
            .any(|token| token.eq_ignore_ascii_case("cookie"))
    }
}

impl<A: Adapter> Harness<A> {
    /// The example app on a fresh store of backend `B`, with the default configuration
    /// changed by `configure`.
    pub async fn start<B: Backend>(
        configure: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder,
    ) -> Harness<A> {
        // Logs go to the test's captured output, shown when it fails.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
        let backend = B::open().await;
        let store = Arc::new(TestStore::new(backend.store.clone()));
        let config = configure(SessionConfig::builder())
            .build()
            .expect("a valid test configuration");
        let shared: Arc<dyn SessionStore> = store.clone();
        let manager = SessionManager::from_shared(shared, config);
        Harness {
            client: A::client(manager.clone()),
            store,
            manager,
            _backend: backend,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        self.manager.config()
    }

    /// The store key of session `id`.
    pub fn key(&self, id: &str) -> String {
        format!("{}{id}", self.config().key_prefix())
    }

    /// The call counters now.
    pub fn calls(&self) -> Calls {
        let counts = &self.store.counts;
        Calls {
            reads: counts.reads(),
            writes: counts.writes(),
            touches: counts.touch.load(Ordering::SeqCst),
            total: counts.total(),
        }
    }

    /// What the store holds for session `id`, read past the counters.
    pub async fn stored(&self, id: &str) -> Option<Vec<u8>> {
        self.store
            .inner()
            .load(&self.key(id))
            .await
            .expect("reading the store directly")
            .map(|entry| entry.value)
    }

    /// Writes `bytes` as session `id`, past the counters.
    pub async fn put_stored(&self, id: &str, bytes: &[u8]) {
        self.store
            .inner()
            .put(&self.key(id), bytes, Duration::from_secs(3600))
            .await
            .expect("writing the store directly");
    }

    /// The `Cookie` header value that sends session cookie value `value`.
    pub fn cookie(&self, value: &str) -> String {
        format!("{}={value}", self.config().cookie_name())
    }

    /// Sends a request with the given extra headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: impl Into<Bytes>,
    ) -> Reply {
        send_request(&self.client, method, path, headers, body.into()).await
    }

    /// Sends a request, with `cookie` as the `Cookie` header when given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(cookie) = cookie {
            headers.insert(
                COOKIE,
                HeaderValue::from_str(cookie).expect("a valid Cookie header"),
            );
        }
        self.send_with(method, path, headers, body).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.send(Method::GET, path, cookie, Bytes::new()).await
    }

    /// `POST path` with an empty body.
    pub async fn post(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.send(Method::POST, path, cookie, Bytes::new()).await
    }

    /// `PUT path` with `value` as the JSON body.
    pub async fn put_json(
        &self,
        path: &str,
        cookie: Option<&str>,
        value: &serde_json::Value,
    ) -> Reply {
        self.send(Method::PUT, path, cookie, value.to_string())
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.send(Method::DELETE, path, cookie, Bytes::new()).await
    }

    /// The `GET /` body of the session behind `cookie`.
    pub async fn session_json(&self, cookie: Option<&str>) -> serde_json::Value {
        let reply = self.get("/", cookie).await;
        assert_eq!(reply.status, StatusCode::OK, "GET / answered {reply:?}");
        reply.json()
    }

    /// The session cookie the response sets, parsed; `None` when it sets none.
    pub fn session_cookie(&self, reply: &Reply) -> Option<Cookie<'static>> {
        let name = self.config().cookie_name();
        let mut found = reply.set_cookies().into_iter().filter_map(|header| {
            Cookie::parse(header)
                .ok()
                .filter(|cookie| cookie.name() == name)
        });
        let cookie = found.next();
        assert!(found.next().is_none(), "two session cookies in {reply:?}");
        cookie
    }

    /// The raw `Set-Cookie` header of the session cookie; panics when there is none.
    pub fn session_set_cookie(&self, reply: &Reply) -> String {
        let prefix = format!("{}=", self.config().cookie_name());
        let headers: Vec<String> = reply
            .set_cookies()
            .into_iter()
            .filter(|header| header.starts_with(&prefix))
            .collect();
        assert_eq!(
            headers.len(),
            1,
            "expected one session Set-Cookie in {reply:?}"
        );
        headers.into_iter().next().unwrap_or_default()
    }

    /// The session cookie value (the id, or the signed id) the response sets; panics when
    /// there is none.
    pub fn new_cookie_value(&self, reply: &Reply) -> String {
        self.session_cookie(reply)
            .unwrap_or_else(|| panic!("expected a session cookie in {reply:?}"))
            .value()
            .to_owned()
    }

    /// Starts a session holding `{"seed": 1}` and returns its cookie value (the id, or the
    /// signed id with the signer).
    pub async fn new_session(&self) -> String {
        let reply = self
            .put_json("/data/seed", None, &serde_json::json!(1))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "PUT /data/seed: {reply:?}");
        self.new_cookie_value(&reply)
    }

    /// Serves the app over real HTTP (same manager, same store).
    pub async fn serve(&self) -> Server {
        A::serve(self.manager.clone())
            .await
            .expect("starting the test server")
    }
}

/// Sends one request through any client.
pub async fn send_request<C: TestClient>(
    client: &C,
    method: Method,
    path: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(body)
        .expect("a valid request");
    *request.headers_mut() = headers;
    let response = client.send(request).await;
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}
