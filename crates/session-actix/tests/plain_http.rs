//! The warning for a `Secure` cookie served over plain HTTP, as the actix-web middleware
//! reports the scheme (`ConnectionInfo`: the connection, or a proxy's `Forwarded` /
//! `X-Forwarded-Proto`), and that the middleware works the scheme out (about 4 k
//! instructions) only while that warning could still come. A test binary of its own:
//! tracing caches per call site whether anyone listens.

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::dev::ConnectionInfo;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpMessage, HttpRequest};
use session_actix::{MemoryStore, Session, SessionConfig, SessionManager, SessionMiddleware};

/// Everything the subscriber writes, for assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn warnings(&self) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches("requests arrive over plain HTTP")
            .count()
    }
}

/// Uses the session, and answers whether anything before the handler worked out the
/// request's `ConnectionInfo` (actix-web keeps it in the request's extensions).
async fn show(session: Session, request: HttpRequest) -> String {
    session.get::<String>("user").await.unwrap();
    request
        .extensions()
        .contains::<ConnectionInfo>()
        .to_string()
}

fn manager(secure: bool) -> SessionManager {
    let config = SessionConfig::builder()
        .cookie_secure(secure)
        .build()
        .unwrap();
    SessionManager::new(MemoryStore::new(), config)
}

/// Sends one request through a fresh app on `manager`, `proto` as a proxy would forward
/// it; returns whether the middleware built `ConnectionInfo`.
async fn send(manager: &SessionManager, proto: &str) -> bool {
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(manager.clone()))
            .route("/", web::get().to(show)),
    )
    .await;
    let request = TestRequest::get()
        .uri("/")
        .insert_header(("x-forwarded-proto", proto))
        .to_request();
    let body = test::call_and_read_body(&app, request).await;
    body == "true"
}

#[test]
fn a_secure_cookie_over_plain_http_warns_once_per_manager() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        actix_web::rt::System::new().block_on(async {
            let secure = manager(true);
            assert!(send(&secure, "https").await, "the scheme is looked at");
            assert_eq!(captured.warnings(), 0);
            // Plain HTTP: one warning, not one per request; once it is given, the scheme
            // is no longer worked out.
            assert!(send(&secure, "http").await);
            assert!(!secure.wants_scheme());
            assert!(!send(&secure, "http").await, "nothing left to warn about");
            assert_eq!(captured.warnings(), 1);
            // A cookie that is not Secure works over HTTP: nothing to warn about, and no
            // ConnectionInfo is built for it.
            assert!(!send(&manager(false), "http").await);
            assert_eq!(captured.warnings(), 1);
        });
    });
}
