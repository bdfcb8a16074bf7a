//! The [`Session`] extractor.

use axum::extract::FromRequestParts;
use http::request::Parts;
use session_core::SessionError;

use crate::Error;

session_core::session_extractor! {
    /// The request's session, as an axum extractor.
    ///
    /// Derefs to [`session_core::Session`], so every session method is available directly:
    /// `session.get("user")`, `session.insert("user", &name)`, `session.regenerate()`, …
    /// The handle is cheap to clone and can be held across `.await`; changes are saved by
    /// [`SessionLayer`](crate::SessionLayer) after the handler returns.
    ///
    /// Extracting it on a route that [`SessionLayer`](crate::SessionLayer) does not wrap is a
    /// programming error: the request gets an empty `500` and the log says what is missing.
    Session
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<session_core::Session>() {
            Some(session) => Ok(Session(session.clone())),
            None => Err(SessionError::MissingMiddleware.into()),
        }
    }
}
