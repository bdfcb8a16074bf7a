//! The layer, extractor and error type against the in-memory store.

use std::future::IntoFuture;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header::{COOKIE, SET_COOKIE, VARY};
use http::{Request, StatusCode};
use session_axum::{
    Error, MemoryStore, Session, SessionConfig, SessionError, SessionLayer, SessionManager,
    SessionStore, StoreError,
};
use session_core::testkit::TestStore;
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

async fn get_user(session: Session) -> Result<String, Error> {
    Ok(session
        .get::<String>("user")
        .await?
        .unwrap_or_else(|| "nobody".to_owned()))
}

fn app(manager: SessionManager) -> Router {
    Router::new()
        .route("/set", get(set_user))
        .route("/get", get(get_user))
        .route("/plain", get(|| async { "no session here" }))
        .route(
            "/vary",
            get(|session: Session| async move {
                session.get_value("user").await?;
                Ok::<_, Error>(([(VARY, "Accept-Encoding")], "varies"))
            }),
        )
        .layer(SessionLayer::new(manager))
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

/// `name=value` of the response's session cookie.
fn cookie_pair(response: &Response) -> String {
    let header = response
        .headers()
        .get(SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    header.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_session_round_trips_through_the_cookie() {
    let store = store();
    let app = app(manager(&store));
    let response = send(&app, "/set", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get(VARY).unwrap(), "Cookie");
    let cookie = cookie_pair(&response);
    assert!(cookie.starts_with("session="), "{cookie}");
    assert_eq!(store.counts.writes(), 1);

    let response = send(&app, "/get", Some(&format!("theme=dark; {cookie}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get(VARY).unwrap(), "Cookie");
    assert!(
        response.headers().get(SET_COOKIE).is_none(),
        "a read right after a write neither rewrites nor re-sends the cookie"
    );
    assert_eq!(body_text(response).await, "ann");
    assert_eq!(store.counts.writes(), 1);
}

#[tokio::test]
async fn an_untouched_session_costs_nothing() {
    let store = store();
    let app = app(manager(&store));
    let response = send(
        &app,
        "/plain",
        Some("session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert!(response.headers().get(VARY).is_none());
    assert_eq!(body_text(response).await, "no session here");
    assert_eq!(store.counts.total(), 0);
}

#[tokio::test]
async fn vary_merges_with_the_handlers_header() {
    let store = store();
    let app = app(manager(&store));
    let response = send(&app, "/vary", None).await;
    let vary: Vec<_> = response.headers().get_all(VARY).iter().collect();
    assert_eq!(vary, ["Accept-Encoding, Cookie"]);
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_bare_500() {
    let app: Router = Router::new().route("/get", get(get_user));
    let response = send(&app, "/get", None).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_text(response).await, "");
}

#[tokio::test]
async fn a_failed_save_replaces_the_response_with_a_bare_503() {
    let store = store();
    let app = app(manager(&store));
    store.set_down(true);
    let response = send(&app, "/set", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert_eq!(body_text(response).await, "");
    assert_eq!(
        store
            .counts
            .create
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    store.set_down(false);
    let response = send(&app, "/set", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(SET_COOKIE).is_some());
}

#[tokio::test]
async fn a_failed_load_in_the_handler_is_a_bare_503() {
    let store = store();
    let app = app(manager(&store));
    let cookie = cookie_pair(&send(&app, "/set", None).await);
    store.set_down(true);
    let response = send(&app, "/get", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_text(response).await, "");
}

#[tokio::test]
async fn on_error_builds_the_failure_response() {
    let store = store();
    let layer = SessionLayer::new(manager(&store)).on_error(|error| {
        let status = if error.is_store_error() {
            StatusCode::BAD_GATEWAY
        } else {
            StatusCode::IM_A_TEAPOT
        };
        (status, "custom").into_response()
    });
    let app: Router = Router::new().route("/set", get(set_user)).layer(layer);
    store.set_down(true);
    let response = send(&app, "/set", None).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(body_text(response).await, "custom");
}

#[tokio::test]
async fn errors_map_to_503_or_500_without_detail() {
    let store_error: Error =
        SessionError::from(StoreError::unavailable("redis at 10.0.0.7:6379 refused")).into();
    assert_eq!(store_error.status(), StatusCode::SERVICE_UNAVAILABLE);
    let response = store_error.into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_text(response).await, "");

    let conflict: Error = SessionError::Conflict { attempts: 64 }.into();
    assert_eq!(conflict.status(), StatusCode::SERVICE_UNAVAILABLE);

    let value_error: Error = SessionError::Value {
        key: "counter".into(),
        message: "invalid type: string, expected i64".into(),
    }
    .into();
    assert!(value_error.session_error().is_some());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_works_under_axum_serve() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let store = store();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app(manager(&store))).into_future());
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
