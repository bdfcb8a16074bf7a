//! One module per command: its arguments and `run`, returning a [`Report`](crate::report::Report). Adding a
//! command is a module here plus one variant and one match arm in `main.rs`.

pub mod cleanup;
pub mod count;
pub mod delete;
pub mod list;
pub mod owner;
pub mod show;

use session_any::AnyStore;
use session_core::{SessionConfig, SessionId, SessionStore as _, StoredEntry};

/// The store key of the session `id` (a cookie value: a signed `sid.signature` is
/// accepted) under the application's key prefix and id hashing.
pub fn key_of(config: &SessionConfig, id: &str) -> Result<String, String> {
    let bare = id.trim().split('.').next().unwrap_or_default();
    let id = SessionId::parse(bare)
        .ok_or_else(|| "not a session id (the cookie's value: base64url characters)".to_owned())?;
    Ok(config.store_key(&id))
}

/// The session under `key`, or an error naming it (shortened) when there is none.
pub async fn load(store: &AnyStore, key: &str, id: &str) -> Result<StoredEntry, String> {
    match store.load(key).await {
        Ok(Some(entry)) => Ok(entry),
        Ok(None) => Err(format!("no session {}", crate::report::short_id(id))),
        Err(error) => Err(format!("reading the session failed: {error}")),
    }
}

/// The session's data as JSON, or `None` when it does not decode (neither msgpack nor
/// JSON: a corrupt entry, or a pickle in a store that does not hold pickles).
pub fn decoded(config: &SessionConfig, entry: &StoredEntry) -> Option<serde_json::Value> {
    config
        .serialization_format()
        .decode(&entry.value)
        .ok()
        .map(|data| data.to_json())
}
