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
use pin_project_lite::pin_project;
use session_core::{
    ErrorResponse, FinishOutcome, HeaderText, Session, SessionError, SessionManager,
};
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

pin_project! {
    /// The future of [`SessionService`]'s response: the handler's future, then, only when
    /// finishing the session needs the store (a write, a refresh of its expiry, a delete),
    /// a boxed future for that. A request that only read its session, or never used it,
    /// is finished in place without another allocation.
    pub struct ResponseFuture<F> {
        #[pin]
        step: Step<F>,
    }
}

pin_project! {
    #[project = StepProjection]
    #[project_replace = StepTaken]
    enum Step<F> {
        Handler {
            #[pin]
            response: F,
            session: Session,
            manager: SessionManager,
        },
        Saving {
            saving: Pin<Box<dyn Future<Output = Response> + Send>>,
        },
        Done,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

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
        ResponseFuture {
            step: Step::Handler {
                response: self.inner.call(request),
                session,
                manager: self.manager.clone(),
            },
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut step = self.project().step;
        loop {
            match step.as_mut().project() {
                StepProjection::Handler { response, .. } => {
                    let response = match response.poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => {
                            step.set(Step::Done);
                            return Poll::Ready(Err(error));
                        }
                        Poll::Ready(Ok(response)) => response,
                    };
                    // The handler's future is done: drop it, keep the session and manager.
                    let StepTaken::Handler {
                        session, manager, ..
                    } = step.as_mut().project_replace(Step::Done)
                    else {
                        unreachable!("the step was the handler's")
                    };
                    let (parts, body) = response.into_parts();
                    let vary = parts.headers.get_all(VARY);
                    let vary = vary.iter().map(HeaderValue::as_bytes);
                    if let Some(finished) = manager.finish_without_waiting(&session, vary) {
                        return Poll::Ready(Ok(respond(&manager, finished, parts, body)));
                    }
                    // Built in its block: see `box_in_place`.
                    let saving = session_core::box_in_place(move || async move {
                        let vary = parts.headers.get_all(VARY);
                        let vary = vary.iter().map(HeaderValue::as_bytes);
                        let finished = manager.finish_with_vary(&session, vary).await;
                        respond(&manager, finished, parts, body)
                    });
                    step.set(Step::Saving { saving });
                }
                StepProjection::Saving { saving } => {
                    let response = std::task::ready!(saving.as_mut().poll(cx));
                    step.set(Step::Done);
                    return Poll::Ready(Ok(response));
                }
                StepProjection::Done => panic!("ResponseFuture polled after it completed"),
            }
        }
    }
}

/// The response to send for the handler's response (`parts`, `body`) once its session is
/// finished: with the headers core asked for, or, when the session could not be saved,
/// the manager's error response (the handler's might claim a change that was lost; core
/// logged why).
fn respond<B>(
    manager: &SessionManager,
    finished: Result<FinishOutcome, SessionError>,
    mut parts: http::response::Parts,
    body: B,
) -> Response
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let outcome = match finished {
        Ok(outcome) => outcome,
        Err(error) => return into_response(manager.error_response(&error)),
    };
    if let Some(value) = outcome.set_cookie.and_then(header_value) {
        parts.headers.append(SET_COOKIE, value);
    }
    if let Some(value) = outcome.vary.and_then(header_value) {
        parts.headers.insert(VARY, value);
    }
    Response::from_parts(parts, Body::new(body))
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
