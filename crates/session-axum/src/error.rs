//! [`Error`]: session failures as HTTP responses without internal detail.

use axum::response::{IntoResponse, Response};
use session_core::SessionError;

/// A session failure a handler can return with `?`.
///
/// As a response it has [`SessionError::status`] (`503 Service Unavailable` when the store
/// failed: unreachable, erroring, or too many conflicting saves; `500 Internal Server
/// Error` otherwise, as for the extractor used without [`SessionLayer`](crate::SessionLayer))
/// and always an empty body: the detail goes to the log (`tracing`), never to the client.
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
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] pub SessionError);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        crate::layer::status(self.0.log_handler_error()).into_response()
    }
}
