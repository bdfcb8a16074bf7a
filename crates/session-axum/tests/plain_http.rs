//! The warning for a `Secure` cookie served over plain HTTP, as the axum layer reports the
//! scheme (the request line, or a proxy's `X-Forwarded-Proto`). A test binary of its own:
//! tracing caches per call site whether anyone listens.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::Request;
use session_axum::{MemoryStore, Session, SessionConfig, SessionLayer, SessionManager};
use tower::ServiceExt;

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

fn app(secure: bool) -> Router {
    let config = SessionConfig::builder()
        .cookie_secure(secure)
        .build()
        .unwrap();
    let manager = SessionManager::new(MemoryStore::new(), config);
    Router::new()
        .route("/", get(show))
        .layer(SessionLayer::new(manager))
}

async fn send(app: &Router, forwarded_proto: Option<&str>) {
    let mut request = Request::get("/");
    if let Some(proto) = forwarded_proto {
        request = request.header("x-forwarded-proto", proto);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            // HTTPS, or no way to tell: no warning.
            let secure = app(true);
            send(&secure, Some("https")).await;
            send(&secure, None).await;
            assert_eq!(captured.warnings(), 0);
            // Plain HTTP behind a proxy: one warning, not one per request.
            send(&secure, Some("http")).await;
            send(&secure, Some("http")).await;
            assert_eq!(captured.warnings(), 1);
            // A cookie that is not Secure works over HTTP: nothing to warn about.
            send(&app(false), Some("http")).await;
            assert_eq!(captured.warnings(), 1);
        });
    });
}
