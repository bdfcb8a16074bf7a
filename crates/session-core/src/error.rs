//! Typed errors for stores, sessions and configuration.

use std::error::Error as StdError;

/// A boxed error from a store's driver, kept inside a [`StoreError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The driver's error and every cause under it, `: `-separated. A [`StoreError`] shows them
/// in its own message rather than as its `source()`: a log line with `%error` then names
/// the cause, and a reporter that walks the chain (`anyhow`'s `{:#}`) does not print the
/// driver's message twice.
fn chain(error: &BoxError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        // Drivers that already print their cause in their own message.
        if !text.ends_with(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    text
}

/// An error reported by a [`SessionStore`](crate::SessionStore).
///
/// Stores map their driver's errors onto these variants so that the lifecycle can decide
/// what to do (for example answer 503 while the server is down) without knowing the driver.
/// The `Display` text may contain backend detail: log it, never send it to a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The server could not be reached or did not answer in time.
    #[error("session store unavailable: {}", chain(.0))]
    Unavailable(BoxError),
    /// The server answered with an error.
    #[error("session store error: {}", chain(.0))]
    Backend(BoxError),
    /// The value is larger than the store can keep.
    #[error("session data of {size} bytes exceeds the store's limit of {limit} bytes")]
    TooLarge {
        /// Size of the rejected value in bytes.
        size: usize,
        /// The store's limit in bytes.
        limit: usize,
    },
    /// The key cannot be stored by this store (too long, forbidden characters).
    #[error("key not accepted by the session store: {0}")]
    InvalidKey(String),
    /// The store cannot do what was asked, ever (list the keys of memcached, hold a value
    /// its layout has no form for): not worth retrying.
    #[error("not supported by the session store: {0}")]
    Unsupported(String),
}

impl StoreError {
    /// Wraps a connection or timeout error.
    pub fn unavailable(error: impl Into<BoxError>) -> Self {
        StoreError::Unavailable(error.into())
    }

    /// Wraps an error answered by the server.
    pub fn backend(error: impl Into<BoxError>) -> Self {
        StoreError::Backend(error.into())
    }
}

/// An error from the [`Session`](crate::Session) handle or the request lifecycle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed; see [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session data could not be encoded in the configured format.
    #[error("session data cannot be encoded: {0}")]
    Encode(String),
    /// A stored value could not be converted to or from the requested Rust type.
    #[error("session value {key:?} has an unexpected type: {message}")]
    Value {
        /// The session key whose value failed to convert.
        key: String,
        /// What the conversion reported.
        message: String,
    },
    /// Other requests kept changing the session; the save gave up after this many attempts.
    #[error("session save gave up after {attempts} conflicting attempts")]
    Conflict {
        /// How many compare-and-set attempts were made.
        attempts: u32,
    },
    /// The operating system's random number generator failed.
    #[error("random session id could not be generated: {0}")]
    Random(String),
    /// A handler asked for the session on a route that the session middleware does not
    /// wrap: a programming error, answered with a bare 500.
    #[error(
        "the session extractor was used on a route the session middleware does not wrap; \
         add it to the router or app (`.layer(SessionLayer::new(manager))` with axum, \
         `.wrap(SessionMiddleware::new(manager))` with actix-web)"
    )]
    MissingMiddleware,
}

impl SessionError {
    /// True when the store is unavailable or failing, or saves kept conflicting: a
    /// condition worth retrying later. Values that are too large or keys the store refuses
    /// are not: they fail the same way every time.
    pub fn is_store_error(&self) -> bool {
        matches!(
            self,
            SessionError::Store(StoreError::Unavailable(_) | StoreError::Backend(_))
                | SessionError::Conflict { .. }
        )
    }

    /// The same error, for each member of a group write that failed as a whole: the
    /// source's message is kept as text.
    pub(crate) fn duplicate(&self) -> SessionError {
        let text = |error: &BoxError| -> BoxError { error.to_string().into() };
        match self {
            SessionError::Store(StoreError::Unavailable(error)) => {
                SessionError::Store(StoreError::Unavailable(text(error)))
            }
            SessionError::Store(StoreError::Backend(error)) => {
                SessionError::Store(StoreError::Backend(text(error)))
            }
            SessionError::Store(StoreError::TooLarge { size, limit }) => {
                SessionError::Store(StoreError::TooLarge {
                    size: *size,
                    limit: *limit,
                })
            }
            SessionError::Store(StoreError::InvalidKey(key)) => {
                SessionError::Store(StoreError::InvalidKey(key.clone()))
            }
            SessionError::Store(StoreError::Unsupported(what)) => {
                SessionError::Store(StoreError::Unsupported(what.clone()))
            }
            SessionError::Encode(message) => SessionError::Encode(message.clone()),
            SessionError::Value { key, message } => SessionError::Value {
                key: key.clone(),
                message: message.clone(),
            },
            SessionError::Conflict { attempts } => SessionError::Conflict {
                attempts: *attempts,
            },
            SessionError::Random(message) => SessionError::Random(message.clone()),
            SessionError::MissingMiddleware => SessionError::MissingMiddleware,
        }
    }

    /// The HTTP status a request that failed with this error answers, always with an empty
    /// body: `503 Service Unavailable` for [store errors](Self::is_store_error) (try again
    /// later), `500 Internal Server Error` for everything else. Both adapters answer with
    /// it; the detail goes to the log, never to the client.
    pub fn status(&self) -> u16 {
        if self.is_store_error() {
            503
        } else {
            500
        }
    }

    /// What an adapter's error type answers when a handler returns this error: logs it
    /// (one `ERROR` event with the detail, which never goes to the client) and returns
    /// [`status`](Self::status).
    pub fn log_handler_error(&self) -> u16 {
        let status = self.status();
        tracing::error!(error = %self, status, "session error in request handler");
        status
    }
}

/// An invalid configuration value; the message names the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {option}: {message}")]
pub struct ConfigError {
    /// The Flask-Session name of the option, e.g. `SESSION_ID_LENGTH`.
    pub option: &'static str,
    /// What is wrong with the value.
    pub message: String,
}

impl ConfigError {
    /// An error for `option` (its environment name, e.g. `SESSION_REDIS_URL`) saying what
    /// is wrong with its value.
    pub fn new(option: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            option,
            message: message.into(),
        }
    }
}

/// Why a store could not be built.
///
/// Every backend's `connect` (or `build`) returns it: a wrong option is a
/// [`ConfigError`] naming the option, a server that cannot be reached or refuses the setup
/// a [`StoreError`]. The `Display` text never contains a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// An option is invalid; the message names it.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server could not be reached, or refused what setting up the store needs.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SetupError {
    /// True when the server could not be reached (as opposed to a wrong setting): worth
    /// retrying later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SetupError::Store(StoreError::Unavailable(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A driver error with a cause, as session-any's "no answer from Redis" is.
    #[derive(Debug, thiserror::Error)]
    #[error("no answer from Redis (SESSION_REDIS_URL)")]
    struct Unreachable(#[source] std::io::Error);

    /// What `anyhow`'s `{:#}` prints: every message of the chain, `: `-separated.
    fn report(error: &dyn StdError) -> String {
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(next) = cause {
            text = format!("{text}: {next}");
            cause = next.source();
        }
        text
    }

    #[test]
    fn a_store_error_names_every_cause_once() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = SetupError::from(StoreError::unavailable(Unreachable(refused)));
        let expected =
            "session store unavailable: no answer from Redis (SESSION_REDIS_URL): refused";
        assert_eq!(error.to_string(), expected);
        assert_eq!(report(&error), expected);
        let backend = StoreError::backend("ERR wrong number of arguments");
        assert_eq!(
            report(&backend),
            "session store error: ERR wrong number of arguments"
        );
    }
}
