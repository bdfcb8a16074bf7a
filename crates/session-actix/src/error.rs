//! [`Error`]: session failures as HTTP responses without internal detail.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use session_core::SessionError;

/// A session failure a handler can return with `?`.
///
/// As a response it has [`SessionError::status`] (`503 Service Unavailable` when the store
/// failed: unreachable, erroring, or too many conflicting saves; `500 Internal Server
/// Error` otherwise, as for the extractor used without
/// [`SessionMiddleware`](crate::SessionMiddleware)) and always an empty body: the detail
/// goes to the log (`tracing`), never to the client.
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
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] pub SessionError);

/// The framework's status for a status code from core.
pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        status(self.0.status())
    }

    /// An empty body: actix-web's default would send the `Display` text, which may name
    /// the store's server.
    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        tracing::error!(error = %self, status = status.as_u16(), "session error in request handler");
        HttpResponse::new(status)
    }
}
