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
/// use actix_web::{web, App, HttpResponse};
/// use session_actix::{Error, Session};
///
/// async fn forget(session: Session, key: web::Path<String>) -> Result<HttpResponse, Error> {
///     session.remove_value(&key).await?;
///     Ok(HttpResponse::NoContent().finish())
/// }
/// # let _ = App::new().route("/data/{key}", web::delete().to(forget));
/// ```
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] pub SessionError);

/// actix-web's status (http 0.2) for a status code from core (always 500 or 503).
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
        HttpResponse::new(status(self.0.log_handler_error()))
    }
}
