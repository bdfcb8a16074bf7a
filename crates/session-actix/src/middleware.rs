//! [`SessionMiddleware`] and its service: open the session before the handler, finish it
//! after.

use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderValue, COOKIE, SET_COOKIE, VARY};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpResponse};
use session_core::{SessionError, SessionManager};

type ErrorHandler = Arc<dyn Fn(&SessionError) -> HttpResponse + Send + Sync>;

/// The response used when a session cannot be saved after the handler ran: an empty
/// `503 Service Unavailable` when the store failed (unreachable, erroring, or too many
/// conflicting saves), an empty `500 Internal Server Error` otherwise (for example data
/// that cannot be encoded). No detail reaches the client; the middleware logs the error.
pub fn default_error_response(error: &SessionError) -> HttpResponse {
    if error.is_store_error() {
        HttpResponse::new(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        HttpResponse::new(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// An actix-web middleware that gives every request a session.
///
/// Before the handler, it reads the request's `Cookie` headers and opens the session (no
/// store I/O: the session loads on first use) and puts it in the request extensions, where
/// the [`Session`](crate::Session) extractor finds it. After the handler, it lets
/// `session-core` save, extend or delete the session and adds the `Set-Cookie` and
/// `Vary: Cookie` headers core asks for.
///
/// When the session cannot be saved, the handler's response is not sent, because it may
/// claim a change that was lost: the client gets [`default_error_response`] instead, or
/// what [`on_error`](Self::on_error) builds. When an inner service fails with an
/// `actix_web::Error` instead of answering, the error passes through unchanged and the
/// session is not saved.
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
#[derive(Clone)]
pub struct SessionMiddleware {
    manager: SessionManager,
    on_error: ErrorHandler,
}

impl SessionMiddleware {
    /// A middleware opening and finishing sessions with `manager`.
    pub fn new(manager: SessionManager) -> SessionMiddleware {
        SessionMiddleware {
            manager,
            on_error: Arc::new(default_error_response),
        }
    }

    /// Replaces [`default_error_response`]: `handler` builds the response sent when the
    /// session could not be saved. The error has already been logged; keep its detail out
    /// of the response.
    ///
    /// ```
    /// use actix_web::HttpResponse;
    /// use session_actix::{MemoryStore, SessionConfig, SessionManager, SessionMiddleware};
    ///
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// let middleware = SessionMiddleware::new(manager).on_error(|_error| {
    ///     HttpResponse::ServiceUnavailable()
    ///         .insert_header(("retry-after", "5"))
    ///         .body("try again soon")
    /// });
    /// ```
    pub fn on_error<F>(mut self, handler: F) -> SessionMiddleware
    where
        F: Fn(&SessionError) -> HttpResponse + Send + Sync + 'static,
    {
        self.on_error = Arc::new(handler);
        self
    }

    /// The manager this middleware uses.
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }
}

impl fmt::Debug for SessionMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
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
            on_error: self.on_error.clone(),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around an inner service.
pub struct SessionService<S> {
    service: S,
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

/// The future of [`SessionService`]'s response. Not `Send`, like every actix-web service
/// future; the session it finishes is.
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
        let session = self
            .manager
            .open_from_cookie_headers(request.headers().get_all(COOKIE).map(HeaderValue::as_bytes));
        request.extensions_mut().insert(session.clone());
        let response = self.service.call(request);
        let manager = self.manager.clone();
        let on_error = self.on_error.clone();
        Box::pin(async move {
            let mut response = response.await?;
            let outcome = match manager.finish(&session).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::error!(%error, "session could not be saved; the handler's response is replaced");
                    let replacement = on_error(&error);
                    return Ok(response.into_response(replacement).map_into_right_body());
                }
            };
            let headers = response.headers_mut();
            if let Some(set_cookie) = outcome.set_cookie {
                match HeaderValue::try_from(set_cookie) {
                    Ok(value) => headers.append(SET_COOKIE, value),
                    Err(_) => {
                        tracing::error!("the session cookie is not a valid header value; check the cookie configuration");
                        let replacement = HttpResponse::new(StatusCode::INTERNAL_SERVER_ERROR);
                        return Ok(response.into_response(replacement).map_into_right_body());
                    }
                }
            }
            if outcome.vary_cookie {
                add_vary_cookie(response.headers_mut());
            }
            Ok(response.map_into_left_body())
        })
    }
}

/// Adds `Cookie` to the `Vary` header, merging with what the handler set and never
/// listing it twice.
fn add_vary_cookie(headers: &mut HeaderMap) {
    let existing: Vec<HeaderValue> = headers.get_all(VARY).cloned().collect();
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
        Err(_) => headers.append(VARY, HeaderValue::from_static("Cookie")),
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
