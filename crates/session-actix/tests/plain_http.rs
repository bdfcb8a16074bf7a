//! The warning for a `Secure` cookie served over plain HTTP, as the actix-web middleware
//! reports the scheme (`ConnectionInfo`: the connection, or a proxy's `Forwarded` /
//! `X-Forwarded-Proto`). A test binary of its own: tracing caches per call site whether
//! anyone listens.

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::test::{self, TestRequest};
use actix_web::{web, App};
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

async fn show(session: Session) -> String {
    format!("{:?}", session.get::<String>("user").await.ok().flatten())
}

fn manager(secure: bool) -> SessionManager {
    let config = SessionConfig::builder()
        .cookie_secure(secure)
        .build()
        .unwrap();
    SessionManager::new(MemoryStore::new(), config)
}

/// Sends one request through a fresh app on `manager`; `proto` as a proxy would forward it.
async fn send(manager: &SessionManager, proto: &str) {
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
    let response = test::call_service(&app, request).await;
    assert!(response.status().is_success());
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
            send(&secure, "https").await;
            assert_eq!(captured.warnings(), 0);
            // Plain HTTP: one warning, not one per request.
            send(&secure, "http").await;
            send(&secure, "http").await;
            assert_eq!(captured.warnings(), 1);
            // A cookie that is not Secure works over HTTP: nothing to warn about.
            send(&manager(false), "http").await;
            assert_eq!(captured.warnings(), 1);
        });
    });
}
