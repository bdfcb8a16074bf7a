//! Sessions per owner (`docs/owners.md`): who a session belongs to, the listing of an
//! owner's sessions and their revocation. The index itself lives in the store (see the
//! owner-index block of [`SessionStore`](crate::SessionStore)); the lifecycle keeps it in
//! step with its commits, and this module reads it, checking every entry against the
//! session it names.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cache::Entry;
use crate::data::{SessionData, Value};
use crate::error::{SessionError, StoreError};
use crate::lifecycle::{Engine, CREATED_KEY};
use crate::session::Session;
use crate::store::IndexEntry;

/// Default `SESSION_OWNER_KEY`: Flask-Login's key for the logged-in user's id, so sessions
/// a Flask app writes are indexed too.
pub const DEFAULT_OWNER_KEY: &str = "_user_id";

/// The longest owner accepted, in bytes. A longer value under the owner key is not
/// indexed; [`Session::set_owner`] refuses one.
pub const MAX_OWNER_BYTES: usize = 256;

/// How stale a session's "last seen" may get: an owned session that is used but not
/// written has its expiry extended (and its index entry refreshed) once this much time has
/// passed since its last write, even while most of its lifetime remains.
pub const LAST_SEEN_RESOLUTION: Duration = Duration::from_secs(300);

/// How many passes over the index a revocation makes at most before it gives up with
/// [`SessionError::Conflict`]; it normally needs two.
const MAX_REVOKE_PASSES: u32 = 16;

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The owner a value under the owner key names: a non-empty string as it is, an integer
/// in decimal (what `str()` gives in Python); anything else, or more than
/// [`MAX_OWNER_BYTES`], names no owner.
pub(crate) fn owner_from_value(value: &Value) -> Option<Cow<'_, str>> {
    // Borrowed for a text owner: a write looks the owner up several times.
    let owner = match value {
        Value::String(text) => Cow::Borrowed(text.as_str()?),
        Value::Integer(number) => Cow::Owned(number.to_string()),
        _ => return None,
    };
    (!owner.is_empty() && owner.len() <= MAX_OWNER_BYTES).then_some(owner)
}

/// One of an owner's sessions, as [`SessionManager::sessions_of`](crate::SessionManager::sessions_of)
/// lists it. Never the session id: `handle` is a keyed hash of its store key, stable for
/// the session until its id is rotated, and accepted by
/// [`revoke_owner`](crate::SessionManager::revoke_owner) to keep that one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnedSession {
    /// An opaque name for the session (22 URL-safe characters), never its id.
    pub handle: String,
    /// When the session was created or got its owner, in Unix seconds.
    pub created: u64,
    /// When core last wrote the session or extended its expiry, in Unix seconds (within
    /// [`LAST_SEEN_RESOLUTION`] of the last request that used it).
    pub last_seen: u64,
    /// When the session expires unless used again, in Unix seconds.
    pub expires_at: u64,
    /// Whether it is the session of the request that asked.
    pub current: bool,
}

/// Which session [`revoke_owner`](crate::SessionManager::revoke_owner) leaves alone.
#[derive(Clone, Copy, Debug)]
pub enum Keep<'a> {
    /// The session of this request (typically the caller's: "log out my other sessions").
    Session(&'a Session),
    /// The session with this [`OwnedSession::handle`].
    Handle(&'a str),
}

/// What an index entry turned out to be.
enum Checked {
    /// The session is live and still belongs to the owner.
    Live(Arc<Entry>, Option<SystemTime>),
    /// No such session, or another owner's, for longer than a write can take: prune it.
    Stale,
    /// No such session, or another owner's, but the entry is recent: a write that indexes
    /// before it writes may be in flight. Neither listed nor pruned.
    Recent,
}

impl Engine {
    /// The owner of `data`: the value under `SESSION_OWNER_KEY`.
    pub(crate) fn owner_of<'a>(&self, data: &'a SessionData) -> Option<Cow<'a, str>> {
        data.get(self.config.owner_key()).and_then(owner_from_value)
    }

    /// The name of `owner`'s index in the store: `SESSION_KEY_PREFIX`, `owner:`, the
    /// owner. Under the prefix, so that apps sharing a store with different prefixes keep
    /// separate indexes, and so that a key-value store can use it as the index's key.
    pub(crate) fn index_name(&self, owner: &str) -> String {
        format!("{}owner:{owner}", self.config.key_prefix())
    }

    /// Whether core keeps the owner index of this store.
    pub(crate) fn indexes_owners(&self) -> bool {
        self.indexes_owners
    }

    /// The handle of the session under store key `key`: 16 bytes of HMAC-SHA-256 under the
    /// secret key (a fixed key without one; the store key holds 256 random bits or their
    /// hash, so the handle cannot be turned back into it either way), base64url.
    pub(crate) fn handle(&self, key: &str) -> String {
        use base64::Engine as _;
        use hmac::Mac as _;
        let secret = self.config.secret_key().unwrap_or("session-owner-handle");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"session-owner-handle\0");
        mac.update(key.as_bytes());
        let digest = mac.finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    }

    /// Records `key` in `owner`'s index with the times of `data` written with `ttl` now.
    pub(crate) async fn index_put(
        &self,
        owner: &str,
        key: &str,
        data: &SessionData,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = unix_now();
        let entry = IndexEntry {
            key: key.to_owned(),
            created: data.get(CREATED_KEY).and_then(Value::as_u64).unwrap_or(now),
            last_seen: now,
            // A margin of LAST_SEEN_RESOLUTION: writes within it skip the refresh (see
            // `Engine::index_due`), and the entry must outlive the session they extend.
            expires_at: now
                .saturating_add(ttl.as_secs())
                .saturating_add(LAST_SEEN_RESOLUTION.as_secs()),
        };
        self.call(
            "index_put",
            self.store().index_put(&self.index_name(owner), &entry),
        )
        .await
    }

    /// Whether a write of a session whose index entry this process last wrote at
    /// `indexed_at` (0: unknown) must refresh that entry: once per LAST_SEEN_RESOLUTION,
    /// so that a busy session costs one extra store call per interval, not per write.
    pub(crate) fn index_due(indexed_at: u64, now: u64) -> bool {
        indexed_at == 0 || now.saturating_sub(indexed_at) >= LAST_SEEN_RESOLUTION.as_secs()
    }

    /// Removes `key` from `owner`'s index after the session was written; a failure only
    /// leaves a stale entry, which the next listing prunes.
    pub(crate) async fn index_remove_after(&self, owner: &str, key: &str) {
        if let Err(error) = self
            .call(
                "index_remove",
                self.store().index_remove(&self.index_name(owner), key),
            )
            .await
        {
            tracing::warn!(%error, "owner index entry not removed; it is pruned when next listed");
        }
    }

    /// Refreshes `key`'s entry after a write or expiry extension; a failure is logged (the
    /// entry keeps its older times).
    pub(crate) async fn index_refresh_after(
        &self,
        owner: &str,
        key: &str,
        data: &SessionData,
        ttl: Duration,
    ) -> bool {
        match self.index_put(owner, key, data, ttl).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "owner index entry not refreshed");
                false
            }
        }
    }

    /// How long an index entry may name no session of its owner before it counts as stale:
    /// the entry is written before the session, and the write may take up to two store
    /// calls' time (an index put, then the write).
    fn index_grace(&self) -> u64 {
        2 * self.config.store_timeout().as_secs() + 2
    }

    async fn check(&self, owner: &str, entry: &IndexEntry) -> Result<Checked, SessionError> {
        let loaded = match self.call("load", self.store().load(&entry.key)).await {
            Err(StoreError::InvalidKey(_)) => None,
            other => other?,
        };
        if let Some(stored) = loaded {
            let expires_at = stored.expires_at;
            if let Some(decoded) = self.decode(stored.value, expires_at) {
                if self.owner_of(&decoded.data).as_deref() == Some(owner) {
                    return Ok(Checked::Live(decoded, expires_at));
                }
            }
        }
        Ok(
            if entry.last_seen.saturating_add(self.index_grace()) < unix_now() {
                Checked::Stale
            } else {
                Checked::Recent
            },
        )
    }

    /// The live sessions of `owner`, most recently seen first; `current_key` is the
    /// caller's store key. Stale entries are pruned on the way.
    pub(crate) async fn sessions_of(
        &self,
        owner: &str,
        current_key: Option<&str>,
    ) -> Result<Vec<OwnedSession>, SessionError> {
        let entries = self
            .call(
                "index_list",
                self.store().index_list(&self.index_name(owner)),
            )
            .await?;
        let mut sessions = Vec::with_capacity(entries.len());
        for entry in entries {
            match self.check(owner, &entry).await? {
                Checked::Live(_, expires_at) => sessions.push(OwnedSession {
                    handle: self.handle(&entry.key),
                    created: entry.created,
                    last_seen: entry.last_seen,
                    expires_at: expires_at
                        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
                        .map_or(entry.expires_at, |at| at.as_secs()),
                    current: current_key == Some(entry.key.as_str()),
                }),
                Checked::Stale => self.index_remove_after(owner, &entry.key).await,
                Checked::Recent => {}
            }
        }
        sessions.sort_by_key(|session| std::cmp::Reverse(session.last_seen));
        Ok(sessions)
    }

    /// Ends every session of `owner` except the one `keep` accepts, and returns how many
    /// it ended.
    ///
    /// Each session is removed with a compare-and-delete of the bytes just read (re-read
    /// and retried when a request wrote meanwhile), so a concurrent save cannot keep it:
    /// that save's compare-and-set then finds it gone and starts a new, empty session
    /// instead. Passes over the index repeat until two in a row end nothing, which catches
    /// a session rotated to a new id meanwhile (a rotation indexes its new key before it
    /// writes it). Every removed key is dropped from this process's cache, and reads of it
    /// in flight are kept from filling the cache again.
    pub(crate) async fn revoke_owner(
        &self,
        owner: &str,
        keep: &(dyn Fn(&str) -> bool + Send + Sync),
    ) -> Result<u64, SessionError> {
        let mut revoked = 0;
        let mut quiet_passes = 0;
        for _ in 0..MAX_REVOKE_PASSES {
            let entries = self
                .call(
                    "index_list",
                    self.store().index_list(&self.index_name(owner)),
                )
                .await?;
            let mut ended = 0;
            for entry in entries.iter().filter(|entry| !keep(&entry.key)) {
                match self.end(owner, entry).await? {
                    Checked::Live(..) => {
                        ended += 1;
                        self.index_remove_after(owner, &entry.key).await;
                    }
                    Checked::Stale => self.index_remove_after(owner, &entry.key).await,
                    Checked::Recent => {}
                }
            }
            revoked += ended;
            quiet_passes = if ended == 0 { quiet_passes + 1 } else { 0 };
            if quiet_passes == 2 {
                metrics::counter!("sessions_revoked_total").increment(revoked);
                return Ok(revoked);
            }
        }
        metrics::counter!("sessions_revoked_total").increment(revoked);
        Err(SessionError::Conflict {
            attempts: MAX_REVOKE_PASSES,
        })
    }

    /// Ends one indexed session: `Live` when this call removed it.
    async fn end(&self, owner: &str, entry: &IndexEntry) -> Result<Checked, SessionError> {
        let max_attempts = self.config.max_save_attempts();
        for attempt in 1..=max_attempts {
            let (stored, expires_at) = match self.check(owner, entry).await? {
                Checked::Live(stored, expires_at) => (stored, expires_at),
                other => return Ok(other),
            };
            let removed = self
                .call(
                    "compare_and_delete",
                    self.store().compare_and_delete(&entry.key, &stored.bytes),
                )
                .await?;
            if removed {
                // After the removal: a read that started before it cannot fill the cache.
                self.revoke_cached(&entry.key);
                metrics::counter!("sessions_saves_total", "action" => "revoke").increment(1);
                return Ok(Checked::Live(stored, expires_at));
            }
            // A request saved the session meanwhile: read it again and retry.
            metrics::counter!("sessions_conflicts_total").increment(1);
            crate::lifecycle::backoff(attempt).await;
        }
        Err(SessionError::Conflict {
            attempts: max_attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_refresh_is_due_when_unknown_or_a_resolution_old() {
        let now = 1_000_000;
        let resolution = LAST_SEEN_RESOLUTION.as_secs();
        assert!(Engine::index_due(0, now), "never written by this process");
        assert!(!Engine::index_due(now, now));
        assert!(!Engine::index_due(now - resolution + 1, now));
        assert!(Engine::index_due(now - resolution, now));
        // A clock that went back never makes a refresh due early, nor panics.
        assert!(!Engine::index_due(now + 10, now));
    }
}
