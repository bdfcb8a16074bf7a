//! [`SessionManager`]: opens sessions from cookies and finishes them after the handler,
//! applying Flask-Session's rules plus lazy loading, skipped rewrites and conflict-free
//! saves.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cookie::Cookie;

use crate::config::{SameSite, SessionConfig};
use crate::data::{SessionData, Value};
use crate::error::SessionError;
use crate::id::SessionId;
use crate::session::{CookieAction, Loaded, Session, State, Stored};
use crate::signer::Signer;
use crate::store::SessionStore;

/// Key under which the creation time (Unix seconds) is kept when an absolute lifetime is
/// configured. Absent otherwise.
pub const CREATED_KEY: &str = "_session_created";

pub(crate) struct ManagerInner {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) config: SessionConfig,
    signer: Option<Signer>,
    /// `Set-Cookie` of a session without its value and expiry, rendered once.
    cookie_template: CookieTemplate,
    save_turns: Box<[SaveTurn]>,
    /// Per stripe of `save_turns`, how many saves have completed in this process.
    save_generations: Box<[AtomicU64]>,
}

/// The constant parts of the session's `Set-Cookie`: everything the `cookie` crate renders
/// around the value, except `Expires`, which it renders last and which is the only part that
/// changes between saves. Rendering the whole cookie per save cost about 6k instructions (a
/// tenth of a session write); filling in the template costs a few hundred.
struct CookieTemplate {
    /// `name=`.
    before_value: String,
    /// `; HttpOnly; SameSite=...; Secure; Path=...; Domain=...`, as configured.
    after_value: String,
}

impl CookieTemplate {
    fn new(config: &SessionConfig) -> CookieTemplate {
        let mut cookie = Cookie::build((config.cookie_name().to_owned(), ""))
            .path(config.cookie_path().to_owned())
            .http_only(config.cookie_http_only())
            .secure(config.cookie_secure());
        if let Some(domain) = config.cookie_domain() {
            cookie = cookie.domain(domain.to_owned());
        }
        if let Some(same_site) = config.cookie_same_site() {
            cookie = cookie.same_site(match same_site {
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::None => cookie::SameSite::None,
            });
        }
        if config.cookie_partitioned() {
            cookie = cookie.partitioned(true);
        }
        // `cookie` renders `name=value` first, then the attributes.
        let rendered = cookie.build().to_string();
        let split = config.cookie_name().len() + 1;
        CookieTemplate {
            before_value: rendered[..split].to_owned(),
            after_value: rendered[split..].to_owned(),
        }
    }

    fn render(&self, value: &str, expires: Option<SystemTime>) -> String {
        const EXPIRES: &str = "; Expires=";
        const HTTP_DATE_LEN: usize = 29;
        let mut cookie = String::with_capacity(
            self.before_value.len()
                + value.len()
                + self.after_value.len()
                + EXPIRES.len()
                + HTTP_DATE_LEN,
        );
        cookie.push_str(&self.before_value);
        cookie.push_str(value);
        cookie.push_str(&self.after_value);
        if let Some(expires) = expires {
            cookie.push_str(EXPIRES);
            cookie.push_str(&httpdate::fmt_http_date(expires));
        }
        cookie
    }
}

/// The latest time an HTTP date can name (9999-12-31 23:59:59 UTC): a longer lifetime
/// expires the cookie then, instead of failing to format.
const LAST_HTTP_DATE: Duration = Duration::from_secs(253_402_300_799);

/// Number of stripes of the in-process save lock.
const SAVE_LOCK_STRIPES: usize = 1024;

/// One stripe of the in-process save lock: saves of the sessions whose ids fall in it take
/// turns. While requests wait for their turn, the lock also holds what the last save wrote,
/// so that the next request (whose copy is then stale) starts from it instead of reading
/// the store again: one round trip per save instead of two when one session is busy.
#[derive(Default)]
struct SaveTurn {
    last_save: tokio::sync::Mutex<Option<LastSave>>,
    /// Requests waiting for (or holding) this turn.
    waiting: AtomicUsize,
}

/// What a save wrote, kept only while other requests wait for the same stripe.
struct LastSave {
    id: SessionId,
    bytes: Vec<u8>,
    expires_at: Option<SystemTime>,
}

impl SaveTurn {
    async fn take(&self) -> tokio::sync::MutexGuard<'_, Option<LastSave>> {
        /// Counts a waiter until its turn is granted, or until it gives up (the request's
        /// future dropped).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        self.last_save.lock().await
    }

    /// Whether another request waits for this turn (the caller holds it).
    fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }
}

/// What the adapter must add to the response once the handler is done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinishOutcome {
    /// A complete `Set-Cookie` header value, when the cookie must be set or deleted.
    pub set_cookie: Option<String>,
    /// Whether to add `Vary: Cookie` (the response depends on the session).
    pub vary_cookie: bool,
}

/// Opens and finishes sessions for one store and configuration. Cheap to clone; build one
/// at startup and share it.
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<ManagerInner>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager for `store` with `config`.
    pub fn new(store: impl SessionStore, config: SessionConfig) -> SessionManager {
        SessionManager::from_shared(Arc::new(store), config)
    }

    /// A manager for a store shared with other code.
    pub fn from_shared(store: Arc<dyn SessionStore>, config: SessionConfig) -> SessionManager {
        let signer = if config.use_signer() {
            config.secret_key().map(Signer::new)
        } else {
            None
        };
        SessionManager {
            inner: Arc::new(ManagerInner {
                store,
                cookie_template: CookieTemplate::new(&config),
                config,
                signer,
                save_turns: (0..SAVE_LOCK_STRIPES)
                    .map(|_| SaveTurn::default())
                    .collect(),
                save_generations: (0..SAVE_LOCK_STRIPES).map(|_| AtomicU64::new(0)).collect(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// Opens the session for a request whose session cookie has `cookie_value`. No store
    /// call happens here. A value that is not a well-formed id (or, with the signer, not
    /// correctly signed) gives a new, empty session.
    pub fn open(&self, cookie_value: Option<&str>) -> Session {
        let cookie_id = cookie_value
            .and_then(|value| match &self.inner.signer {
                Some(signer) => signer.unsign(value),
                None => Some(value),
            })
            .and_then(SessionId::parse);
        Session::new(self.inner.clone(), cookie_id)
    }

    /// Opens the session from the request's `Cookie` header values (the first cookie with
    /// the configured name wins, as in Werkzeug).
    pub fn open_from_cookie_headers<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a [u8]>,
    ) -> Session {
        let name = self.inner.config.cookie_name().as_bytes();
        let value = headers
            .into_iter()
            .find_map(|header| find_cookie(header, name));
        self.open(value.as_deref())
    }

    /// Finishes the request: writes, extends, deletes or leaves the session, and says which
    /// headers the response needs. A session the handler never used costs nothing here.
    ///
    /// An error means the session could not be saved: the adapter must not send the
    /// handler's response as if it had been (the default is a bare 503).
    pub async fn finish(&self, session: &Session) -> Result<FinishOutcome, SessionError> {
        let mut state = session.inner.state.lock().await;
        let result = self.inner.commit(&mut state).await;
        let cookie = std::mem::take(&mut state.cookie);
        let accessed = state.accessed;
        let id = state
            .loaded
            .as_ref()
            .and_then(|l| l.stored.as_ref())
            .map(|s| s.id.clone());
        drop(state);
        self.maybe_cleanup();
        result?;
        let set_cookie = match (cookie, id) {
            (CookieAction::Set { permanent, ttl }, Some(id)) => {
                Some(self.inner.session_cookie(&id, permanent, ttl))
            }
            (CookieAction::Delete, _) => Some(self.inner.deletion_cookie()),
            _ => None,
        };
        Ok(FinishOutcome {
            vary_cookie: accessed || set_cookie.is_some(),
            set_cookie,
        })
    }

    /// `SESSION_CLEANUP_N_REQUESTS`: on average every N requests, removes expired entries
    /// in the background (only stores without native expiry do any work).
    fn maybe_cleanup(&self) {
        let Some(n) = self.inner.config.cleanup_n_requests() else {
            return;
        };
        if fastrand::u64(0..n) != 0 {
            return;
        }
        let store = self.inner.store.clone();
        let run = async move {
            match store.cleanup().await {
                Ok(removed) => tracing::debug!(removed, "session cleanup"),
                Err(error) => tracing::warn!(%error, "session cleanup failed"),
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(run);
            }
            Err(_) => tracing::warn!("session cleanup skipped: no tokio runtime"),
        }
    }
}

/// The value of cookie `name` in one `Cookie` header, quotes removed.
fn find_cookie(header: &[u8], name: &[u8]) -> Option<String> {
    header.split(|b| *b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|b| *b == b'=')?;
        if pair[..eq].trim_ascii() != name {
            return None;
        }
        let value = pair[eq + 1..].trim_ascii();
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        std::str::from_utf8(value).ok().map(str::to_owned)
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ManagerInner {
    fn key(&self, id: &SessionId) -> String {
        let prefix = self.config.key_prefix();
        let mut key = String::with_capacity(prefix.len() + id.as_str().len());
        key.push_str(prefix);
        key.push_str(id.as_str());
        key
    }

    fn new_id(&self) -> Result<SessionId, SessionError> {
        SessionId::generate(self.config.id_length())
    }

    fn fresh(&self) -> Loaded {
        Loaded {
            data: SessionData::new_session(self.config.permanent()),
            stored: None,
        }
    }

    /// Loads the session named by the cookie on first use.
    pub(crate) async fn ensure_loaded(&self, state: &mut State) -> Result<(), SessionError> {
        if state.loaded.is_some() {
            return Ok(());
        }
        let loaded = match &state.cookie_id {
            None => self.fresh(),
            Some(id) => match self.load_entry(id).await? {
                None => self.fresh(),
                Some((entry, generation)) => {
                    match self.config.serialization_format().decode(&entry.value) {
                        Ok(data) if self.within_absolute_lifetime(&data) => Loaded {
                            data,
                            stored: Some(Stored {
                                id: id.clone(),
                                bytes: entry.value,
                                expires_at: entry.expires_at,
                                generation,
                            }),
                        },
                        Ok(_) => {
                            tracing::debug!(
                                "session past its absolute lifetime; starting a new one"
                            );
                            self.fresh()
                        }
                        Err(error) => {
                            tracing::warn!(%error, "stored session data is undecodable; starting a new session");
                            self.fresh()
                        }
                    }
                }
            },
        };
        state.loaded = Some(loaded);
        Ok(())
    }

    fn within_absolute_lifetime(&self, data: &SessionData) -> bool {
        match (
            self.config.absolute_lifetime(),
            data.get(CREATED_KEY).and_then(Value::as_u64),
        ) {
            (Some(limit), Some(created)) => unix_now() < created.saturating_add(limit.as_secs()),
            _ => true,
        }
    }

    /// The store TTL: the lifetime, cut short by the absolute lifetime if one is set.
    fn ttl_for(&self, data: &SessionData) -> Duration {
        let lifetime = self.config.lifetime();
        match (
            self.config.absolute_lifetime(),
            data.get(CREATED_KEY).and_then(Value::as_u64),
        ) {
            (Some(limit), Some(created)) => {
                let left = created
                    .saturating_add(limit.as_secs())
                    .saturating_sub(unix_now());
                lifetime.min(Duration::from_secs(left.max(1)))
            }
            _ => lifetime,
        }
    }

    /// Writes what the request changed, or extends the expiry of what it only read.
    ///
    /// On failure the request's pending changes are dropped and the session unloaded, so a
    /// later `finish` writes nothing the handler already reported as failed.
    pub(crate) async fn commit(&self, state: &mut State) -> Result<(), SessionError> {
        let result = self.commit_or_keep(state).await;
        if result.is_err() {
            state.changes.clear();
            state.modified = false;
            state.regenerate = false;
            state.loaded = None;
            state.cookie = CookieAction::None;
        }
        result
    }

    async fn commit_or_keep(&self, state: &mut State) -> Result<(), SessionError> {
        if state.loaded.is_none() {
            return Ok(());
        }
        if !state.modified {
            return self.refresh(state).await;
        }
        // Saves of one session inside this process take turns, so compare-and-set only
        // has to settle races with other processes: one retry at most per request here,
        // instead of every racing request retrying against every other.
        let locked_id = state
            .loaded
            .as_ref()
            .and_then(|l| l.stored.as_ref())
            .map(|s| s.id.clone());
        let stripe = locked_id
            .as_ref()
            .map(|id| &self.save_turns[self.stripe(id)]);
        let mut turn = match stripe {
            Some(stripe) => Some(stripe.take().await),
            None => None,
        };
        // A request of this process saved the session after we read it: our compare-and-set
        // would fail, so start from its result right away (saves a doomed round trip).
        let mut stale = state
            .loaded
            .as_ref()
            .and_then(|l| l.stored.as_ref())
            .is_some_and(|s| s.generation != self.generation(&s.id));
        let max_attempts = self.config.max_save_attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let State {
                loaded,
                changes,
                modified,
                regenerate,
                cookie,
                ..
            } = &mut *state;
            let loaded = loaded.as_mut().expect("checked above");
            if stale {
                stale = false;
                // Another request saved first: start from its result and re-apply ours.
                let id = loaded.stored.as_ref().map(|s| s.id.clone());
                let last_save = turn
                    .as_mut()
                    .and_then(|last| last.take_if(|last| Some(&last.id) == id.as_ref()));
                let fresh = match (id, last_save) {
                    // The request that just had the turn wrote it: no need to read it back.
                    (Some(id), Some(last)) => match self.decode_stored(&id, last) {
                        Some(fresh) => Some(fresh),
                        None => self.reload(&id).await?,
                    },
                    (Some(id), None) => self.reload(&id).await?,
                    (None, _) => None,
                };
                *loaded = match fresh {
                    Some(fresh) => fresh,
                    None => {
                        // The session ended meanwhile (logout, rotation, expiry): never
                        // revive it; this request's changes start a new one.
                        *regenerate = false;
                        self.fresh()
                    }
                };
                for change in changes.iter() {
                    change.apply(&mut loaded.data)?;
                }
            }
            if loaded.data.is_empty() {
                // Emptied (logout): delete unconditionally, so a racing save cannot keep
                // the user logged in; the browser gets a deletion cookie.
                if let Some(stored) = &loaded.stored {
                    self.store.delete(&self.key(&stored.id)).await?;
                    self.bump_generation(locked_id.as_ref());
                }
                if let Some(last) = turn.as_mut() {
                    **last = None;
                }
                loaded.stored = None;
                *cookie = CookieAction::Delete;
                break;
            }
            if self.config.absolute_lifetime().is_some() && !loaded.data.contains_key(CREATED_KEY) {
                loaded.data.insert(CREATED_KEY, Value::from(unix_now()));
            }
            let ttl = self.ttl_for(&loaded.data);
            let bytes = self
                .config
                .serialization_format()
                .encode(&loaded.data)
                .map_err(SessionError::Encode)?;
            let written = match &loaded.stored {
                None => {
                    let id = self.new_id()?;
                    // A fresh id never overwrites an existing session.
                    self.store
                        .create(&self.key(&id), &bytes, ttl)
                        .await?
                        .then_some(id)
                        .ok_or(Retry::Collision)
                }
                Some(stored) if *regenerate => {
                    let id = self.new_id()?;
                    self.store
                        .rotate(
                            &self.key(&stored.id),
                            &stored.bytes,
                            &self.key(&id),
                            &bytes,
                            ttl,
                        )
                        .await?
                        .then_some(id)
                        .ok_or(Retry::Conflict)
                }
                Some(stored) if stored.bytes == bytes => {
                    // The changes cancelled out: nothing to write.
                    *modified = false;
                    changes.clear();
                    return self.refresh(state).await;
                }
                Some(stored) => self
                    .store
                    .compare_and_set(&self.key(&stored.id), &stored.bytes, &bytes, ttl)
                    .await?
                    .then(|| stored.id.clone())
                    .ok_or(Retry::Conflict),
            };
            match written {
                Ok(id) => {
                    let permanent = loaded.data.is_permanent();
                    self.bump_generation(locked_id.as_ref());
                    let expires_at = Some(SystemTime::now() + ttl);
                    if let (Some(last), Some(stripe)) = (turn.as_mut(), stripe) {
                        // Not after a rotation: nobody waits for the new id yet.
                        let useful = stripe.has_waiters() && locked_id.as_ref() == Some(&id);
                        **last = useful.then(|| LastSave {
                            id: id.clone(),
                            bytes: bytes.clone(),
                            expires_at,
                        });
                    }
                    loaded.stored = Some(Stored {
                        generation: self.generation(&id),
                        id,
                        bytes,
                        expires_at,
                    });
                    *cookie = CookieAction::Set { permanent, ttl };
                    break;
                }
                Err(_) if attempt >= max_attempts => {
                    return Err(SessionError::Conflict { attempts: attempt });
                }
                Err(Retry::Collision) => continue,
                Err(Retry::Conflict) => {
                    // Another process saved first (this process's saves take turns):
                    // reload, re-apply, and give the other writer room.
                    stale = true;
                    backoff(attempt).await;
                }
            }
        }
        state.changes.clear();
        state.modified = false;
        state.regenerate = false;
        state.written = true;
        Ok(())
    }

    /// Records that a save under the lock of `id` completed.
    fn bump_generation(&self, id: Option<&SessionId>) {
        if let Some(id) = id {
            self.save_generations[self.stripe(id)].fetch_add(1, Ordering::SeqCst);
        }
    }

    fn generation(&self, id: &SessionId) -> u64 {
        self.save_generations[self.stripe(id)].load(Ordering::SeqCst)
    }

    fn stripe(&self, id: &SessionId) -> usize {
        // FNV-1a over the id: ids are random, so any cheap hash spreads them.
        let hash = id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        (hash % SAVE_LOCK_STRIPES as u64) as usize
    }

    /// The stored entry of `id` and the save generation of its stripe, read before the
    /// entry so that a save finishing in between is noticed.
    async fn load_entry(
        &self,
        id: &SessionId,
    ) -> Result<Option<(crate::store::StoredEntry, u64)>, SessionError> {
        let generation = self.generation(id);
        Ok(self
            .store
            .load(&self.key(id))
            .await?
            .map(|entry| (entry, generation)))
    }

    async fn reload(&self, id: &SessionId) -> Result<Option<Loaded>, SessionError> {
        let Some((entry, generation)) = self.load_entry(id).await? else {
            return Ok(None);
        };
        Ok(self
            .config
            .serialization_format()
            .decode(&entry.value)
            .ok()
            .map(|data| Loaded {
                data,
                stored: Some(Stored {
                    id: id.clone(),
                    bytes: entry.value,
                    expires_at: entry.expires_at,
                    generation,
                }),
            }))
    }

    /// The session as the previous holder of the save turn wrote it. Called with the turn
    /// held, so the stripe's generation is the one that save left.
    fn decode_stored(&self, id: &SessionId, last: LastSave) -> Option<Loaded> {
        let data = self
            .config
            .serialization_format()
            .decode(&last.bytes)
            .ok()?;
        Some(Loaded {
            data,
            stored: Some(Stored {
                id: id.clone(),
                bytes: last.bytes,
                expires_at: last.expires_at,
                generation: self.generation(id),
            }),
        })
    }

    /// An unchanged session: with refresh-each-request, extend its expiry (never rewrite
    /// it), skipped while more than `refresh_threshold` of the TTL remains.
    async fn refresh(&self, state: &mut State) -> Result<(), SessionError> {
        if !self.config.refresh_each_request() || state.written {
            return Ok(());
        }
        let Some(loaded) = state.loaded.as_mut() else {
            return Ok(());
        };
        let Some(stored) = loaded.stored.as_mut() else {
            return Ok(());
        };
        if loaded.data.is_empty() {
            return Ok(());
        }
        let ttl = self.ttl_for(&loaded.data);
        let now = SystemTime::now();
        // A threshold of 1.0 means every request, even where the store rounds expiries up
        // to whole seconds and so reports a little more than the TTL.
        let threshold = self.config.refresh_threshold();
        if let (Some(expires_at), true) = (stored.expires_at, threshold < 1.0) {
            let remaining = expires_at.duration_since(now).unwrap_or_default();
            if remaining > ttl.mul_f64(threshold) {
                return Ok(());
            }
        }
        if self.store.touch(&self.key(&stored.id), ttl).await? {
            stored.expires_at = Some(now + ttl);
            state.written = true;
            if loaded.data.is_permanent() {
                state.cookie = CookieAction::Set {
                    permanent: true,
                    ttl,
                };
            }
        }
        Ok(())
    }

    fn session_cookie(&self, id: &SessionId, permanent: bool, ttl: Duration) -> String {
        let signed;
        let value = match &self.signer {
            Some(signer) => {
                signed = signer.sign(id.as_str());
                signed.as_str()
            }
            None => id.as_str(),
        };
        let expires = permanent.then(|| {
            let last = UNIX_EPOCH + LAST_HTTP_DATE;
            // Whole seconds, as the browser sees them.
            let ttl = Duration::from_secs(ttl.as_secs());
            SystemTime::now()
                .checked_add(ttl)
                .map_or(last, |expires| expires.min(last))
        });
        self.cookie_template.render(value, expires)
    }

    fn deletion_cookie(&self) -> String {
        let config = &self.config;
        let mut cookie = Cookie::build((config.cookie_name().to_owned(), ""))
            .path(config.cookie_path().to_owned())
            .max_age(time::Duration::ZERO)
            .expires(time::OffsetDateTime::UNIX_EPOCH);
        if let Some(domain) = config.cookie_domain() {
            cookie = cookie.domain(domain.to_owned());
        }
        cookie.build().to_string()
    }
}

enum Retry {
    /// The fresh id was taken (practically never with 256-bit ids): try another.
    Collision,
    /// The stored session changed since it was loaded: reload and re-apply.
    Conflict,
}

/// Randomised, growing pause between conflicting attempts so that racing requests spread
/// out instead of colliding again.
async fn backoff(attempt: u32) {
    let ceiling_us = 50u64 << attempt.min(10);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=ceiling_us))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole cookie as the `cookie` crate renders it: the template must match it byte
    /// for byte.
    fn rendered_by_the_cookie_crate(
        config: &SessionConfig,
        value: &str,
        expires: Option<SystemTime>,
    ) -> String {
        let mut cookie = Cookie::build((config.cookie_name().to_owned(), value.to_owned()))
            .path(config.cookie_path().to_owned())
            .http_only(config.cookie_http_only())
            .secure(config.cookie_secure());
        if let Some(domain) = config.cookie_domain() {
            cookie = cookie.domain(domain.to_owned());
        }
        if let Some(same_site) = config.cookie_same_site() {
            cookie = cookie.same_site(match same_site {
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::None => cookie::SameSite::None,
            });
        }
        if config.cookie_partitioned() {
            cookie = cookie.partitioned(true);
        }
        if let Some(expires) = expires {
            cookie = cookie.expires(time::OffsetDateTime::from(expires));
        }
        cookie.build().to_string()
    }

    #[test]
    fn cookie_template_renders_what_the_cookie_crate_renders() {
        let configs = [
            SessionConfig::default(),
            SessionConfig::builder()
                .cookie_name("sid")
                .cookie_domain("example.com")
                .cookie_path("/app")
                .cookie_http_only(false)
                .cookie_secure(true)
                .cookie_same_site(SameSite::None)
                .cookie_partitioned(true)
                .build()
                .unwrap(),
            SessionConfig::builder()
                .cookie_same_site(SameSite::Strict)
                .build()
                .unwrap(),
            SessionConfig::builder()
                .cookie_same_site(SameSite::Lax)
                .build()
                .unwrap(),
        ];
        // Whole seconds, as session cookies carry them; one single-digit day.
        let times = [
            UNIX_EPOCH + Duration::from_secs(1_764_115_200),
            UNIX_EPOCH + Duration::from_secs(1_767_225_599),
        ];
        for config in &configs {
            let template = CookieTemplate::new(config);
            for value in ["abc-DEF_123", "id.signature"] {
                assert_eq!(
                    template.render(value, None),
                    rendered_by_the_cookie_crate(config, value, None)
                );
                for expires in times {
                    assert_eq!(
                        template.render(value, Some(expires)),
                        rendered_by_the_cookie_crate(config, value, Some(expires))
                    );
                }
            }
        }
    }

    #[test]
    fn lifetimes_past_year_9999_expire_the_cookie_then() {
        let config = SessionConfig::builder()
            .lifetime(Duration::from_secs(u64::MAX / 2))
            .build()
            .unwrap();
        let manager = SessionManager::new(crate::MemoryStore::new(), config);
        let id = SessionId::generate(32).unwrap();
        let cookie = manager
            .inner
            .session_cookie(&id, true, Duration::from_secs(u64::MAX / 2));
        assert!(
            cookie.ends_with("; Expires=Fri, 31 Dec 9999 23:59:59 GMT"),
            "{cookie}"
        );
    }

    #[test]
    fn cookie_header_parsing() {
        assert_eq!(
            find_cookie(b"a=1; session=abc; b=2", b"session").as_deref(),
            Some("abc")
        );
        assert_eq!(
            find_cookie(b"session=\"abc\"", b"session").as_deref(),
            Some("abc")
        );
        assert_eq!(find_cookie(b"sessionx=abc", b"session"), None);
        assert_eq!(find_cookie(b"garbage;;;===", b"session"), None);
        assert_eq!(
            find_cookie(b"session=first; session=second", b"session").as_deref(),
            Some("first")
        );
    }
}
