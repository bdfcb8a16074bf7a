//! The [`Session`] extractor.

use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::Error;

/// The request's session, as an actix-web extractor.
///
/// Derefs to [`session_core::Session`], so every session method is available directly:
/// `session.get("user")`, `session.insert("user", &name)`, `session.regenerate()`, … The
/// handle is cheap to clone, `Send + Sync`, and can be held across `.await` or moved into a
/// spawned task on another thread; changes are saved by
/// [`SessionMiddleware`](crate::SessionMiddleware) after the handler returns.
///
/// Extracting it on a route that [`SessionMiddleware`](crate::SessionMiddleware) does not
/// wrap is a programming error: the request gets an empty `500` and the log says what is
/// missing.
#[derive(Clone, Debug)]
pub struct Session(pub session_core::Session);

impl Session {
    /// The core session handle.
    pub fn into_inner(self) -> session_core::Session {
        self.0
    }
}

impl Deref for Session {
    type Target = session_core::Session;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<Session> for session_core::Session {
    fn from(session: Session) -> Self {
        session.0
    }
}

impl FromRequest for Session {
    type Error = Error;
    type Future = Ready<Result<Session, Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            request
                .extensions()
                .get::<session_core::Session>()
                .map(|session| Session(session.clone()))
                .ok_or_else(Error::missing_middleware),
        )
    }
}
