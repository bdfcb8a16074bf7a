//! [`SessionMiddleware`] and its service: open the session before the handler, finish it
//! after.

use std::borrow::Cow;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderValue, COOKIE, SET_COOKIE, VARY};
use actix_web::{HttpMessage, HttpResponse};
use pin_project_lite::pin_project;
use session_core::{
    ErrorResponse, FinishOutcome, HeaderText, Session, SessionError, SessionManager,
};

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

pin_project! {
    /// The future of [`SessionService`]'s response (not `Send`, like every actix-web
    /// future): the handler's future, then, only when finishing the session needs the
    /// store (a write, a refresh of its expiry, a delete), a boxed future for that. A
    /// request that only read its session, or never used it, is finished in place without
    /// another allocation.
    pub struct ResponseFuture<F, B> {
        #[pin]
        step: Step<F, B>,
    }
}

pin_project! {
    #[project = StepProjection]
    #[project_replace = StepTaken]
    enum Step<F, B> {
        Handler {
            #[pin]
            response: F,
            session: Session,
            manager: SessionManager,
        },
        Saving {
            saving: Pin<Box<dyn Future<Output = ServiceResponse<EitherBody<B>>>>>,
        },
        Done,
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        if self.manager.wants_scheme() {
            self.manager.note_scheme(request.connection_info().scheme());
        }
        let cookies = request.headers().get_all(COOKIE);
        let session = (self.manager).open_from_cookie_headers(cookies.map(HeaderValue::as_bytes));
        request.extensions_mut().insert(session.clone());
        ResponseFuture {
            step: Step::Handler {
                response: self.service.call(request),
                session,
                manager: self.manager.clone(),
            },
        }
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

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
                    let vary = response.headers().get_all(VARY).map(HeaderValue::as_bytes);
                    if let Some(finished) = manager.finish_without_waiting(&session, vary) {
                        return Poll::Ready(Ok(respond(&manager, finished, response)));
                    }
                    // Built in its block: see `box_in_place`.
                    let saving = session_core::box_in_place(move || async move {
                        let vary = response.headers().get_all(VARY).map(HeaderValue::as_bytes);
                        let finished = manager.finish_with_vary(&session, vary).await;
                        respond(&manager, finished, response)
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

/// The response to send for the handler's `response` once its session is finished: with
/// the headers core asked for, or, when the session could not be saved, the manager's
/// error response (the handler's might claim a change that was lost; core logged why).
fn respond<B>(
    manager: &SessionManager,
    finished: Result<FinishOutcome, SessionError>,
    mut response: ServiceResponse<B>,
) -> ServiceResponse<EitherBody<B>> {
    let outcome = match finished {
        Ok(outcome) => outcome,
        Err(error) => {
            let replacement = into_response(&manager.error_response(&error));
            return response.into_response(replacement).map_into_right_body();
        }
    };
    let headers = response.headers_mut();
    if let Some(value) = outcome.set_cookie.and_then(header_value) {
        headers.append(SET_COOKIE, value);
    }
    if let Some(value) = outcome.vary.and_then(header_value) {
        headers.insert(VARY, value);
    }
    response.map_into_left_body()
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
