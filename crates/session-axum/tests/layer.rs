//! What is specific to axum: the extractor's rejection, the error type as an axum
//! response, core's failure response turned into an axum one, any tower service and body
//! type, and `axum::serve`. Session behaviour (cookies, `Vary`, outages, refresh, ...) is
//! tested on both adapters by the shared HTTP suite in tests/.

use std::future::IntoFuture;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, StatusCode};
use session_axum::{
    Error, ErrorResponse, MemoryStore, Session, SessionConfig, SessionError, SessionLayer,
    SessionManager, SessionStore, StoreError,
};
use session_core::testkit::TestStore;
use tower::Layer as _;
use tower::{service_fn, ServiceExt};

type Store = Arc<TestStore<MemoryStore>>;

fn store() -> Store {
    Arc::new(TestStore::new(MemoryStore::new()))
}

fn manager(store: &Store) -> SessionManager {
    let shared: Arc<dyn SessionStore> = store.clone();
    SessionManager::from_shared(shared, SessionConfig::default())
}

async fn set_user(session: Session) -> Result<&'static str, Error> {
    session.insert("user", "ann").await?;
    Ok("set")
}

async fn send(app: &Router, path: &str, cookie: Option<&str>) -> Response {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn body_text(response: Response) -> String {
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_bare_500() {
    let app: Router = Router::new().route("/set", get(set_user));
    let response = send(&app, "/set", None).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_text(response).await, "");
}

#[tokio::test]
async fn the_managers_failure_response_becomes_the_axum_response() {
    let store = store();
    let manager = manager(&store).on_error(|error| {
        let status = if error.is_store_error() { 502 } else { 418 };
        ErrorResponse::new(status)
            .with_header("retry-after", "5")
            .unwrap()
            .with_header("x-reason", "store")
            .unwrap()
            .with_body("custom")
    });
    let app: Router = Router::new()
        .route("/set", get(set_user))
        .layer(SessionLayer::new(manager));
    store.set_down(true);
    let response = send(&app, "/set", None).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(response.headers()["x-reason"], "store");
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert_eq!(body_text(response).await, "custom");
}

#[tokio::test]
async fn errors_are_responses_with_the_core_status_and_no_detail() {
    let store_error: Error =
        SessionError::from(StoreError::unavailable("redis at 10.0.0.7:6379 refused")).into();
    let response = store_error.into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_text(response).await, "");

    let value_error = Error(SessionError::Value {
        key: "counter".into(),
        message: "invalid type: string, expected i64".into(),
    });
    let response = value_error.into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_text(response).await, "");
}

#[tokio::test]
async fn the_layer_wraps_any_service_and_body_type() {
    let store = store();
    let inner = service_fn(|request: Request<String>| async move {
        let session = request
            .extensions()
            .get::<session_core::Session>()
            .cloned()
            .expect("the layer put the session in the extensions");
        if request.body() == "fail" {
            return Err(std::io::Error::other("inner failure"));
        }
        session.insert("body", request.body()).await.unwrap();
        Ok(http::Response::new(format!("stored {}", request.body())))
    });
    let service = tower::ServiceBuilder::new()
        .layer(SessionLayer::new(manager(&store)))
        .service(inner);

    let response = service
        .clone()
        .oneshot(Request::new("hello".to_owned()))
        .await
        .unwrap();
    assert!(response.headers().get(SET_COOKIE).is_some());
    assert_eq!(body_text(response).await, "stored hello");

    let error = service
        .oneshot(Request::new("fail".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "inner failure");
}

/// An inner service that counts its clones and checks that each call goes to an instance
/// that was polled ready, as tower's contract asks.
struct CountingService {
    clones: Arc<std::sync::atomic::AtomicUsize>,
    ready: bool,
}

impl Clone for CountingService {
    fn clone(&self) -> Self {
        self.clones
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        CountingService {
            clones: self.clones.clone(),
            ready: false,
        }
    }
}

impl tower::Service<Request<Body>> for CountingService {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.ready = true;
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        assert!(self.ready, "called without being polled ready");
        self.ready = false;
        std::future::ready(Ok(http::Response::new(Body::from("ok"))))
    }
}

#[tokio::test]
async fn the_layer_calls_the_ready_inner_service_without_cloning_it() {
    // A clone of axum's boxed routes allocates, on every request.
    let clones = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = CountingService {
        clones: clones.clone(),
        ready: false,
    };
    let mut service = SessionLayer::new(manager(&store())).layer(inner);
    for _ in 0..3 {
        let response = (&mut service)
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(body_text(response).await, "ok");
    }
    assert_eq!(clones.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_works_under_axum_serve() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let store = store();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/set", get(set_user))
        .layer(SessionLayer::new(manager(&store)));
    let server = tokio::spawn(axum::serve(listener, app).into_future());
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /set HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    server.abort();
    let raw = raw.to_ascii_lowercase();
    assert!(raw.starts_with("http/1.1 200 ok\r\n"), "{raw}");
    assert!(raw.contains("\r\nset-cookie: session="), "{raw}");
    assert!(raw.contains("\r\nvary: cookie\r\n"), "{raw}");
    assert_eq!(store.counts.writes(), 1);
}
