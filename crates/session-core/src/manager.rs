//! [`SessionManager`]: what a framework adapter calls. It opens a request's session from
//! its `Cookie` headers and finishes it after the handler, answering with the final header
//! values; the decisions themselves live in `lifecycle.rs` (what to write) and `cookie.rs`
//! (what the headers say).

use std::sync::Arc;

use tokio::sync::MutexGuard;

use crate::config::SessionConfig;
use crate::cookie::{vary_with_cookie, Cookies, HeaderText};
use crate::error::{ConfigError, SessionError, StoreError};
use crate::lifecycle::{CookieAction, Engine, State};
use crate::owner::{Keep, OwnedSession};
use crate::session::Session;
use crate::store::SessionStore;

/// The headers the adapter must set on the response once the handler is done. Both are
/// valid header values by construction ([`HeaderText`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinishOutcome {
    /// A complete `Set-Cookie` value to append, when the cookie must be set or deleted.
    pub set_cookie: Option<HeaderText>,
    /// When the response depends on the session: the `Vary` value that replaces every
    /// `Vary` header of the response (what the handler set, merged with `Cookie`). `None`
    /// leaves the response's `Vary` as it is.
    pub vary: Option<HeaderText>,
}

/// The response a request gets when its session cannot be saved after the handler ran
/// (the handler's own response may claim a change that was lost, so it is never sent).
///
/// The default, for every adapter, is an empty body with [`SessionError::status`];
/// [`SessionManager::on_error`] replaces it. The adapters turn it into their framework's
/// response as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    status: u16,
    headers: Vec<(String, HeaderText)>,
    body: Vec<u8>,
}

impl ErrorResponse {
    /// A response with `status` (a status outside 100–599 is answered as 500), no headers
    /// and an empty body.
    pub fn new(status: u16) -> ErrorResponse {
        ErrorResponse {
            status: if (100..600).contains(&status) {
                status
            } else {
                500
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header; an error names what is not a valid header name or value.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<ErrorResponse, ConfigError> {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(ConfigError::new(
                "on_error",
                format!("{name:?} is not a header name"),
            ));
        }
        let value = HeaderText::new(value).ok_or_else(|| {
            ConfigError::new(
                "on_error",
                format!("the value of {name} is not a header value"),
            )
        })?;
        self.headers.push((name.to_owned(), value));
        Ok(self)
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> ErrorResponse {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &HeaderText)> {
        self.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value))
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

type ErrorHandler = Arc<dyn Fn(&SessionError) -> ErrorResponse + Send + Sync>;

/// Opens and finishes sessions for one store and configuration. Cheap to clone; build one
/// at startup and share it.
#[derive(Clone)]
pub struct SessionManager {
    /// One reference count for the adapters' per-request clone.
    shared: Arc<Shared>,
}

struct Shared {
    engine: Arc<Engine>,
    cookies: Arc<Cookies>,
    on_error: ErrorHandler,
    /// Whether the plain-HTTP warning was given (once per manager and its clones).
    warned_plain_http: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.shared.engine.config)
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager for `store` with `config`.
    pub fn new(store: impl SessionStore, config: SessionConfig) -> SessionManager {
        SessionManager::from_shared(Arc::new(store), config)
    }

    /// A manager for `store` with `config`, after checking that the store can hold the
    /// longest key the configuration makes (`SESSION_KEY_PREFIX` plus an id of
    /// `SESSION_ID_LENGTH`, or its hash with `SESSION_HASH_IDS`): the error names
    /// `SESSION_KEY_PREFIX`. [`new`](Self::new) skips the check and logs the problem instead.
    pub fn try_new(
        store: impl SessionStore,
        config: SessionConfig,
    ) -> Result<SessionManager, ConfigError> {
        SessionManager::try_from_shared(Arc::new(store), config)
    }

    /// [`try_new`](Self::try_new) for a store shared with other code.
    pub fn try_from_shared(
        store: Arc<dyn SessionStore>,
        config: SessionConfig,
    ) -> Result<SessionManager, ConfigError> {
        check_longest_key(store.as_ref(), &config)?;
        Ok(SessionManager::from_shared(store, config))
    }

    /// A manager for a store shared with other code. A `SESSION_KEY_PREFIX` the store
    /// cannot hold is logged as an error here (see [`try_new`](Self::try_new)).
    pub fn from_shared(store: Arc<dyn SessionStore>, config: SessionConfig) -> SessionManager {
        if let Err(error) = check_longest_key(store.as_ref(), &config) {
            tracing::error!(%error, "every write to the session store will fail");
        }
        SessionManager {
            shared: Arc::new(Shared {
                cookies: Arc::new(Cookies::new(&config)),
                engine: Arc::new(Engine::new(store, config)),
                on_error: Arc::new(|error| ErrorResponse::new(error.status())),
                warned_plain_http: Arc::default(),
            }),
        }
    }

    /// Whether [`note_scheme`](Self::note_scheme) has anything to do: `SESSION_COOKIE_SECURE`
    /// is on and the warning has not been given yet. Adapters find the request's scheme
    /// only then, since finding it is not free (actix-web's `ConnectionInfo` costs about
    /// 4 k instructions a request).
    ///
    /// ```
    /// use session_core::{MemoryStore, SessionConfig, SessionManager};
    ///
    /// let plain = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// assert!(!plain.wants_scheme());
    ///
    /// let config = SessionConfig::builder().cookie_secure(true).build()?;
    /// let secure = SessionManager::new(MemoryStore::new(), config);
    /// assert!(secure.wants_scheme());
    /// secure.note_scheme("https");
    /// assert!(secure.wants_scheme());
    /// secure.note_scheme("http"); // warns, once
    /// assert!(!secure.wants_scheme());
    /// # Ok::<(), session_core::ConfigError>(())
    /// ```
    pub fn wants_scheme(&self) -> bool {
        self.shared.engine.config.cookie_secure()
            && !(self.shared.warned_plain_http).load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Adapters call this with the request's scheme when they can tell it (`"http"` or
    /// `"https"`, from the connection or a proxy's header). A `Secure` cookie is never sent
    /// back by browsers over plain HTTP, so every request would look logged out: core warns,
    /// once.
    pub fn note_scheme(&self, scheme: &str) {
        use std::sync::atomic::Ordering;
        if self.shared.engine.config.cookie_secure()
            && scheme.eq_ignore_ascii_case("http")
            && !self.shared.warned_plain_http.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "SESSION_COOKIE_SECURE is set but requests arrive over plain HTTP: browsers \
                 will not send the session cookie back (serve over HTTPS, or set the \
                 proxy's X-Forwarded-Proto)"
            );
        }
    }

    /// Replaces the response sent when a session cannot be saved (an empty body with
    /// [`SessionError::status`] by default). The error is logged before `handler` runs;
    /// keep its detail out of the response.
    ///
    /// ```
    /// use session_core::{ErrorResponse, MemoryStore, SessionConfig, SessionManager};
    ///
    /// let retry_soon = ErrorResponse::new(503)
    ///     .with_header("retry-after", "5")?
    ///     .with_body("try again soon");
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default())
    ///     .on_error(move |_error| retry_soon.clone());
    /// # Ok::<(), session_core::ConfigError>(())
    /// ```
    pub fn on_error<F>(self, handler: F) -> SessionManager
    where
        F: Fn(&SessionError) -> ErrorResponse + Send + Sync + 'static,
    {
        SessionManager {
            shared: Arc::new(Shared {
                engine: self.shared.engine.clone(),
                cookies: self.shared.cookies.clone(),
                on_error: Arc::new(handler),
                warned_plain_http: self.shared.warned_plain_http.clone(),
            }),
        }
    }

    /// The response for a request whose session could not be saved (see
    /// [`on_error`](Self::on_error)).
    pub fn error_response(&self, error: &SessionError) -> ErrorResponse {
        (self.shared.on_error)(error)
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.shared.engine.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        self.shared.engine.shared_store()
    }

    /// Whether this manager keeps sessions in its in-process cache (see
    /// `SESSION_CACHE`): a read of a cached session makes no store call.
    pub fn caches(&self) -> bool {
        self.shared.engine.caches()
    }

    /// The live sessions of `owner` (`docs/owners.md`), most recently seen first; the one
    /// of `caller` (the request asking, if any) has `current: true`. Entries of the index
    /// whose session ended are pruned on the way. A store without an owner index answers
    /// [`StoreError::Unsupported`](crate::StoreError::Unsupported).
    pub async fn sessions_of(
        &self,
        owner: &str,
        caller: Option<&Session>,
    ) -> Result<Vec<OwnedSession>, SessionError> {
        self.require_index(owner).await?;
        let current = match caller {
            Some(session) => session.store_key().await?,
            None => None,
        };
        self.shared
            .engine
            .sessions_of(owner, current.as_deref())
            .await
    }

    /// Ends every session of `owner` except the one `keep` names ("log out everywhere"),
    /// and returns how many it ended. A request of a revoked session that is running
    /// meanwhile cannot keep it or bring it back: its save finds the session gone and
    /// starts a new, empty one. See `docs/owners.md` for the guarantees.
    pub async fn revoke_owner(
        &self,
        owner: &str,
        keep: Option<Keep<'_>>,
    ) -> Result<u64, SessionError> {
        self.require_index(owner).await?;
        let kept_key = match keep {
            Some(Keep::Session(session)) => session.store_key().await?,
            _ => None,
        };
        let kept_handle = match keep {
            Some(Keep::Handle(handle)) => Some(handle.to_owned()),
            _ => None,
        };
        let engine = self.shared.engine.clone();
        let keep = move |key: &str| {
            kept_key.as_deref() == Some(key)
                || kept_handle
                    .as_deref()
                    .is_some_and(|handle| engine.handle(key) == handle)
        };
        self.shared.engine.revoke_owner(owner, &keep).await
    }

    /// `Ok` when the store keeps an owner index; else the store's own `Unsupported`
    /// error, which says why (memcached cannot list keys).
    async fn require_index(&self, owner: &str) -> Result<(), SessionError> {
        if self.shared.engine.indexes_owners() {
            return Ok(());
        }
        let error = match self
            .shared
            .engine
            .store()
            .index_list(&self.shared.engine.index_name(owner))
            .await
        {
            Err(error @ crate::StoreError::Unsupported(_)) => error,
            _ => crate::StoreError::Unsupported(
                "this session store does not say it keeps an owner index (owner_index())"
                    .to_owned(),
            ),
        };
        Err(SessionError::Store(error))
    }

    /// Opens the session for a request whose session cookie has `cookie_value`. No store
    /// call happens here. A value that is not a well-formed id (or, with the signer, not
    /// correctly signed) gives a new, empty session.
    pub fn open(&self, cookie_value: Option<&str>) -> Session {
        let id = cookie_value.and_then(|value| self.shared.cookies.parse(value));
        Session::new(self.shared.engine.clone(), id)
    }

    /// Opens the session from the request's `Cookie` header values (the first cookie with
    /// the configured name wins, as in Werkzeug).
    pub fn open_from_cookie_headers<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a [u8]>,
    ) -> Session {
        Session::new(
            self.shared.engine.clone(),
            self.shared.cookies.find(headers),
        )
    }

    /// Finishes the request as [`finish_with_vary`](Self::finish_with_vary) does, for a
    /// response without `Vary` headers of its own.
    pub async fn finish(&self, session: &Session) -> Result<FinishOutcome, SessionError> {
        self.finish_with_vary(session, []).await
    }

    /// Finishes the request: writes, extends, deletes or leaves the session, and says which
    /// headers the response needs. `response_vary` are the `Vary` header values the handler
    /// set. A session the handler never used costs nothing here.
    ///
    /// An error means the session could not be saved: the adapter must not send the
    /// handler's response as if it had been, but [`error_response`](Self::error_response).
    pub async fn finish_with_vary<'a>(
        &self,
        session: &Session,
        response_vary: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<FinishOutcome, SessionError> {
        let mut state = session.lock_state().await;
        let result = self.shared.engine.commit(&mut state).await;
        self.finished(state, result, response_vary)
    }

    /// [`finish_with_vary`](Self::finish_with_vary) without waiting, for the requests that
    /// need no store call to finish (the session was never used, or was only read and no
    /// refresh of its expiry is due): their outcome, at once. `None` when finishing needs
    /// the store (a write, a refresh, a delete) or the session is still in use elsewhere;
    /// then call `finish_with_vary`, which does the same and waits.
    ///
    /// It lets an adapter answer most requests without building a future for the finish.
    pub fn finish_without_waiting<'a>(
        &self,
        session: &Session,
        response_vary: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<Result<FinishOutcome, SessionError>> {
        let mut state = session.try_lock_state()?;
        if !self.shared.engine.commit_without_io(&mut state) {
            return None;
        }
        Some(self.finished(state, Ok(()), response_vary))
    }

    /// The outcome of a finished commit: the error, or the headers the response needs.
    fn finished<'a>(
        &self,
        mut state: MutexGuard<'_, State>,
        result: Result<(), SessionError>,
        response_vary: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<FinishOutcome, SessionError> {
        let cookie = std::mem::take(&mut state.cookie);
        let accessed = state.accessed;
        let decision = state.decision;
        let id = state.stored_id().cloned();
        drop(state);
        self.shared.engine.maybe_cleanup();
        if let Err(error) = result {
            tracing::error!(%error, status = error.status(), "session could not be saved; the response is replaced");
            return Err(error);
        }
        tracing::debug!(
            decision = decision.action,
            reason = decision.reason,
            attempts = decision.attempts,
            bytes = decision.bytes,
            "session finished"
        );
        let set_cookie = match (cookie, id) {
            (CookieAction::Set { permanent, ttl }, Some(id)) => {
                Some(self.shared.cookies.set(&id, permanent, ttl))
            }
            (CookieAction::Delete, _) => Some(self.shared.cookies.delete()),
            _ => None,
        };
        let vary = if accessed || set_cookie.is_some() {
            vary_with_cookie(response_vary)
        } else {
            None
        };
        Ok(FinishOutcome { set_cookie, vary })
    }
}

/// Whether `store` can hold the longest key `config` makes: the prefix plus a new id of the
/// configured length (or, with `SESSION_HASH_IDS`, the id's hash).
fn check_longest_key(store: &dyn SessionStore, config: &SessionConfig) -> Result<(), ConfigError> {
    let Ok(id) = crate::id::SessionId::generate(config.id_length()) else {
        // No randomness now: the first request reports it; nothing to check the key with.
        return Ok(());
    };
    store.check_key(&config.store_key(&id)).map_err(|error| {
        let reason = match error {
            StoreError::InvalidKey(reason) => reason,
            other => other.to_string(),
        };
        ConfigError::new(
            "SESSION_KEY_PREFIX",
            format!(
                "{:?} with a session id of {} bytes makes keys this store cannot hold: {reason}",
                config.key_prefix(),
                config.id_length()
            ),
        )
    })
}
