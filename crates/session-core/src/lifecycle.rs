//! The engine of the request lifecycle: what a request's session holds ([`State`]), loading
//! it on first use (from the cache tier when it can), the change log, and the commit after
//! the handler (compare-and-set with re-applied changes and retries, grouped with the
//! concurrent saves of the same session; create, rotate, delete) or the expiry refresh of
//! an unchanged session. Every rule of Flask-Session's lifecycle, and ours on top, is
//! decided here; cookies and headers are `cookie.rs`'s business.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use compact_str::CompactString;

use crate::cache::{Cache, CacheSettings, Entry};
use crate::config::{SessionConfig, MAX_LIFETIME};
use crate::data::{SessionData, Value};
use crate::error::{SessionError, StoreError};
use crate::group_commit::{Joined, Leading, Member, Outcome, Slots};
use crate::id::SessionId;
use crate::store::SessionStore;

/// Key under which the creation time (Unix seconds) is kept when an absolute lifetime is
/// configured. Absent otherwise.
pub const CREATED_KEY: &str = "_session_created";

/// Key under which a session's own lifetime (seconds) is kept when
/// [`Session::set_lifetime`](crate::Session::set_lifetime) overrode
/// `PERMANENT_SESSION_LIFETIME` for it ("remember me"). Absent otherwise.
pub const LIFETIME_KEY: &str = "_session_lifetime";

/// A request's change to the session, recorded so it can be re-applied on fresh data when
/// another request changed the session in between (see `docs/concepts/no-lost-updates.md`).
#[derive(Clone)]
pub(crate) enum Change {
    Insert(CompactString, Value),
    Remove(CompactString),
    Clear,
    Update(CompactString, UpdateFn),
    Permanent(bool),
}

pub(crate) type UpdateFn = Arc<dyn Fn(Option<&Value>) -> Result<Value, SessionError> + Send + Sync>;

impl Change {
    pub(crate) fn apply(&self, data: &mut SessionData) -> Result<(), SessionError> {
        match self {
            Change::Insert(key, value) => {
                data.insert_key(key, value.clone());
            }
            Change::Remove(key) => {
                data.remove(key);
            }
            Change::Clear => data.clear(),
            Change::Update(key, f) => {
                let value = f(data.get(key))?;
                data.insert_key(key, value);
            }
            Change::Permanent(permanent) => data.set_permanent(*permanent),
        }
        Ok(())
    }
}

/// What the store holds for this session, as far as this request knows.
#[derive(Clone)]
pub(crate) struct Stored {
    pub(crate) id: SessionId,
    /// The stored bytes (the expected value of the next compare-and-set), their decoded
    /// form and expiry; shared with the cache.
    pub(crate) entry: Arc<Entry>,
    /// The in-process save generation of this id's stripe when the entry was read: if it
    /// moved, another request of this process saved meanwhile.
    pub(crate) generation: u64,
}

pub(crate) struct Loaded {
    /// The request's view: the stored data until the request changes it (copied then).
    pub(crate) data: Arc<SessionData>,
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

/// What core did with a request's session, and why: one debug event per finished request
/// says it (`docs/observability.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    /// `nothing`, `touch`, `create`, `compare-and-set`, `rotate` or `delete`.
    pub(crate) action: &'static str,
    pub(crate) reason: &'static str,
    /// Store writes it took (more than one after conflicts or id collisions).
    pub(crate) attempts: u32,
    /// Bytes written.
    pub(crate) bytes: usize,
}

impl Decision {
    pub(crate) const UNUSED: Decision = Decision::nothing("the handler never used the session");

    pub(crate) const fn nothing(reason: &'static str) -> Decision {
        Decision {
            action: "nothing",
            reason,
            attempts: 0,
            bytes: 0,
        }
    }
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
    /// What the last commit did.
    pub(crate) decision: Decision,
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
            decision: Decision::UNUSED,
        }
    }

    /// The loaded data; only called after [`Engine::ensure_loaded`] succeeded.
    pub(crate) fn data(&self) -> &Arc<SessionData> {
        &self
            .loaded
            .as_ref()
            .expect("session data is loaded before use")
            .data
    }

    /// Applies `change` to the loaded data and records it for the commit.
    pub(crate) fn record(&mut self, change: Change) -> Result<(), SessionError> {
        let loaded = self
            .loaded
            .as_mut()
            .expect("session data is loaded before use");
        change.apply(Arc::make_mut(&mut loaded.data))?;
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

    /// A commit finished: nothing is pending any more.
    fn committed(&mut self) {
        self.changes.clear();
        self.modified = false;
        self.regenerate = false;
        self.written = true;
    }
}

/// Loads, commits and refreshes sessions for one store and configuration.
pub(crate) struct Engine {
    /// Called through [`store`](Self::store), never on the `Arc` itself.
    store: Arc<dyn SessionStore>,
    pub(crate) config: SessionConfig,
    cache: Option<Arc<Cache>>,
    slots: Slots,
    /// Whether the store keeps an owner index (then commits keep it in step).
    pub(crate) indexes_owners: bool,
    cleanup: Arc<CleanupState>,
    unrefreshed: Unrefreshed,
}

/// An owner-index refresh a write leaves to do once the session's save slot is released:
/// it never fails the write, and must not hold up the saves queued behind it (an index
/// that lives on a lost Redis Cluster master would hold them until their deadline). A
/// refresh may land after a later write of the session; an entry it restores for a
/// session that has left its owner is pruned when listed. Removals stay inside the slot:
/// one landing late could drop the entry of a session that got the owner back.
pub(crate) struct IndexRefresh {
    owner: String,
    key: String,
    data: Arc<SessionData>,
    ttl: Duration,
}

/// The keys whose index refresh failed: their next write refreshes again, although the
/// write that scheduled the refresh recorded it as done. Bounded: past
/// [`MAX_UNREFRESHED`] keys a failure is not recorded, and that entry is refreshed one
/// `LAST_SEEN_RESOLUTION` later, which its expiry's margin of one resolution covers.
#[derive(Default)]
struct Unrefreshed {
    any: std::sync::atomic::AtomicBool,
    keys: std::sync::Mutex<std::collections::HashSet<String>>,
}

const MAX_UNREFRESHED: usize = 10_000;

impl Unrefreshed {
    fn insert(&self, key: String) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() < MAX_UNREFRESHED {
            keys.insert(key);
            self.any.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Whether `key`'s last refresh failed; forgets it (the caller refreshes now).
    fn take(&self, key: &str) -> bool {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let taken = keys.remove(key);
        if keys.is_empty() {
            self.any.store(false, std::sync::atomic::Ordering::Release);
        }
        taken
    }
}

/// `SESSION_CLEANUP_N_REQUESTS`'s bookkeeping: one cleanup at a time, and not before the
/// minimum interval since the last one started.
#[derive(Default)]
struct CleanupState {
    running: std::sync::atomic::AtomicBool,
    last_started: std::sync::Mutex<Option<std::time::Instant>>,
}

use crate::owner::unix_now;

fn save_timeout_message(timeout: Duration) -> String {
    format!("the session's save did not finish within {timeout:?} (SESSION_STORE_TIMEOUT)")
}

tokio::task_local! {
    /// When the save of the request running on this task must end (see [`Engine::commit`]):
    /// every store call it makes is cut off then at the latest.
    static SAVE_DEADLINE: tokio::time::Instant;
}

/// When an entry written now with `ttl` expires (never, past the clock's range).
/// The `sessions_store_duration_seconds` histogram of `operation`. `metrics` builds a
/// static key only for literal labels; for any other label value it allocates a key per
/// event, installed recorder or not (one allocation per store call, under callgrind).
fn store_duration(operation: &'static str) -> metrics::Histogram {
    macro_rules! by_operation {
        ($($name:literal),*) => {
            match operation {
                $($name => metrics::histogram!("sessions_store_duration_seconds", "operation" => $name),)*
                other => metrics::histogram!("sessions_store_duration_seconds", "operation" => other),
            }
        };
    }
    by_operation!(
        "load",
        "create",
        "compare_and_set",
        "rotate",
        "touch",
        "delete",
        "compare_and_delete",
        "index_put",
        "index_remove",
        "index_list"
    )
}

fn expiry(ttl: Duration) -> Option<SystemTime> {
    SystemTime::now().checked_add(ttl)
}

impl Engine {
    pub(crate) fn new(store: Arc<dyn SessionStore>, config: SessionConfig) -> Engine {
        let cache = match config.cache() {
            Some(false) => None,
            _ => Cache::new(CacheSettings {
                max_entries: config.cache_max_entries(),
                max_bytes: config.cache_max_bytes(),
                feed: store.invalidations(),
                max_staleness: config.cache_max_staleness(),
            }),
        };
        Engine {
            indexes_owners: store.owner_index(),
            store,
            config,
            cache,
            slots: Slots::new(),
            cleanup: Arc::default(),
            unrefreshed: Unrefreshed::default(),
        }
    }

    /// The store, for calls. On the `Arc` itself, method resolution would pick
    /// `impl SessionStore for Arc<S>`, which boxes a second future around every call.
    pub(crate) fn store(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    /// The store, shared (for [`SessionManager::store`](crate::SessionManager::store)).
    pub(crate) fn shared_store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// One store call, cut off after `SESSION_STORE_TIMEOUT`, or sooner when the save it
    /// belongs to must end sooner: a store that does not answer is unavailable (503), and
    /// whatever the request holds (its turn to save) is released.
    pub(crate) async fn call<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let timeout = self.config.store_timeout();
        let started = tokio::time::Instant::now();
        let call_deadline = started + timeout;
        let save_deadline = SAVE_DEADLINE.try_with(|deadline| *deadline).ok();
        let deadline = save_deadline.map_or(call_deadline, |save| save.min(call_deadline));
        let result = match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result,
            Err(_) => {
                let by_save = deadline < call_deadline;
                let counted = if by_save { "save" } else { operation };
                metrics::counter!("sessions_store_timeouts_total", "operation" => counted)
                    .increment(1);
                Err(StoreError::unavailable(if by_save {
                    save_timeout_message(timeout)
                } else {
                    format!(
                        "the session store did not answer within {timeout:?} (SESSION_STORE_TIMEOUT)"
                    )
                }))
            }
        };
        store_duration(operation).record(started.elapsed());
        if let Err(error) = &result {
            let kind = match error {
                StoreError::Unavailable(_) => "unavailable",
                StoreError::Backend(_) => "backend",
                StoreError::TooLarge { .. } => "too_large",
                StoreError::InvalidKey(_) => "invalid_key",
                StoreError::Unsupported(_) => "unsupported",
            };
            metrics::counter!("sessions_store_errors_total", "operation" => operation, "kind" => kind)
                .increment(1);
        }
        result
    }

    pub(crate) fn slots(&self) -> &Slots {
        &self.slots
    }

    pub(crate) fn caches(&self) -> bool {
        self.cache.is_some()
    }

    /// Drops a revoked key from the cache and keeps reads of it in flight from filling it.
    pub(crate) fn revoke_cached(&self, key: &str) {
        if let Some(cache) = &self.cache {
            cache.revoke(key);
        }
    }

    /// The owner whose index a write of `data` must keep: its owner while this store keeps
    /// an index.
    fn indexed_owner<'a>(&self, data: &'a SessionData) -> Option<Cow<'a, str>> {
        if self.indexes_owners {
            self.owner_of(data)
        } else {
            None
        }
    }

    /// The store key of session `id`: the prefix and the id, or with `SESSION_HASH_IDS`
    /// the base64url SHA-256 of the id, so that the store never holds a cookie value.
    pub(crate) fn key(&self, id: &SessionId) -> String {
        self.config.store_key(id)
    }

    fn new_id(&self) -> Result<SessionId, SessionError> {
        SessionId::generate(self.config.id_length())
    }

    fn fresh(&self) -> Loaded {
        Loaded {
            data: Arc::new(SessionData::new_session(self.config.permanent())),
            stored: None,
        }
    }

    /// Loads the session named by the cookie on first use.
    pub(crate) async fn ensure_loaded(&self, state: &mut State) -> Result<(), SessionError> {
        if state.loaded.is_some() {
            return Ok(());
        }
        let stored = match &state.cookie_id {
            None => None,
            Some(id) => self.load(id).await?,
        };
        state.loaded = Some(match stored {
            Some(stored) => Loaded {
                data: stored.entry.data.clone(),
                stored: Some(stored),
            },
            None => self.fresh(),
        });
        Ok(())
    }

    /// The stored session `id`: from the cache when it holds it, else from the store.
    async fn load(&self, id: &SessionId) -> Result<Option<Stored>, SessionError> {
        let generation = self.slots.generation(id);
        let key = self.key(id);
        if let Some(entry) = self.cache.as_ref().and_then(|cache| cache.get(&key)) {
            metrics::counter!("sessions_loads_total", "source" => "cache").increment(1);
            return Ok(Some(Stored {
                id: id.clone(),
                entry,
                generation,
            }));
        }
        self.read_store(id, &key, generation).await
    }

    /// The stored session `id`, read from the store whatever the cache holds.
    async fn load_from_store(&self, id: &SessionId) -> Result<Option<Stored>, SessionError> {
        let generation = self.slots.generation(id);
        self.read_store(id, &self.key(id), generation).await
    }

    async fn read_store(
        &self,
        id: &SessionId,
        key: &str,
        generation: u64,
    ) -> Result<Option<Stored>, SessionError> {
        let ticket = self.cache.as_ref().and_then(|cache| cache.ticket(key));
        metrics::counter!("sessions_loads_total", "source" => "store").increment(1);
        let loaded = match self.call("load", self.store().load(key)).await {
            // A key this store cannot hold (say, an id longer than its column) names no
            // session: a fresh one, as for any unknown id.
            Err(StoreError::InvalidKey(_)) => None,
            other => other?,
        };
        let entry = loaded.and_then(|stored| self.decode(stored.value, stored.expires_at));
        if let Some(cache) = &self.cache {
            cache.fill(key, ticket, entry.clone());
        }
        Ok(entry.map(|entry| Stored {
            id: id.clone(),
            entry,
            generation,
        }))
    }

    /// Stored bytes as a session: `None` (a new session) when they cannot be decoded (with
    /// a warning) or the session is past its absolute lifetime.
    pub(crate) fn decode(
        &self,
        bytes: Vec<u8>,
        expires_at: Option<SystemTime>,
    ) -> Option<Arc<Entry>> {
        match self.config.serialization_format().decode(&bytes) {
            Ok(data) if self.within_absolute_lifetime(&data) => {
                Some(Entry::new(bytes, Arc::new(data), expires_at))
            }
            Ok(_) => {
                tracing::debug!("session past its absolute lifetime; starting a new one");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "stored session data is undecodable; starting a new session");
                None
            }
        }
    }

    fn within_absolute_lifetime(&self, data: &SessionData) -> bool {
        // The creation time is looked up only when it matters.
        let Some(limit) = self.config.absolute_lifetime() else {
            return true;
        };
        match data.get(CREATED_KEY).and_then(Value::as_u64) {
            Some(created) => unix_now() < created.saturating_add(limit.as_secs()),
            None => true,
        }
    }

    /// The store TTL: the session's own lifetime if it has one, else the configured one,
    /// cut short by the absolute lifetime if one is set.
    fn ttl_for(&self, data: &SessionData) -> Duration {
        let lifetime = data
            .get(LIFETIME_KEY)
            .and_then(Value::as_u64)
            .map(|seconds| Duration::from_secs(seconds.clamp(1, MAX_LIFETIME.as_secs())))
            .unwrap_or_else(|| self.config.lifetime());
        // The creation time is looked up only when it matters (every read asks for the TTL).
        let Some(limit) = self.config.absolute_lifetime() else {
            return lifetime;
        };
        match data.get(CREATED_KEY).and_then(Value::as_u64) {
            Some(created) => {
                let left = created
                    .saturating_add(limit.as_secs())
                    .saturating_sub(unix_now());
                lifetime.min(Duration::from_secs(left.max(1)))
            }
            None => lifetime,
        }
    }

    /// What is written for `data`: its bytes and TTL; the creation time is added first when
    /// an absolute lifetime is configured.
    fn encode(&self, data: &mut Arc<SessionData>) -> Result<(Vec<u8>, Duration), SessionError> {
        // Owned sessions keep their creation time too: the owner index lists it.
        let wants_created =
            self.config.absolute_lifetime().is_some() || self.indexed_owner(data).is_some();
        if wants_created && !data.contains_key(CREATED_KEY) {
            Arc::make_mut(data).insert(CREATED_KEY, Value::from(unix_now()));
        }
        let bytes = self
            .config
            .serialization_format()
            .encode(data)
            .map_err(SessionError::Encode)?;
        Ok((bytes, self.ttl_for(data)))
    }

    /// Finishes a commit that needs no store call: a session never loaded, or unchanged
    /// with no refresh due (the common read). True when done; then the commit's outcome is
    /// `Ok`, `state.decision` says why nothing was written, and no deadline or task-local
    /// was set up for it.
    pub(crate) fn commit_without_io(&self, state: &mut State) -> bool {
        state.loaded.is_none() || (!state.modified && self.touch_due(state).is_none())
    }

    /// Writes what the request changed, or extends the expiry of what it only read.
    ///
    /// On failure the request's pending changes are dropped and the session unloaded, so a
    /// later `finish` writes nothing the handler already reported as failed.
    ///
    /// The save as a whole (its turn behind other saves of the session, the writes, the
    /// retries after a conflict) ends within `SESSION_STORE_TIMEOUT`, so that a slow store
    /// cannot stack several store calls' worth of waiting onto one response. Every store
    /// call of the save is cut off at that deadline: a required one fails the save (503),
    /// while index upkeep after a write that succeeded is only skipped, with a warning.
    pub(crate) async fn commit(self: &Arc<Self>, state: &mut State) -> Result<(), SessionError> {
        if self.commit_without_io(state) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.config.store_timeout();
        let result = SAVE_DEADLINE
            .scope(deadline, self.commit_or_keep(state, deadline))
            .await;
        if result.is_err() {
            state.changes.clear();
            state.modified = false;
            state.regenerate = false;
            state.loaded = None;
            state.cookie = CookieAction::None;
        }
        result
    }

    async fn commit_or_keep(
        self: &Arc<Self>,
        state: &mut State,
        deadline: tokio::time::Instant,
    ) -> Result<(), SessionError> {
        let Some(loaded) = &state.loaded else {
            return Ok(());
        };
        if !state.modified {
            return self.refresh(state).await;
        }
        let Some(stored) = loaded.stored.clone() else {
            return self.create(state, "a new session").await;
        };
        let id = stored.id.clone();
        let member = Member {
            changes: std::mem::take(&mut state.changes),
            regenerate: state.regenerate,
            own: Some((stored, loaded.data.clone())),
            outcome: None,
        };
        let member = match self.slots.join(&id, member) {
            Joined::Lead(member) => {
                let mut group = [member];
                let mut refreshes = Vec::new();
                {
                    let _leading = Leading {
                        engine: self,
                        id: &id,
                    };
                    self.write_group(&id, &mut group, &mut refreshes).await;
                }
                // After the slot is released, within this save's deadline.
                self.run_refreshes(refreshes).await;
                let [member] = group;
                member
            }
            // Dropping the receiver at the deadline takes this member out of the queue
            // (see `group_commit::drain`) unless its group is being written.
            Joined::Wait(written) => match tokio::time::timeout_at(deadline, written).await {
                Ok(Ok(member)) => member,
                Ok(Err(_)) => {
                    return Err(SessionError::Store(StoreError::unavailable(
                        "the save of this session was interrupted (runtime shutting down)",
                    )))
                }
                Err(_) => {
                    metrics::counter!("sessions_store_timeouts_total", "operation" => "save")
                        .increment(1);
                    let timeout = self.config.store_timeout();
                    return Err(SessionError::Store(StoreError::unavailable(
                        save_timeout_message(timeout),
                    )));
                }
            },
        };
        let outcome = member.outcome.unwrap_or_else(|| {
            Outcome::Failed(SessionError::Store(StoreError::backend(
                "the session's save left no outcome",
            )))
        });
        match outcome {
            Outcome::Written {
                stored,
                view,
                ttl,
                rotated,
                attempts,
            } => {
                state.decision = Decision {
                    action: if rotated { "rotate" } else { "compare-and-set" },
                    reason: if rotated {
                        "regenerate() gave the session a new id"
                    } else {
                        "the handler changed the session"
                    },
                    attempts,
                    bytes: stored.entry.bytes.len(),
                };
                let permanent = stored.entry.data.is_permanent();
                state.loaded = Some(Loaded {
                    data: view,
                    stored: Some(stored),
                });
                state.cookie = CookieAction::Set { permanent, ttl };
                state.committed();
                Ok(())
            }
            Outcome::Unchanged(stored) => {
                if let Some(loaded) = state.loaded.as_mut() {
                    loaded.stored = Some(stored);
                }
                state.changes.clear();
                state.modified = false;
                state.regenerate = false;
                self.refresh(state).await?;
                if state.decision.action == "nothing" {
                    state.decision = Decision::nothing("the changes cancelled out");
                }
                Ok(())
            }
            Outcome::Deleted => {
                if let Some(loaded) = state.loaded.as_mut() {
                    loaded.stored = None;
                }
                state.decision = Decision {
                    action: "delete",
                    reason: "the handler emptied the session (logout)",
                    attempts: 1,
                    bytes: 0,
                };
                state.cookie = CookieAction::Delete;
                state.committed();
                Ok(())
            }
            Outcome::Gone(changes) => {
                // The session ended meanwhile (logout, rotation, expiry): never revive it;
                // this request's changes start a new one.
                let mut loaded = self.fresh();
                for change in &changes {
                    change.apply(Arc::make_mut(&mut loaded.data))?;
                }
                state.loaded = Some(loaded);
                state.regenerate = false;
                self.create(
                    state,
                    "the session ended meanwhile; the changes start a new one",
                )
                .await
            }
            Outcome::Failed(error) => Err(error),
        }
    }

    /// A session that is not in the store: written under a fresh id, which never overwrites
    /// an existing session. An empty one is not written; the browser's cookie is deleted.
    async fn create(&self, state: &mut State, reason: &'static str) -> Result<(), SessionError> {
        let Some(loaded) = state.loaded.as_mut() else {
            return Ok(());
        };
        if loaded.data.is_empty() {
            state.cookie = CookieAction::Delete;
            state.decision = Decision::nothing("the session holds nothing to store");
            state.committed();
            return Ok(());
        }
        let (bytes, ttl) = self.encode(&mut loaded.data)?;
        let owner = self.indexed_owner(&loaded.data);
        let max_attempts = self.config.max_save_attempts();
        let mut attempt = 0;
        let (id, key, ticket) = loop {
            attempt += 1;
            let id = self.new_id()?;
            let key = self.key(&id);
            // Indexed before it is written: an owned session is never in the store without
            // its index entry, so a revocation cannot miss it.
            if let Some(owner) = &owner {
                self.index_put(owner, &key, &loaded.data, ttl).await?;
            }
            let ticket = self.cache.as_ref().and_then(|cache| cache.ticket(&key));
            if self
                .call("create", self.store().create(&key, &bytes, ttl))
                .await?
            {
                metrics::counter!("sessions_saves_total", "action" => "create").increment(1);
                break (id, key, ticket);
            }
            // The fresh id was taken (practically never with 256-bit ids): try another.
            if attempt >= max_attempts {
                return Err(SessionError::Conflict { attempts: attempt });
            }
        };
        state.decision = Decision {
            action: "create",
            reason,
            attempts: attempt,
            bytes: bytes.len(),
        };
        // An owned session was indexed just before the create.
        let indexed_at = if owner.is_some() {
            crate::owner::unix_now()
        } else {
            0
        };
        let entry = Entry::indexed(bytes, loaded.data.clone(), expiry(ttl), indexed_at);
        if let Some(cache) = &self.cache {
            cache.fill(&key, ticket, Some(entry.clone()));
        }
        let permanent = loaded.data.is_permanent();
        loaded.stored = Some(Stored {
            generation: self.slots.generation(&id),
            id,
            entry,
        });
        state.cookie = CookieAction::Set { permanent, ttl };
        state.committed();
        Ok(())
    }

    /// Writes one group of members' changes to session `id` with one store write, and sets
    /// each member's outcome. A group holds at most one rotation, alone. The owner-index
    /// refresh the write calls for goes to `refreshes`, for
    /// [`run_refreshes`](Self::run_refreshes) once the slot is released.
    pub(crate) async fn write_group(
        &self,
        id: &SessionId,
        members: &mut [Member],
        refreshes: &mut Vec<IndexRefresh>,
    ) {
        let key = self.key(id);
        let max_attempts = self.config.max_save_attempts();
        let mut base = self.base_for(id, &key, members).await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let base_stored = match base {
                Err(error) => return fail(members, error),
                Ok(None) => {
                    // The session ended: every member starts a new one.
                    self.slots.set_last(id, None);
                    for member in members.iter_mut().filter(|m| m.outcome.is_none()) {
                        member.outcome = Some(Outcome::Gone(std::mem::take(&mut member.changes)));
                    }
                    return;
                }
                Ok(Some(stored)) => stored,
            };
            let applied = apply_group(&base_stored, members);
            if let Some(emptied) = applied.emptied {
                let owner = self.indexed_owner(&base_stored.entry.data);
                return self
                    .delete_group(id, &key, owner.as_deref(), members, emptied)
                    .await;
            }
            let mut data = applied.data;
            let (bytes, ttl) = match self.encode(&mut data) {
                Ok(written) => written,
                Err(error) => return fail(members, error),
            };
            let regenerate = members.iter().any(|m| m.regenerate && m.outcome.is_none());
            if !regenerate && bytes == base_stored.entry.bytes {
                for member in members.iter_mut().filter(|m| m.outcome.is_none()) {
                    member.outcome = Some(Outcome::Unchanged(base_stored.clone()));
                }
                return;
            }
            let new_id = if regenerate {
                match self.new_id() {
                    Ok(new_id) => new_id,
                    Err(error) => return fail(members, error),
                }
            } else {
                id.clone()
            };
            // The same key unless the id rotates: computed once per write.
            let rotated_key = regenerate.then(|| self.key(&new_id));
            let new_key = rotated_key.as_deref().unwrap_or(&key);
            let old_owner = self.indexed_owner(&base_stored.entry.data);
            let new_owner = self.indexed_owner(&data);
            // A new owner or a new key is indexed before the write (see `create`).
            if let Some(owner) = &new_owner {
                if regenerate || old_owner.as_ref() != Some(owner) {
                    if let Err(error) = self.index_put(owner, new_key, &data, ttl).await {
                        return fail(members, SessionError::from(error));
                    }
                }
            }
            let ticket = self.cache.as_ref().and_then(|cache| cache.ticket(new_key));
            let expected = &base_stored.entry.bytes;
            let written = if regenerate {
                self.call(
                    "rotate",
                    self.store().rotate(&key, expected, new_key, &bytes, ttl),
                )
                .await
            } else {
                self.call(
                    "compare_and_set",
                    self.store().compare_and_set(&key, expected, &bytes, ttl),
                )
                .await
            };
            match written {
                Ok(true) => {
                    // Literal labels: a static key, no allocation (see `store_duration`).
                    if regenerate {
                        metrics::counter!("sessions_saves_total", "action" => "rotate")
                            .increment(1);
                    } else {
                        metrics::counter!("sessions_saves_total", "action" => "compare_and_set")
                            .increment(1);
                    }
                    let grouped = members.iter().filter(|m| m.outcome.is_none()).count();
                    if grouped > 1 {
                        metrics::counter!("sessions_grouped_saves_total")
                            .increment(grouped as u64 - 1);
                    }
                    // The old owner's entry goes after the write; an unchanged owner's
                    // entry gets the new times once per LAST_SEEN_RESOLUTION (recorded as
                    // done now; a failure is retried by the next write).
                    let now = crate::owner::unix_now();
                    let mut indexed_at = if new_owner.is_some() { now } else { 0 };
                    if let Some(owner) = &old_owner {
                        if regenerate || new_owner.as_ref() != Some(owner) {
                            self.index_remove_after(owner, &key).await;
                        } else if Engine::index_due(base_stored.entry.indexed_at, now)
                            || self.unrefreshed.take(&key)
                        {
                            refreshes.push(IndexRefresh {
                                owner: owner.to_string(),
                                key: key.clone(),
                                data: data.clone(),
                                ttl,
                            });
                        } else {
                            indexed_at = base_stored.entry.indexed_at;
                        }
                    }
                    let entry = Entry::indexed(bytes, data, expiry(ttl), indexed_at);
                    if let Some(cache) = &self.cache {
                        if regenerate {
                            cache.forget(&key);
                        }
                        cache.fill(new_key, ticket, Some(entry.clone()));
                    }
                    self.slots.bump(id);
                    let stored = Stored {
                        generation: self.slots.generation(&new_id),
                        id: new_id,
                        entry,
                    };
                    // After a rotation the members still queued for the old id find it gone.
                    let last = (!regenerate).then(|| stored.clone());
                    self.slots.set_last(id, last);
                    for (member, view) in members.iter_mut().zip(applied.views) {
                        if member.outcome.is_none() {
                            let view = view.unwrap_or_else(|| stored.entry.data.clone());
                            member.outcome = Some(Outcome::Written {
                                stored: stored.clone(),
                                view,
                                ttl,
                                rotated: regenerate,
                                attempts: attempt,
                            });
                        }
                    }
                    return;
                }
                Ok(false) => {
                    // Another process saved first (this process's saves of one session are
                    // grouped): reload, re-apply, and give the other writer room.
                    metrics::counter!("sessions_conflicts_total").increment(1);
                    if let Some(cache) = &self.cache {
                        cache.forget(&key);
                    }
                    if attempt >= max_attempts {
                        let error = SessionError::Conflict { attempts: attempt };
                        return fail(members, error);
                    }
                    backoff(attempt).await;
                    metrics::counter!("sessions_retries_total").increment(1);
                    base = self.load_from_store(id).await;
                }
                Err(error) => {
                    // The write's outcome is unknown: the cache must not vouch for either.
                    if let Some(cache) = &self.cache {
                        cache.forget(&key);
                    }
                    let error = SessionError::from(error);
                    return fail(members, error);
                }
            }
        }
    }

    /// Does the owner-index refreshes of a write; a failure is logged, and the key's next
    /// write refreshes again.
    pub(crate) async fn run_refreshes(&self, refreshes: Vec<IndexRefresh>) {
        for refresh in refreshes {
            let IndexRefresh {
                owner,
                key,
                data,
                ttl,
            } = &refresh;
            if !self.index_refresh_after(owner, key, data, *ttl).await {
                self.unrefreshed.insert(refresh.key);
            }
        }
    }

    /// The freshest state of session `id` this process knows: what its last write left, the
    /// cache's entry, the leader's own snapshot if nobody saved since it was read; else the
    /// store's.
    async fn base_for(
        &self,
        id: &SessionId,
        key: &str,
        members: &[Member],
    ) -> Result<Option<Stored>, SessionError> {
        if let Some(last) = self.slots.last(id) {
            return Ok(Some(last));
        }
        if let Some(cache) = &self.cache {
            if let Some(entry) = cache.get(key) {
                return Ok(Some(Stored {
                    id: id.clone(),
                    entry,
                    generation: self.slots.generation(id),
                }));
            }
        }
        if let Some((own, _)) = members.first().and_then(|m| m.own.as_ref()) {
            if own.generation == self.slots.generation(id) {
                return Ok(Some(own.clone()));
            }
        }
        self.load_from_store(id).await
    }

    /// A member emptied the session (logout): it is deleted unconditionally, so a racing
    /// save cannot keep the user logged in. The members after it find it gone.
    async fn delete_group(
        &self,
        id: &SessionId,
        key: &str,
        owner: Option<&str>,
        members: &mut [Member],
        emptied: usize,
    ) {
        if let Err(error) = self.call("delete", self.store().delete(key)).await {
            let error = SessionError::from(error);
            return fail(members, error);
        }
        if let Some(owner) = owner {
            self.index_remove_after(owner, key).await;
        }
        metrics::counter!("sessions_saves_total", "action" => "delete").increment(1);
        if let Some(cache) = &self.cache {
            cache.forget(key);
        }
        self.slots.bump(id);
        self.slots.set_last(id, None);
        for (i, member) in members.iter_mut().enumerate() {
            if member.outcome.is_none() {
                member.outcome = Some(if i <= emptied {
                    Outcome::Deleted
                } else {
                    Outcome::Gone(std::mem::take(&mut member.changes))
                });
            }
        }
    }

    /// The TTL to extend an unchanged session's expiry to, when a refresh is due; else
    /// `None`, with the reason in `state.decision`. Decided without store I/O, so that
    /// [`commit_without_io`](Self::commit_without_io) can finish most requests at once.
    fn touch_due(&self, state: &mut State) -> Option<Duration> {
        if state.written {
            return None;
        }
        if !self.config.refresh_each_request() {
            state.decision = Decision::nothing("unchanged; SESSION_REFRESH_EACH_REQUEST is off");
            return None;
        }
        let loaded = state.loaded.as_ref()?;
        let Some(stored) = loaded.stored.as_ref() else {
            state.decision = Decision::nothing("a new session with nothing to store");
            return None;
        };
        if loaded.data.is_empty() {
            state.decision = Decision::nothing("an empty session");
            return None;
        }
        let ttl = self.ttl_for(&loaded.data);
        // A threshold of 1.0 means every request, even where the store rounds expiries up
        // to whole seconds and so reports a little more than the TTL.
        let threshold = self.config.refresh_threshold();
        if let (Some(expires_at), true) = (stored.entry.expires_at, threshold < 1.0) {
            let remaining = expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            // An owned session's "last seen" (its last write or extension) may not lag
            // more than LAST_SEEN_RESOLUTION behind its use.
            let seen_long_ago = || {
                ttl.saturating_sub(remaining) > crate::owner::LAST_SEEN_RESOLUTION
                    && self.indexed_owner(&loaded.data).is_some()
            };
            if remaining > ttl.mul_f64(threshold) && !seen_long_ago() {
                state.decision = Decision::nothing(
                    "unchanged; more than SESSION_REFRESH_THRESHOLD of the lifetime remains",
                );
                return None;
            }
        }
        Some(ttl)
    }

    /// An unchanged session: with refresh-each-request, extend its expiry (never rewrite
    /// it), skipped while more than `refresh_threshold` of the TTL remains.
    async fn refresh(&self, state: &mut State) -> Result<(), SessionError> {
        let Some(ttl) = self.touch_due(state) else {
            return Ok(());
        };
        let Some(loaded) = state.loaded.as_mut() else {
            return Ok(());
        };
        let Some(stored) = loaded.stored.as_mut() else {
            return Ok(());
        };
        let owner = self.indexed_owner(&loaded.data);
        let key = self.key(&stored.id);
        let ticket = self.cache.as_ref().and_then(|cache| cache.ticket(&key));
        let touched = self.call("touch", self.store().touch(&key, ttl)).await;
        let entry = match touched {
            Ok(true) => {
                let entry = &stored.entry;
                Some(Entry::new(
                    entry.bytes.clone(),
                    entry.data.clone(),
                    expiry(ttl),
                ))
            }
            Ok(false) | Err(_) => None,
        };
        if let Some(cache) = &self.cache {
            cache.fill(&key, ticket, entry.clone());
        }
        if let (Some(owner), Some(_)) = (&owner, &entry) {
            let _ = self
                .index_refresh_after(owner, &key, &loaded.data, ttl)
                .await;
        }
        if let Some(entry) = entry {
            metrics::counter!("sessions_touches_total").increment(1);
            state.decision = Decision {
                action: "touch",
                reason: "unchanged; the expiry was running low",
                attempts: 1,
                bytes: 0,
            };
            stored.entry = entry;
            state.written = true;
            if loaded.data.is_permanent() {
                state.cookie = CookieAction::Set {
                    permanent: true,
                    ttl,
                };
            }
        } else if matches!(touched, Ok(false)) {
            state.decision = Decision::nothing("unchanged; the entry had expired meanwhile");
        }
        touched.map(|_| ()).map_err(SessionError::from)
    }

    /// `SESSION_CLEANUP_N_REQUESTS`: with Flask-Session's probability, 1 in N + 1 requests,
    /// removes expired entries in the background (only stores without native expiry do any
    /// work); never two at once, nor two within `SESSION_CLEANUP_MIN_INTERVAL`.
    pub(crate) fn maybe_cleanup(&self) {
        let Some(n) = self.config.cleanup_n_requests() else {
            return;
        };
        if !cleanup_due(&mut fastrand::Rng::new(), n) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("session cleanup skipped: no tokio runtime");
            return;
        };
        let state = self.cleanup.clone();
        {
            let mut last = state
                .last_started
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let interval = self.config.cleanup_min_interval();
            if last.is_some_and(|at| at.elapsed() < interval) {
                return;
            }
            if state
                .running
                .swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let store = self.store.clone();
        runtime.spawn(async move {
            match store.cleanup().await {
                Ok(removed) => tracing::debug!(removed, "session cleanup"),
                Err(error) => tracing::warn!(%error, "session cleanup failed"),
            }
            state
                .running
                .store(false, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

/// Flask-Session's draw: `random.randint(0, n) == 0`, one chance in N + 1.
fn cleanup_due(rng: &mut fastrand::Rng, n: u64) -> bool {
    rng.u64(0..=n) == 0
}

/// A group's changes applied to a base.
struct Applied {
    /// The data to write.
    data: Arc<SessionData>,
    /// Per member, its view: the data after its changes and those of the members before it.
    views: Vec<Option<Arc<SessionData>>>,
    /// The member after whose changes the session was empty.
    emptied: Option<usize>,
}

fn apply_group(base: &Stored, members: &mut [Member]) -> Applied {
    // A lone leader whose snapshot is still the base already holds its changes applied.
    if let [member] = &*members {
        if let Some((own, data)) = &member.own {
            if Arc::ptr_eq(&own.entry, &base.entry) && member.outcome.is_none() {
                return Applied {
                    data: data.clone(),
                    views: vec![Some(data.clone())],
                    emptied: data.is_empty().then_some(0),
                };
            }
        }
    }
    let mut data = base.entry.data.clone();
    let mut views = Vec::with_capacity(members.len());
    for (i, member) in members.iter_mut().enumerate() {
        if member.outcome.is_some() {
            views.push(None);
            continue;
        }
        let before = data.clone();
        let applied = member
            .changes
            .iter()
            .try_for_each(|change| change.apply(Arc::make_mut(&mut data)));
        if let Err(error) = applied {
            // This request's update failed on the fresh data; the others go on.
            member.outcome = Some(Outcome::Failed(error));
            data = before;
            views.push(None);
            continue;
        }
        views.push(Some(data.clone()));
        if data.is_empty() {
            return Applied {
                data,
                views,
                emptied: Some(i),
            };
        }
    }
    Applied {
        data,
        views,
        emptied: None,
    }
}

/// Every member without an outcome fails: the last with `error`, the others with copies.
fn fail(members: &mut [Member], error: SessionError) {
    let mut pending: Vec<&mut Member> =
        members.iter_mut().filter(|m| m.outcome.is_none()).collect();
    if let Some(last) = pending.pop() {
        for member in pending {
            member.outcome = Some(Outcome::Failed(error.duplicate()));
        }
        last.outcome = Some(Outcome::Failed(error));
    }
}

/// Randomised, growing pause between conflicting attempts so that racing writers spread
/// out instead of colliding again.
pub(crate) async fn backoff(attempt: u32) {
    let ceiling_us = 50u64 << attempt.min(10);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=ceiling_us))).await;
}

impl SessionConfig {
    /// The store key of session `id` under this configuration: `SESSION_KEY_PREFIX` and
    /// the id, or with `SESSION_HASH_IDS` the base64url SHA-256 of the id (so that the
    /// store never holds a cookie value). For tools that reach a session by its id
    /// (`session-cli show ID`).
    pub fn store_key(&self, id: &SessionId) -> String {
        let prefix = self.key_prefix();
        if self.hash_ids() {
            use base64::Engine as _;
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(id.as_str().as_bytes());
            let mut key = String::with_capacity(prefix.len() + 43);
            key.push_str(prefix);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(digest, &mut key);
            return key;
        }
        let mut key = String::with_capacity(prefix.len() + id.as_str().len());
        key.push_str(prefix);
        key.push_str(id.as_str());
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_is_due_one_request_in_n_plus_one() {
        let mut rng = fastrand::Rng::with_seed(7);
        let due = (0..40_000).filter(|_| cleanup_due(&mut rng, 3)).count();
        // 1 in 4 is 10,000 (one in N would be 13,333); the standard deviation is about 87.
        assert!((9_500..10_500).contains(&due), "{due} of 40,000");
    }
}
