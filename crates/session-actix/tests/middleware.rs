//! What is specific to actix-web: the extractor's rejection, the error type as an actix
//! response, core's failure response turned into an actix one, the session moved to
//! another thread, an inner service's error, and `HttpServer`. Session behaviour (cookies,
//! `Vary`, outages, refresh, ...) is tested on both adapters by the shared HTTP suite in
//! tests/.

use std::io::{Read, Write};
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{COOKIE, SET_COOKIE};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpServer, ResponseError};
use session_actix::{
    Error, ErrorResponse, MemoryStore, Session, SessionConfig, SessionError, SessionManager,
    SessionMiddleware, SessionStore, StoreError,
};
use session_core::testkit::TestStore;

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

/// Writes from a thread of actix-web's blocking pool, on a runtime of its own: the handle
/// is `Send` and works wherever it is moved.
async fn set_from_another_thread(session: Session) -> actix_web::Result<String> {
    let handle = session.0;
    let caller = std::thread::current().id();
    let (written, other) = web::block(move || {
        let written = actix_web::rt::System::new()
            .block_on(async move { handle.insert("thread", "other").await });
        (written, std::thread::current().id())
    })
    .await?;
    written.map_err(Error::from)?;
    Ok(format!("{}", other != caller))
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/set", web::get().to(set_user))
        .route("/thread", web::get().to(set_from_another_thread));
}

fn request(path: &str, cookie: Option<&str>) -> TestRequest {
    let request = TestRequest::get().uri(path);
    match cookie {
        Some(cookie) => request.insert_header((COOKIE, cookie)),
        None => request,
    }
}

async fn body_text<B: MessageBody>(response: ServiceResponse<B>) -> String {
    let bytes = test::read_body(response).await;
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// `name=value` of the response's session cookie.
fn cookie_pair<B>(response: &ServiceResponse<B>) -> String {
    let header = response
        .headers()
        .get(SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    header.split(';').next().unwrap().to_owned()
}

#[actix_web::test]
async fn the_extractor_without_the_middleware_is_a_bare_500() {
    let app = test::init_service(App::new().configure(routes)).await;
    let response = test::call_service(&app, request("/set", None).to_request()).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_text(response).await, "");
}

#[actix_web::test]
async fn the_managers_failure_response_becomes_the_actix_response() {
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
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(manager))
            .configure(routes),
    )
    .await;
    store.set_down(true);
    let response = test::call_service(&app, request("/set", None).to_request()).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers().get("retry-after").unwrap(), "5");
    assert_eq!(response.headers().get("x-reason").unwrap(), "store");
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert_eq!(body_text(response).await, "custom");
}

#[actix_web::test]
async fn errors_are_responses_with_the_core_status_and_no_detail() {
    let store_error: Error =
        SessionError::from(StoreError::unavailable("redis at 10.0.0.7:6379 refused")).into();
    assert_eq!(store_error.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    let response = store_error.error_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap();
    assert!(body.is_empty(), "{body:?}");

    let value_error = Error(SessionError::Value {
        key: "counter".into(),
        message: "invalid type: string, expected i64".into(),
    });
    // Through actix-web's own error type, as a handler's `?` would produce it.
    let response = actix_web::Error::from(value_error).error_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap();
    assert!(body.is_empty(), "{body:?}");
}

#[actix_web::test]
async fn the_session_can_be_used_on_another_thread() {
    let store = store();
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(manager(&store)))
            .configure(routes),
    )
    .await;
    let response = test::call_service(&app, request("/thread", None).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie_pair(&response);
    assert_eq!(
        body_text(response).await,
        "true",
        "the write ran on another thread"
    );
    let session = manager(&store).open(cookie.strip_prefix("session="));
    assert_eq!(
        session.get::<String>("thread").await.unwrap().as_deref(),
        Some("other")
    );
}

/// An inner service that fails with an `actix_web::Error` (instead of answering) passes
/// through unchanged, and what the handler changed is not saved.
#[actix_web::test]
async fn an_inner_service_error_passes_through_unsaved() {
    let store = store();
    let app = test::init_service(
        App::new()
            .wrap_fn(|request, service| {
                let response = service.call(request);
                async move {
                    response.await?;
                    Err::<ServiceResponse, _>(actix_web::error::ErrorImATeapot("inner failure"))
                }
            })
            .wrap(SessionMiddleware::new(manager(&store)))
            .configure(routes),
    )
    .await;
    let error = test::try_call_service(&app, request("/set", None).to_request())
        .await
        .expect_err("the inner error");
    assert_eq!(error.to_string(), "inner failure");
    assert_eq!(
        error.as_response_error().status_code(),
        StatusCode::IM_A_TEAPOT
    );
    assert_eq!(store.counts.writes(), 0);
}

#[actix_web::test]
async fn the_middleware_works_under_http_server() {
    let store = store();
    let middleware = SessionMiddleware::new(manager(&store));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = HttpServer::new(move || App::new().wrap(middleware.clone()).configure(routes))
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let raw = actix_web::rt::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .write_all(b"GET /set HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        raw
    })
    .await
    .unwrap();
    handle.stop(false).await;
    let raw = raw.to_ascii_lowercase();
    assert!(raw.starts_with("http/1.1 200 ok\r\n"), "{raw}");
    assert!(raw.contains("\r\nset-cookie: session="), "{raw}");
    assert!(raw.contains("\r\nvary: cookie\r\n"), "{raw}");
    assert_eq!(store.counts.writes(), 1);
}
