//! The engine of the request lifecycle: what a request's session holds ([`State`]), loading
//! it on first use, the change log, and the commit after the handler (compare-and-set with
//! re-applied changes and retries, create, rotate, delete) or the expiry refresh of an
//! unchanged session. Every rule of Flask-Session's lifecycle, and ours on top, is decided
//! here; cookies and headers are `cookie.rs`'s business.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::SessionConfig;
use crate::data::{SessionData, Value};
use crate::error::SessionError;
use crate::id::SessionId;
use crate::save_turns::{LastSave, SaveTurns};
use crate::store::{SessionStore, StoredEntry};

/// Key under which the creation time (Unix seconds) is kept when an absolute lifetime is
/// configured. Absent otherwise.
pub const CREATED_KEY: &str = "_session_created";

/// A request's change to the session, recorded so it can be re-applied on fresh data when
/// another request changed the session in between (see `docs/architecture.md`).
#[derive(Clone)]
pub(crate) enum Change {
    Insert(String, Value),
    Remove(String),
    Clear,
    Update(String, UpdateFn),
    Permanent(bool),
}

pub(crate) type UpdateFn = Arc<dyn Fn(Option<&Value>) -> Result<Value, SessionError> + Send + Sync>;

impl Change {
    pub(crate) fn apply(&self, data: &mut SessionData) -> Result<(), SessionError> {
        match self {
            Change::Insert(key, value) => {
                data.insert(key.clone(), value.clone());
            }
            Change::Remove(key) => {
                data.remove(key);
            }
            Change::Clear => data.clear(),
            Change::Update(key, f) => {
                let value = f(data.get(key))?;
                data.insert(key.clone(), value);
            }
            Change::Permanent(permanent) => data.set_permanent(*permanent),
        }
        Ok(())
    }
}

/// What the store holds for this session, as far as this request knows.
pub(crate) struct Stored {
    pub(crate) id: SessionId,
    pub(crate) bytes: Vec<u8>,
    pub(crate) expires_at: Option<SystemTime>,
    /// The in-process save generation of this id's stripe when the bytes were read: if it
    /// moved, another request of this process saved meanwhile (see [`Engine::commit`]).
    pub(crate) generation: u64,
}

pub(crate) struct Loaded {
    pub(crate) data: SessionData,
    /// `None` for a session that is not in the store (new, or its entry vanished).
    pub(crate) stored: Option<Stored>,
}

/// The cookie the response must carry.
#[derive(Default, Clone, Copy)]
pub(crate) enum CookieAction {
    #[default]
    None,
    Set {
        permanent: bool,
        ttl: Duration,
    },
    Delete,
}

/// The session of one request, as the engine sees it.
pub(crate) struct State {
    pub(crate) cookie_id: Option<SessionId>,
    pub(crate) loaded: Option<Loaded>,
    pub(crate) changes: Vec<Change>,
    pub(crate) accessed: bool,
    pub(crate) modified: bool,
    pub(crate) regenerate: bool,
    pub(crate) cookie: CookieAction,
    /// Data or expiry was written during this request (no second refresh needed).
    pub(crate) written: bool,
}

impl State {
    pub(crate) fn new(cookie_id: Option<SessionId>) -> State {
        State {
            cookie_id,
            loaded: None,
            changes: Vec::new(),
            accessed: false,
            modified: false,
            regenerate: false,
            cookie: CookieAction::None,
            written: false,
        }
    }

    /// The loaded data; only called after [`Engine::ensure_loaded`] succeeded.
    pub(crate) fn data(&mut self) -> &mut SessionData {
        &mut self
            .loaded
            .as_mut()
            .expect("session data is loaded before use")
            .data
    }

    /// Applies `change` to the loaded data and records it for the commit.
    pub(crate) fn record(&mut self, change: Change) -> Result<(), SessionError> {
        change.apply(self.data())?;
        self.changes.push(change);
        self.modified = true;
        Ok(())
    }

    /// The id of the stored session, once there is one.
    pub(crate) fn stored_id(&self) -> Option<&SessionId> {
        self.loaded
            .as_ref()
            .and_then(|loaded| loaded.stored.as_ref())
            .map(|stored| &stored.id)
    }
}

/// Loads, commits and refreshes sessions for one store and configuration.
pub(crate) struct Engine {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) config: SessionConfig,
    turns: SaveTurns,
}

enum Retry {
    /// The fresh id was taken (practically never with 256-bit ids): try another.
    Collision,
    /// The stored session changed since it was loaded: reload and re-apply.
    Conflict,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Engine {
    pub(crate) fn new(store: Arc<dyn SessionStore>, config: SessionConfig) -> Engine {
        Engine {
            store,
            config,
            turns: SaveTurns::new(),
        }
    }

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
        let locked_id = state.stored_id().cloned();
        let turn_of_id = locked_id.as_ref().map(|id| self.turns.turn(id));
        let mut turn = match turn_of_id {
            Some(turn) => Some(turn.take().await),
            None => None,
        };
        // A request of this process saved the session after we read it: our compare-and-set
        // would fail, so start from its result right away (saves a doomed round trip).
        let mut stale = state
            .loaded
            .as_ref()
            .and_then(|l| l.stored.as_ref())
            .is_some_and(|s| s.generation != self.turns.generation(&s.id));
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
                    self.turns.bump(locked_id.as_ref());
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
                    self.turns.bump(locked_id.as_ref());
                    let expires_at = Some(SystemTime::now() + ttl);
                    if let (Some(last), Some(turn_of_id)) = (turn.as_mut(), turn_of_id) {
                        // Not after a rotation: nobody waits for the new id yet.
                        let useful = turn_of_id.has_waiters() && locked_id.as_ref() == Some(&id);
                        **last = useful.then(|| LastSave {
                            id: id.clone(),
                            bytes: bytes.clone(),
                            expires_at,
                        });
                    }
                    loaded.stored = Some(Stored {
                        generation: self.turns.generation(&id),
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

    /// The stored entry of `id` and the save generation of its stripe, read before the
    /// entry so that a save finishing in between is noticed.
    async fn load_entry(&self, id: &SessionId) -> Result<Option<(StoredEntry, u64)>, SessionError> {
        let generation = self.turns.generation(id);
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
                generation: self.turns.generation(id),
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

    /// `SESSION_CLEANUP_N_REQUESTS`: on average every N requests, removes expired entries
    /// in the background (only stores without native expiry do any work).
    pub(crate) fn maybe_cleanup(&self) {
        let Some(n) = self.config.cleanup_n_requests() else {
            return;
        };
        if fastrand::u64(0..n) != 0 {
            return;
        }
        let store = self.store.clone();
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

/// Randomised, growing pause between conflicting attempts so that racing requests spread
/// out instead of colliding again.
async fn backoff(attempt: u32) {
    let ceiling_us = 50u64 << attempt.min(10);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=ceiling_us))).await;
}
