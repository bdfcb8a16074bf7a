//! [`SessionLayer`] and its service: open the session before the handler, finish it after.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use axum::BoxError;
use http::header::{HeaderName, COOKIE, SET_COOKIE, VARY};
use http::{HeaderValue, Request};
use session_core::{ErrorResponse, HeaderText, SessionManager};
use tower_layer::Layer;
use tower_service::Service;

/// A tower [`Layer`] that gives every request a session.
///
/// Before the handler it opens the session from the request's `Cookie` headers (no store
/// I/O: the session loads on first use) for the [`Session`](crate::Session) extractor;
/// after it, `session-core` saves, extends or deletes the session, and the layer sets the
/// `Set-Cookie` and `Vary` values core returns.
///
/// When the session cannot be saved, the handler's response, which may claim a change that
/// was lost, is replaced by the manager's
/// [`error_response`](SessionManager::error_response) (an empty 503 or 500 unless
/// [`SessionManager::on_error`] says otherwise).
///
/// ```
/// use session_axum::{MemoryStore, SessionConfig, SessionLayer, SessionManager};
///
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let app: axum::Router = axum::Router::new().layer(SessionLayer::new(manager));
/// ```
#[derive(Clone, Debug)]
pub struct SessionLayer {
    manager: SessionManager,
}

impl SessionLayer {
    /// A layer opening and finishing sessions with `manager`.
    pub fn new(manager: SessionManager) -> SessionLayer {
        SessionLayer { manager }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            manager: self.manager.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    manager: SessionManager,
}

/// The future of [`SessionService`]'s response.
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        if self.manager.wants_scheme() {
            // The scheme, when the request line or a proxy says it (hyper cannot tell TLS).
            let forwarded = request.headers().get("x-forwarded-proto");
            let scheme = (request.uri().scheme_str()).or(forwarded.and_then(|v| v.to_str().ok()));
            if let Some(scheme) = scheme {
                self.manager.note_scheme(scheme);
            }
        }
        let cookies = request.headers().get_all(COOKIE);
        let session =
            (self.manager).open_from_cookie_headers(cookies.iter().map(HeaderValue::as_bytes));
        request.extensions_mut().insert(session.clone());
        // Called now, on the instance that was polled ready: nothing async comes before the
        // handler, so the inner service is never cloned (a clone of axum's boxed routes
        // allocates on every request).
        let response = self.inner.call(request);
        let manager = self.manager.clone();
        // Built in its block: see `box_in_place`.
        session_core::box_in_place(move || async move {
            let response = response.await?;
            let (mut parts, body) = response.into_parts();
            let vary = parts.headers.get_all(VARY);
            let outcome = match manager
                .finish_with_vary(&session, vary.iter().map(HeaderValue::as_bytes))
                .await
            {
                Ok(outcome) => outcome,
                // Core logged why; a response must not claim a change that was not saved.
                Err(error) => return Ok(into_response(manager.error_response(&error))),
            };
            if let Some(value) = outcome.set_cookie.and_then(header_value) {
                parts.headers.append(SET_COOKIE, value);
            }
            if let Some(value) = outcome.vary.and_then(header_value) {
                parts.headers.insert(VARY, value);
            }
            Ok(Response::from_parts(parts, Body::new(body)))
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

/// An axum response of core's [`ErrorResponse`].
fn into_response(error: ErrorResponse) -> Response {
    let mut response = Response::new(Body::from(error.body().to_vec()));
    *response.status_mut() = status(error.status());
    for (name, value) in error.headers() {
        // Names and values were validated when the response was built.
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// axum's status for a status code from core (always 500 or 503).
pub(crate) fn status(code: u16) -> http::StatusCode {
    http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}
