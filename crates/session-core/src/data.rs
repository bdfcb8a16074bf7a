//! The session's data: an ordered map of dynamic msgpack values.

use compact_str::CompactString;
use indexmap::IndexMap;
pub use rmpv::Value;

/// The reserved key in which Flask-Session keeps the permanent flag.
pub const PERMANENT_KEY: &str = "_permanent";

/// The data of one session, exactly as Flask-Session keeps it.
///
/// Keys keep their order and values keep their msgpack types (unsigned 64-bit ints, f32 vs
/// f64, binary, nested maps with any keys, extension types such as timestamps), so data a
/// Flask app wrote survives a Rust read-modify-write unchanged. The permanent flag lives in
/// the data under [`PERMANENT_KEY`], as in Flask-Session.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionData {
    /// Keys up to 24 bytes (every key Flask and its extensions use) are kept inline, so
    /// copying the map on a write allocates nothing for them.
    entries: IndexMap<CompactString, Value, foldhash::fast::RandomState>,
    /// Top-level entries whose key is not a string (rare; kept, written after the others).
    foreign: Vec<(Value, Value)>,
}

impl SessionData {
    /// An empty map.
    pub fn new() -> SessionData {
        SessionData::default()
    }

    /// The data of a brand-new session: `{"_permanent": true}` when new sessions are
    /// permanent (`SESSION_PERMANENT`), otherwise `{}`.
    pub fn new_session(permanent: bool) -> SessionData {
        let mut data = SessionData::new();
        if permanent {
            data.set_permanent(true);
        }
        data
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// Sets `key`, keeping its position when it already exists.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        self.entries.insert(CompactString::from(key.into()), value)
    }

    /// [`insert`](Self::insert) for a key the crate already holds in its own form.
    pub(crate) fn insert_key(&mut self, key: &CompactString, value: Value) -> Option<Value> {
        match self.entries.get_mut(key.as_str()) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => self.entries.insert(key.clone(), value),
        }
    }

    /// Removes `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.entries.shift_remove(key)
    }

    /// Flask-Session's `clear()`: everything goes, then `_permanent` is put back with its
    /// previous value (`false` when it had none).
    pub fn clear(&mut self) {
        let permanent = self.is_permanent();
        self.entries.clear();
        self.foreign.clear();
        self.set_permanent(permanent);
    }

    /// True when the session has no data worth storing: no keys, or only `_permanent`.
    pub fn is_empty(&self) -> bool {
        self.foreign.is_empty() && self.entries.keys().all(|key| key.as_str() == PERMANENT_KEY)
    }

    /// The `_permanent` flag (absent means not permanent).
    pub fn is_permanent(&self) -> bool {
        matches!(self.entries.get(PERMANENT_KEY), Some(Value::Boolean(true)))
    }

    /// Sets the `_permanent` flag.
    pub fn set_permanent(&mut self, permanent: bool) {
        self.insert_key(
            &CompactString::const_new(PERMANENT_KEY),
            Value::Boolean(permanent),
        );
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The entries with string keys, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The top-level entries whose key is not a string.
    pub fn foreign_entries(&self) -> &[(Value, Value)] {
        &self.foreign
    }

    /// Number of top-level entries, `_permanent` included.
    pub fn len(&self) -> usize {
        self.entries.len() + self.foreign.len()
    }

    pub(crate) fn push_foreign(&mut self, key: Value, value: Value) {
        self.foreign.push((key, value));
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for SessionData {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut data = SessionData::new();
        for (key, value) in iter {
            data.insert(key, value);
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_permanent_counts_as_empty() {
        assert!(SessionData::new().is_empty());
        assert!(SessionData::new_session(true).is_empty());
        let mut data = SessionData::new_session(true);
        data.insert("user", Value::from("ann"));
        assert!(!data.is_empty());
    }

    #[test]
    fn clear_keeps_the_permanent_flag_like_flask() {
        let mut data = SessionData::new_session(true);
        data.insert("user", Value::from("ann"));
        data.clear();
        assert_eq!(data.len(), 1);
        assert!(data.is_permanent());
        let mut plain = SessionData::new();
        plain.insert("a", Value::from(1));
        plain.clear();
        assert_eq!(plain.get(PERMANENT_KEY), Some(&Value::Boolean(false)));
    }

    #[test]
    fn remove_keeps_order() {
        let mut data: SessionData = [
            ("a", Value::from(1)),
            ("b", Value::from(2)),
            ("c", Value::from(3)),
        ]
        .into_iter()
        .collect();
        data.remove("b");
        let keys: Vec<_> = data.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "c"]);
    }
}
