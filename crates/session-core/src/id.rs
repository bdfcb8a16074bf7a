//! Session ids: generation and validation of incoming cookie values.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use crate::error::SessionError;

/// Default number of random bytes in a new session id (`SESSION_ID_LENGTH`).
pub const DEFAULT_ID_LENGTH: usize = 32;

/// Largest `SESSION_ID_LENGTH` accepted: 192 bytes encode to 256 characters.
pub const MAX_ID_LENGTH: usize = 192;

/// Longest id accepted from a cookie, in characters.
pub const MAX_ID_CHARS: usize = 256;

/// A session id: base64url text without padding, as Flask-Session's `secrets.token_urlsafe`.
///
/// Values only come from [`SessionId::generate`] or from [`SessionId::parse`], so every
/// `SessionId` is safe to use in a store key. Shared text: a request's save passes its id
/// to the group-commit slot, the cache entry and the outcome, and each clone is a
/// reference count, not an allocation.
///
/// The id is hashed once, when it is made: a save looks its id up about ten times (its
/// group-commit slot, the save counters), and hashing the text each time cost about 100
/// instructions per lookup. [`Hash`] writes that per-process, randomly seeded hash.
#[derive(Clone)]
pub struct SessionId {
    text: Arc<str>,
    hash: u64,
}

/// The hasher of every id of this process: seeded at random once, as std's maps are, so
/// that ids chosen to collide cannot be computed in advance.
static ID_HASHER: std::sync::LazyLock<foldhash::fast::RandomState> =
    std::sync::LazyLock::new(foldhash::fast::RandomState::default);

impl PartialEq for SessionId {
    fn eq(&self, other: &SessionId) -> bool {
        self.hash == other.hash && self.text == other.text
    }
}

impl Eq for SessionId {}

impl Hash for SessionId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl SessionId {
    fn new(text: Arc<str>) -> SessionId {
        let hash = ID_HASHER.hash_one(text.as_bytes());
        SessionId { text, hash }
    }

    /// The id's hash, computed once: for spreading ids over locks and counters.
    pub(crate) fn stripe(&self) -> u64 {
        self.hash
    }

    /// A new id from `bytes` bytes of the operating system's randomness.
    pub fn generate(bytes: usize) -> Result<SessionId, SessionError> {
        let mut buffer = [0u8; MAX_ID_LENGTH];
        let bytes = bytes.clamp(1, MAX_ID_LENGTH);
        getrandom::fill(&mut buffer[..bytes]).map_err(|e| SessionError::Random(e.to_string()))?;
        Ok(SessionId::new(Arc::from(
            URL_SAFE_NO_PAD.encode(&buffer[..bytes]),
        )))
    }

    /// Accepts every id Flask-Session could have issued and nothing else.
    ///
    /// That is base64url without padding of any length up to [`MAX_ID_CHARS`] that an
    /// encoder can produce (never `4k + 1` characters), which also covers the 36-character
    /// uuid4 ids of Flask-Session 0.5 and older. Anything else is "no session": it never
    /// reaches a store.
    pub fn parse(value: &str) -> Option<SessionId> {
        let len = value.len();
        if !(2..=MAX_ID_CHARS).contains(&len) {
            return None;
        }
        if is_uuid(value) {
            return Some(SessionId::new(Arc::from(value)));
        }
        if len % 4 == 1 {
            return None;
        }
        if value.bytes().all(|b| BASE64URL[usize::from(b)]) {
            Some(SessionId::new(Arc::from(value)))
        } else {
            None
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The bytes of base64url text: a table, because the id of every request is checked.
const BASE64URL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_';
        b += 1;
    }
    table
};

fn is_uuid(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for SessionId {
    // Ids are bearer credentials: keep them out of debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", &self.text[..self.text.len().min(4)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_are_43_chars_of_base64url() {
        let id = SessionId::generate(DEFAULT_ID_LENGTH).unwrap();
        assert_eq!(id.as_str().len(), 43);
        assert!(SessionId::parse(id.as_str()).is_some());
        assert_ne!(id, SessionId::generate(DEFAULT_ID_LENGTH).unwrap());
    }

    #[test]
    fn every_length_flask_can_issue_is_accepted() {
        for bytes in 1..=MAX_ID_LENGTH {
            let id = SessionId::generate(bytes).unwrap();
            assert_eq!(id.as_str().len(), (4 * bytes).div_ceil(3));
            assert!(SessionId::parse(id.as_str()).is_some(), "length {bytes}");
        }
    }

    /// Records what a `Hash` impl writes.
    #[derive(Default)]
    struct Written(Vec<u8>);

    impl Hasher for Written {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }

    #[test]
    fn an_id_is_hashed_once_and_equal_ids_hash_alike() {
        let id = SessionId::generate(DEFAULT_ID_LENGTH).unwrap();
        let same = SessionId::parse(id.as_str()).unwrap();
        assert_eq!(id, same);
        assert_eq!(id.stripe(), same.stripe());
        // Hashing writes the stored hash, not the 43 bytes of text again.
        let mut written = Written::default();
        id.hash(&mut written);
        assert_eq!(written.0, id.stripe().to_ne_bytes());
        let other = SessionId::generate(DEFAULT_ID_LENGTH).unwrap();
        assert_ne!(id, other);
        let map: std::collections::HashMap<SessionId, u8> = [(id, 1), (other.clone(), 2)].into();
        assert_eq!(map.get(&same), Some(&1));
        assert_eq!(map.get(&other), Some(&2));
    }

    #[test]
    fn uuid_ids_of_old_versions_are_accepted() {
        assert!(SessionId::parse("99eb3546-85ba-4a5c-9c36-4a8a2a7b3c1d").is_some());
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "",
            "a",
            "abcde",
            "has space aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abc.def",
            "abc=",
            "ünïcode-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "session:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "../../etc/passwd",
            "a\r\nb",
        ] {
            assert!(SessionId::parse(bad).is_none(), "{bad:?}");
        }
        assert!(SessionId::parse(&"A".repeat(MAX_ID_CHARS + 4)).is_none());
    }

    #[test]
    fn the_table_accepts_exactly_the_base64url_alphabet() {
        let accepted: Vec<u8> = (0..=255u8).filter(|b| BASE64URL[usize::from(*b)]).collect();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut expected = alphabet.to_vec();
        expected.sort_unstable();
        assert_eq!(accepted, expected);
    }

    #[test]
    fn debug_does_not_print_the_id() {
        let id = SessionId::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(format!("{id:?}"), "SessionId(AAAA…)");
    }
}
