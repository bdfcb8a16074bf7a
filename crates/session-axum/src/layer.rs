//! [`SessionLayer`] and its service: open the session before the handler, finish it after.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::response::{IntoResponse, Response};
use axum::BoxError;
use http::header::{COOKIE, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use session_core::{SessionError, SessionManager};
use tower_layer::Layer;
use tower_service::Service;

type ErrorHandler = Arc<dyn Fn(&SessionError) -> Response + Send + Sync>;

/// The response used when a session cannot be saved after the handler ran: an empty
/// `503 Service Unavailable` when the store failed (unreachable, erroring, or too many
/// conflicting saves), an empty `500 Internal Server Error` otherwise (for example data
/// that cannot be encoded). No detail reaches the client; the layer logs the error.
pub fn default_error_response(error: &SessionError) -> Response {
    if error.is_store_error() {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    } else {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

/// A tower [`Layer`] that gives every request a session.
///
/// Before the handler, it reads the request's `Cookie` headers and opens the session (no
/// store I/O: the session loads on first use) and puts it in the request extensions, where
/// the [`Session`](crate::Session) extractor finds it. After the handler, it lets
/// `session-core` save, extend or delete the session and adds the `Set-Cookie` and
/// `Vary: Cookie` headers core asks for.
///
/// When the session cannot be saved, the handler's response is not sent, because it may
/// claim a change that was lost: the client gets [`default_error_response`] instead, or
/// what [`on_error`](Self::on_error) builds.
///
/// ```
/// use session_axum::{MemoryStore, SessionConfig, SessionLayer, SessionManager};
///
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let app: axum::Router = axum::Router::new().layer(SessionLayer::new(manager));
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    manager: SessionManager,
    on_error: ErrorHandler,
}

impl SessionLayer {
    /// A layer opening and finishing sessions with `manager`.
    pub fn new(manager: SessionManager) -> SessionLayer {
        SessionLayer {
            manager,
            on_error: Arc::new(default_error_response),
        }
    }

    /// Replaces [`default_error_response`]: `handler` builds the response sent when the
    /// session could not be saved. The error has already been logged; keep its detail out
    /// of the response.
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use http::StatusCode;
    /// use session_axum::{MemoryStore, SessionConfig, SessionLayer, SessionManager};
    ///
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// let layer = SessionLayer::new(manager).on_error(|_error| {
    ///     (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "5")], "try again soon").into_response()
    /// });
    /// ```
    pub fn on_error<F>(mut self, handler: F) -> SessionLayer
    where
        F: Fn(&SessionError) -> Response + Send + Sync + 'static,
    {
        self.on_error = Arc::new(handler);
        self
    }

    /// The manager this layer uses.
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            manager: self.manager.clone(),
            on_error: self.on_error.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    manager: SessionManager,
    on_error: ErrorHandler,
}

impl<S> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

/// The future of [`SessionService`]'s response.
pub struct ResponseFuture<E> {
    inner: Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>,
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
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
        let session = self.manager.open_from_cookie_headers(
            request
                .headers()
                .get_all(COOKIE)
                .iter()
                .map(HeaderValue::as_bytes),
        );
        request.extensions_mut().insert(session.clone());
        // The clone that was polled ready handles this request; a fresh clone stays behind.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let manager = self.manager.clone();
        let on_error = self.on_error.clone();
        ResponseFuture {
            inner: Box::pin(async move {
                let response = inner.call(request).await?;
                let outcome = match manager.finish(&session).await {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        tracing::error!(%error, "session could not be saved; the handler's response is replaced");
                        return Ok(on_error(&error));
                    }
                };
                let (mut parts, body) = response.into_parts();
                if let Some(set_cookie) = outcome.set_cookie {
                    match HeaderValue::try_from(set_cookie) {
                        Ok(value) => {
                            parts.headers.append(SET_COOKIE, value);
                        }
                        Err(_) => {
                            tracing::error!("the session cookie is not a valid header value; check the cookie configuration");
                            return Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response());
                        }
                    }
                }
                if outcome.vary_cookie {
                    add_vary_cookie(&mut parts.headers);
                }
                Ok(Response::from_parts(parts, Body::new(body)))
            }),
        }
    }
}

/// Adds `Cookie` to the `Vary` header, merging with what the handler set and never
/// listing it twice.
fn add_vary_cookie(headers: &mut HeaderMap) {
    let existing: Vec<HeaderValue> = headers.get_all(VARY).iter().cloned().collect();
    let covered = existing.iter().any(|value| {
        value.as_bytes().split(|b| *b == b',').any(|token| {
            let token = token.trim_ascii();
            token.eq_ignore_ascii_case(b"cookie") || token == b"*"
        })
    });
    if covered {
        return;
    }
    if existing.is_empty() {
        headers.insert(VARY, HeaderValue::from_static("Cookie"));
        return;
    }
    let mut merged = Vec::new();
    for value in &existing {
        merged.extend_from_slice(value.as_bytes());
        merged.extend_from_slice(b", ");
    }
    merged.extend_from_slice(b"Cookie");
    match HeaderValue::from_bytes(&merged) {
        Ok(value) => {
            headers.insert(VARY, value);
        }
        Err(_) => {
            headers.append(VARY, HeaderValue::from_static("Cookie"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vary_after(values: &[&'static str]) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(VARY, HeaderValue::from_static(value));
        }
        add_vary_cookie(&mut headers);
        headers
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn vary_is_added_or_merged_once() {
        assert_eq!(vary_after(&[]), ["Cookie"]);
        assert_eq!(
            vary_after(&["Accept-Encoding"]),
            ["Accept-Encoding, Cookie"]
        );
        assert_eq!(
            vary_after(&["Accept-Encoding", "Origin"]),
            ["Accept-Encoding, Origin, Cookie"]
        );
        assert_eq!(vary_after(&["origin, cookie"]), ["origin, cookie"]);
        assert_eq!(vary_after(&["COOKIE"]), ["COOKIE"]);
        assert_eq!(vary_after(&["*"]), ["*"]);
        assert_eq!(vary_after(&["Cookies"]), ["Cookies, Cookie"]);
    }
}
