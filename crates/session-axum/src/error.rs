//! [`Error`]: session failures as HTTP responses without internal detail.

use std::fmt;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use session_core::SessionError;

/// A session failure a handler can return with `?`.
///
/// As a response it is `503 Service Unavailable` when the store failed
/// ([`SessionError::is_store_error`]: unreachable, erroring, or too many conflicting
/// saves) and `500 Internal Server Error` otherwise, always with an empty body: the
/// detail goes to the log (`tracing`), never to the client.
///
/// ```
/// use session_axum::{Error, Session};
///
/// async fn whoami(session: Session) -> Result<String, Error> {
///     let user: Option<String> = session.get("user").await?;
///     Ok(user.unwrap_or_else(|| "nobody".to_owned()))
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::get(whoami));
/// ```
pub struct Error {
    kind: Kind,
}

enum Kind {
    Session(SessionError),
    /// The extractor ran on a route the layer does not wrap.
    MissingLayer,
}

impl Error {
    pub(crate) fn missing_layer() -> Error {
        Error {
            kind: Kind::MissingLayer,
        }
    }

    /// The status of the response: 503 for store failures, 500 for anything else.
    pub fn status(&self) -> StatusCode {
        match &self.kind {
            Kind::Session(error) if error.is_store_error() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The session error, unless the failure is a missing [`SessionLayer`](crate::SessionLayer).
    pub fn session_error(&self) -> Option<&SessionError> {
        match &self.kind {
            Kind::Session(error) => Some(error),
            Kind::MissingLayer => None,
        }
    }

    /// True when the extractor was used on a route without [`SessionLayer`](crate::SessionLayer).
    pub fn is_missing_layer(&self) -> bool {
        matches!(self.kind, Kind::MissingLayer)
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
            Kind::MissingLayer => f.write_str(
                "the session extractor was used on a route that SessionLayer does not wrap; \
                 add `.layer(SessionLayer::new(manager))` to the router",
            ),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Session(error) => f.debug_tuple("Error").field(error).finish(),
            Kind::MissingLayer => f.write_str("Error(MissingLayer)"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Session(error) => Some(error),
            Kind::MissingLayer => None,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::error!(error = %self, status = status.as_u16(), "session error in request handler");
        status.into_response()
    }
}
