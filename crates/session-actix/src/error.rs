//! [`Error`]: session failures as HTTP responses without internal detail.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use session_core::SessionError;

/// A session failure a handler can return with `?`.
///
/// As a response it is `503 Service Unavailable` when the store failed
/// ([`SessionError::is_store_error`]: unreachable, erroring, or too many conflicting
/// saves) and `500 Internal Server Error` otherwise, always with an empty body: the
/// detail goes to the log (`tracing`), never to the client.
///
/// ```
/// use session_actix::{Error, Session};
///
/// async fn whoami(session: Session) -> Result<String, Error> {
///     let user: Option<String> = session.get("user").await?;
///     Ok(user.unwrap_or_else(|| "nobody".to_owned()))
/// }
/// # let _ = actix_web::App::new().route("/", actix_web::web::get().to(whoami));
/// ```
pub struct Error {
    kind: Kind,
}

enum Kind {
    Session(SessionError),
    /// The extractor ran on a route the middleware does not wrap.
    MissingMiddleware,
}

impl Error {
    pub(crate) fn missing_middleware() -> Error {
        Error {
            kind: Kind::MissingMiddleware,
        }
    }

    /// The status of the response: 503 for store failures, 500 for anything else.
    pub fn status(&self) -> StatusCode {
        match &self.kind {
            Kind::Session(error) if error.is_store_error() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The session error, unless the failure is a missing
    /// [`SessionMiddleware`](crate::SessionMiddleware).
    pub fn session_error(&self) -> Option<&SessionError> {
        match &self.kind {
            Kind::Session(error) => Some(error),
            Kind::MissingMiddleware => None,
        }
    }

    /// True when the extractor was used on a route without
    /// [`SessionMiddleware`](crate::SessionMiddleware).
    pub fn is_missing_middleware(&self) -> bool {
        matches!(self.kind, Kind::MissingMiddleware)
    }
}

impl From<SessionError> for Error {
    fn from(error: SessionError) -> Self {
        Error {
            kind: Kind::Session(error),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Session(error) => fmt::Display::fmt(error, f),
            Kind::MissingMiddleware => f.write_str(
                "the session extractor was used on a route that SessionMiddleware does not wrap; \
                 add `.wrap(SessionMiddleware::new(manager))` to the App or scope",
            ),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Session(error) => f.debug_tuple("Error").field(error).finish(),
            Kind::MissingMiddleware => f.write_str("Error(MissingMiddleware)"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Session(error) => Some(error),
            Kind::MissingMiddleware => None,
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    /// An empty body: actix-web's default would send the `Display` text, which may name
    /// the store's server.
    fn error_response(&self) -> HttpResponse {
        let status = self.status();
        tracing::error!(error = %self, status = status.as_u16(), "session error in request handler");
        HttpResponse::new(status)
    }
}
