//! The [`Session`] extractor.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use session_core::SessionError;

use crate::Error;

session_core::session_extractor! {
    /// The request's session, as an actix-web extractor.
    ///
    /// Derefs to [`session_core::Session`], so every session method is available directly:
    /// `session.get("user")`, `session.insert("user", &name)`, `session.regenerate()`, …
    /// The handle is cheap to clone, `Send + Sync`, and can be held across `.await` or moved
    /// into a spawned task on another thread; changes are saved by
    /// [`SessionMiddleware`](crate::SessionMiddleware) after the handler returns.
    ///
    /// Extracting it on a route that [`SessionMiddleware`](crate::SessionMiddleware) does
    /// not wrap is a programming error: the request gets an empty `500` and the log says
    /// what is missing.
    Session
}

impl FromRequest for Session {
    type Error = Error;
    type Future = Ready<Result<Session, Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let session = request.extensions().get::<session_core::Session>().cloned();
        ready(
            session
                .map(Session)
                .ok_or(SessionError::MissingMiddleware.into()),
        )
    }
}
