//! The middleware works out the request's scheme (actix-web's `ConnectionInfo`, about 4 k
//! instructions) only while core could still warn about a `Secure` cookie over plain HTTP.
//! A test binary of its own: the warning it triggers, with no subscriber listening, would
//! make tracing skip that call site in `plain_http.rs`.

use actix_web::dev::ConnectionInfo;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpMessage, HttpRequest};
use session_actix::{MemoryStore, SessionConfig, SessionManager, SessionMiddleware};

fn manager(secure: bool) -> SessionManager {
    let config = SessionConfig::builder()
        .cookie_secure(secure)
        .build()
        .unwrap();
    SessionManager::new(MemoryStore::new(), config)
}

/// Whether anything before the handler worked out the request's `ConnectionInfo` (actix-web
/// keeps it in the request's extensions once computed).
async fn connection_info_computed(request: HttpRequest) -> String {
    request
        .extensions()
        .contains::<ConnectionInfo>()
        .to_string()
}

#[actix_web::test]
async fn the_scheme_is_only_worked_out_while_a_warning_could_follow() {
    async fn computed(manager: &SessionManager) -> String {
        let app = test::init_service(
            App::new()
                .wrap(SessionMiddleware::new(manager.clone()))
                .route("/", web::get().to(connection_info_computed)),
        )
        .await;
        let request = TestRequest::get()
            .uri("/")
            .insert_header(("x-forwarded-proto", "http"))
            .to_request();
        let body = test::call_and_read_body(&app, request).await;
        String::from_utf8(body.to_vec()).unwrap()
    }
    // Not Secure: nothing to warn about, so the middleware leaves ConnectionInfo alone.
    assert_eq!(computed(&manager(false)).await, "false");
    // Secure: the middleware reads the scheme, and warns on this plain-HTTP request...
    let secure = manager(true);
    assert_eq!(computed(&secure).await, "true");
    // ...after which there is nothing left to say.
    assert!(!secure.wants_scheme());
    assert_eq!(computed(&secure).await, "false");
}
