//! [`SessionMiddleware`] and its service: open the session before the handler, finish it
//! after.

use std::borrow::Cow;
use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderValue, COOKIE, SET_COOKIE, VARY};
use actix_web::{HttpMessage, HttpResponse};
use session_core::{ErrorResponse, HeaderText, SessionManager};

/// An actix-web middleware that gives every request a session.
///
/// Before the handler it opens the session from the request's `Cookie` headers (no store
/// I/O: the session loads on first use) for the [`Session`](crate::Session) extractor;
/// after it, `session-core` saves, extends or deletes the session, and the middleware sets
/// the `Set-Cookie` and `Vary` values core returns.
///
/// When the session cannot be saved, the handler's response, which may claim a change that
/// was lost, is replaced by the manager's
/// [`error_response`](SessionManager::error_response) (an empty 503 or 500 unless
/// [`SessionManager::on_error`] says otherwise). An inner service's `actix_web::Error`
/// passes through unchanged, unsaved.
///
/// The middleware is `Clone + Send + Sync`: build it once and clone it into the
/// `HttpServer` factory, so every worker shares one manager (and one store).
///
/// ```
/// use actix_web::App;
/// use session_actix::{MemoryStore, SessionConfig, SessionManager, SessionMiddleware};
///
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let middleware = SessionMiddleware::new(manager);
/// let app = App::new().wrap(middleware.clone());
/// ```
#[derive(Clone, Debug)]
pub struct SessionMiddleware {
    manager: SessionManager,
}

impl SessionMiddleware {
    /// A middleware opening and finishing sessions with `manager`.
    pub fn new(manager: SessionManager) -> SessionMiddleware {
        SessionMiddleware { manager }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionService {
            service,
            manager: self.manager.clone(),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around an inner service.
#[derive(Debug)]
pub struct SessionService<S> {
    service: S,
    manager: SessionManager,
}

/// The future of [`SessionService`]'s response (not `Send`, like every actix-web future).
pub type ResponseFuture<B> =
    Pin<Box<dyn Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>>>;

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<B>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        if self.manager.wants_scheme() {
            self.manager.note_scheme(request.connection_info().scheme());
        }
        let cookies = request.headers().get_all(COOKIE);
        let session = (self.manager).open_from_cookie_headers(cookies.map(HeaderValue::as_bytes));
        request.extensions_mut().insert(session.clone());
        let response = self.service.call(request);
        let manager = self.manager.clone();
        // Built in its block: see `box_in_place`.
        session_core::box_in_place(move || async move {
            let mut response = response.await?;
            let vary = response.headers().get_all(VARY);
            let outcome = match manager
                .finish_with_vary(&session, vary.map(HeaderValue::as_bytes))
                .await
            {
                Ok(outcome) => outcome,
                // Core logged why; a response must not claim a change that was not saved.
                Err(error) => {
                    let replacement = into_response(&manager.error_response(&error));
                    return Ok(response.into_response(replacement).map_into_right_body());
                }
            };
            let headers = response.headers_mut();
            if let Some(value) = outcome.set_cookie.and_then(header_value) {
                headers.append(SET_COOKIE, value);
            }
            if let Some(value) = outcome.vary.and_then(header_value) {
                headers.insert(VARY, value);
            }
            Ok(response.map_into_left_body())
        })
    }
}

/// The header value of `text`, moved rather than copied. session-core hands out only
/// values every header type accepts, so the check always passes.
fn header_value(text: HeaderText) -> Option<HeaderValue> {
    match text.into_cow() {
        Cow::Borrowed(text) => Some(HeaderValue::from_static(text)),
        Cow::Owned(text) => HeaderValue::try_from(text).ok(),
    }
}

/// An actix-web response of core's [`ErrorResponse`].
fn into_response(error: &ErrorResponse) -> HttpResponse {
    let mut response = HttpResponse::build(crate::error::status(error.status()));
    for (name, value) in error.headers() {
        response.append_header((name, value.as_str()));
    }
    response.body(error.body().to_vec())
}
