//! The [`Session`] handle used by request handlers.

use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{Mutex, MutexGuard};

use crate::data::{SessionData, Value};
use crate::error::SessionError;
use crate::id::SessionId;
use crate::lifecycle::{Change, Engine, State, UpdateFn};

pub(crate) struct SessionInner {
    pub(crate) engine: Arc<Engine>,
    pub(crate) state: Mutex<State>,
}

/// The session of one request.
///
/// Cheap to clone, `Send + Sync`, and safe to hold across `.await`. Nothing is read from
/// the store until the first method call (lazy loading). Changes are kept in memory and
/// written once, after the handler, by the framework adapter (or earlier with
/// [`save`](Self::save)); a save that races another request's save re-applies this
/// request's changes on the other's result instead of overwriting it.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<SessionInner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

fn to_value<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Value, SessionError> {
    let error = |message: String| SessionError::Value {
        key: key.to_owned(),
        message,
    };
    // rmp-serde's named form writes structs as maps, which is what a Python reader expects.
    let bytes = rmp_serde::to_vec_named(value).map_err(|e| error(e.to_string()))?;
    rmpv::decode::read_value(&mut bytes.as_slice()).map_err(|e| error(e.to_string()))
}

fn from_value<T: DeserializeOwned>(key: &str, value: Value) -> Result<T, SessionError> {
    rmpv::ext::from_value(value).map_err(|e| SessionError::Value {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

impl Session {
    /// The request's state, locked. Taken without queueing when it is free, as it almost
    /// always is (a handler and its adapter take turns): tokio's `lock().await` builds a
    /// waiter and polls it even then, about 150 instructions more per lock, and a counter
    /// request locks three times.
    pub(crate) async fn lock_state(&self) -> MutexGuard<'_, State> {
        match self.inner.state.try_lock() {
            Ok(state) => state,
            Err(_) => self.inner.state.lock().await,
        }
    }

    /// The request's state, when no one else holds it.
    pub(crate) fn try_lock_state(&self) -> Option<MutexGuard<'_, State>> {
        self.inner.state.try_lock().ok()
    }

    pub(crate) fn new(engine: Arc<Engine>, cookie_id: Option<SessionId>) -> Session {
        Session {
            inner: Arc::new(SessionInner {
                engine,
                state: Mutex::new(State::new(cookie_id)),
            }),
        }
    }

    /// Runs `f` on the loaded data, loading it first if needed.
    async fn with_loaded<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, SessionError>,
    ) -> Result<R, SessionError> {
        let mut state = self.lock_state().await;
        state.accessed = true;
        self.inner.engine.ensure_loaded(&mut state).await?;
        f(&mut state)
    }

    async fn change(&self, change: Change) -> Result<(), SessionError> {
        self.with_loaded(|state| state.record(change)).await
    }

    /// The value under `key` converted to `T`, or `None` when absent.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.get_value(key).await? {
            Some(value) => from_value(key, value).map(Some),
            None => Ok(None),
        }
    }

    /// The raw msgpack value under `key`.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.with_loaded(|state| Ok(state.data().get(key).cloned()))
            .await
    }

    /// Stores `value` under `key`.
    pub async fn insert<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), SessionError> {
        let value = to_value(key, value)?;
        self.insert_value(key, value).await
    }

    /// Stores a raw msgpack value under `key`.
    pub async fn insert_value(&self, key: &str, value: Value) -> Result<(), SessionError> {
        self.change(Change::Insert(CompactString::from(key), value))
            .await
    }

    /// Removes `key` and returns its value converted to `T`.
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.remove_value(key).await? {
            Some(value) => from_value(key, value).map(Some),
            None => Ok(None),
        }
    }

    /// Removes `key` and returns its raw value. Removing a missing key changes nothing.
    pub async fn remove_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.with_loaded(|state| {
            let old = state.data().get(key).cloned();
            if old.is_some() {
                state.record(Change::Remove(CompactString::from(key)))?;
            }
            Ok(old)
        })
        .await
    }

    /// Read-modify-write of one value: `f` gets the current value (`None` when absent) and
    /// returns the new one, which is also returned here.
    ///
    /// If another request changes the session before this one is saved, `f` runs again on
    /// the fresh value, so concurrent increments are never lost. `f` may therefore run more
    /// than once and should have no side effects. To answer with the value that was finally
    /// stored, call [`save`](Self::save) and read it back.
    pub async fn update<T, F>(&self, key: &str, f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(Option<T>) -> T + Send + Sync + 'static,
    {
        let change_key = CompactString::from(key);
        let owned_key = change_key.clone();
        let update: UpdateFn = Arc::new(move |current: Option<&Value>| {
            let current = match current {
                Some(value) => Some(from_value::<T>(&owned_key, value.clone())?),
                None => None,
            };
            to_value(&owned_key, &f(current))
        });
        let new_value = self
            .with_loaded(|state| {
                state.record(Change::Update(change_key, update))?;
                Ok(state.data().get(key).cloned().unwrap_or(Value::Nil))
            })
            .await?;
        from_value(key, new_value)
    }

    /// Removes every key (Flask's `clear()`: `_permanent` keeps its value). An emptied
    /// session is deleted from the store and the browser gets a deletion cookie.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.change(Change::Clear).await
    }

    /// Gives the session a new id, keeping its data; the old id stops working. Call it at
    /// login and privilege changes against session fixation. The move happens when the
    /// session is saved, in one store operation where the store supports it; if it fails,
    /// the old id and its data stay valid. Does nothing on an empty session, as in Flask.
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        self.with_loaded(|state| {
            if !state.data().is_empty() {
                state.regenerate = true;
                state.modified = true;
            }
            Ok(())
        })
        .await
    }

    /// Whether the session is permanent (Flask's `session.permanent`, kept in the data as
    /// `_permanent`): permanent sessions' cookies carry `Expires`.
    pub async fn is_permanent(&self) -> Result<bool, SessionError> {
        self.with_loaded(|state| Ok(state.data().is_permanent()))
            .await
    }

    /// Sets the permanent flag.
    pub async fn set_permanent(&self, permanent: bool) -> Result<(), SessionError> {
        self.change(Change::Permanent(permanent)).await
    }

    /// Gives this session a lifetime of its own ("remember me"), instead of
    /// `PERMANENT_SESSION_LIFETIME`: the store TTL and, for a permanent session, the cookie's
    /// `Expires` follow it from the next save on; `SESSION_ABSOLUTE_LIFETIME` still caps it.
    /// Kept in the data under [`LIFETIME_KEY`](crate::LIFETIME_KEY), so every process and a
    /// restart see it; whole seconds, between 1 second and 100 years.
    pub async fn set_lifetime(&self, lifetime: Duration) -> Result<(), SessionError> {
        let seconds = lifetime.as_secs().clamp(1, crate::MAX_LIFETIME.as_secs());
        self.change(Change::Insert(
            CompactString::const_new(crate::LIFETIME_KEY),
            Value::from(seconds),
        ))
        .await
    }

    /// Drops the lifetime set with [`set_lifetime`](Self::set_lifetime): the configured one
    /// applies again from the next save on.
    pub async fn reset_lifetime(&self) -> Result<(), SessionError> {
        self.remove_value(crate::LIFETIME_KEY).await.map(|_| ())
    }

    /// The lifetime of this session: its own, else `PERMANENT_SESSION_LIFETIME`.
    pub async fn lifetime(&self) -> Result<Duration, SessionError> {
        let own = self
            .get_value(crate::LIFETIME_KEY)
            .await?
            .and_then(|value| value.as_u64());
        Ok(own.map_or_else(|| self.inner.engine.config.lifetime(), Duration::from_secs))
    }

    /// The session's owner (`docs/owners.md`): the value under `SESSION_OWNER_KEY`
    /// (`_user_id` by default, where Flask-Login keeps the user's id) as a string, an
    /// integer in decimal; `None` when there is none.
    pub async fn owner(&self) -> Result<Option<String>, SessionError> {
        let key = self.inner.engine.config.owner_key();
        Ok(self
            .get_value(key)
            .await?
            .as_ref()
            .and_then(crate::owner::owner_from_value)
            .map(std::borrow::Cow::into_owned))
    }

    /// Makes `owner` the session's owner: it is kept under `SESSION_OWNER_KEY` as a
    /// string, as Flask-Login writes it, and the session is listed by
    /// [`SessionManager::sessions_of`](crate::SessionManager::sessions_of) from its next
    /// save on. An empty owner or one longer than [`MAX_OWNER_BYTES`](crate::MAX_OWNER_BYTES)
    /// is refused. Call [`regenerate`](Self::regenerate) too at login.
    pub async fn set_owner(&self, owner: &str) -> Result<(), SessionError> {
        let key = self.inner.engine.config.owner_key();
        if owner.is_empty() || owner.len() > crate::MAX_OWNER_BYTES {
            return Err(SessionError::Value {
                key: key.to_owned(),
                message: format!(
                    "an owner must have 1 to {} bytes, not {}",
                    crate::MAX_OWNER_BYTES,
                    owner.len()
                ),
            });
        }
        self.insert_value(key, Value::from(owner)).await
    }

    /// Removes the owner (the session leaves its owner's index at its next save).
    pub async fn clear_owner(&self) -> Result<(), SessionError> {
        let key = self.inner.engine.config.owner_key();
        self.remove_value(key).await.map(|_| ())
    }

    /// The opaque handle under which [`SessionManager::sessions_of`](crate::SessionManager::sessions_of)
    /// lists this session, once it is stored; it changes when the id is rotated.
    pub async fn handle(&self) -> Result<Option<String>, SessionError> {
        let engine = &self.inner.engine;
        self.with_loaded(|state| Ok(state.stored_id().map(|id| engine.handle(&engine.key(id)))))
            .await
    }

    /// The store key of the stored session, loading it first.
    pub(crate) async fn store_key(&self) -> Result<Option<String>, SessionError> {
        let engine = &self.inner.engine;
        self.with_loaded(|state| Ok(state.stored_id().map(|id| engine.key(id))))
            .await
    }

    /// A copy of all the session's data. To read without copying, see
    /// [`Session::snapshot`].
    pub async fn data(&self) -> Result<SessionData, SessionError> {
        self.with_loaded(|state| Ok(SessionData::clone(state.data())))
            .await
    }

    /// The session's data as it is now, shared instead of copied: a read-only view that
    /// costs a reference count. Changes made afterwards (in this request or by the store's
    /// other users) do not show in it: the session copies its data before the first write
    /// while a snapshot is alive. Rendering a page from the session is the use.
    pub async fn snapshot(&self) -> Result<Arc<SessionData>, SessionError> {
        // A reference count: a later write copies first (State::record), so this view stays.
        self.with_loaded(|state| Ok(Arc::clone(state.data()))).await
    }

    /// True when the session holds nothing but (at most) the permanent flag.
    pub async fn is_empty(&self) -> Result<bool, SessionError> {
        self.with_loaded(|state| Ok(state.data().is_empty())).await
    }

    /// Whether `key` is present.
    pub async fn contains_key(&self, key: &str) -> Result<bool, SessionError> {
        self.with_loaded(|state| Ok(state.data().contains_key(key)))
            .await
    }

    /// The keys, in order.
    pub async fn keys(&self) -> Result<Vec<String>, SessionError> {
        self.with_loaded(|state| Ok(state.data().iter().map(|(k, _)| k.to_owned()).collect()))
            .await
    }

    /// The id of the stored session, once it is stored (`None` for a new session before
    /// its first save). Treat it as a secret: it is the user's credential.
    pub async fn id(&self) -> Result<Option<String>, SessionError> {
        self.with_loaded(|state| Ok(state.stored_id().map(|id| id.as_str().to_owned())))
            .await
    }

    /// Forces a rewrite of the data at save, as Flask's `session.modified = True`.
    pub async fn mark_modified(&self) -> Result<(), SessionError> {
        self.with_loaded(|state| {
            state.modified = true;
            Ok(())
        })
        .await
    }

    /// Writes pending changes now instead of after the handler, so the handler can report
    /// the stored result (for instance a counter's final value). The adapter still sends
    /// the cookie. Does nothing when nothing changed.
    ///
    /// When the save fails, this request's pending changes are dropped (the handler should
    /// answer with the error), so the adapter will not write them after all.
    pub async fn save(&self) -> Result<(), SessionError> {
        let mut state = self.lock_state().await;
        self.inner.engine.commit(&mut state).await
    }

    /// Whether the handler used the session at all (then responses get `Vary: Cookie`).
    pub async fn is_accessed(&self) -> bool {
        self.lock_state().await.accessed
    }
}
