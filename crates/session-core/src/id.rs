//! Session ids: generation and validation of incoming cookie values.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::fmt;
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
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Arc<str>);

impl SessionId {
    /// A new id from `bytes` bytes of the operating system's randomness.
    pub fn generate(bytes: usize) -> Result<SessionId, SessionError> {
        let mut buffer = [0u8; MAX_ID_LENGTH];
        let bytes = bytes.clamp(1, MAX_ID_LENGTH);
        getrandom::fill(&mut buffer[..bytes]).map_err(|e| SessionError::Random(e.to_string()))?;
        Ok(SessionId(Arc::from(
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
            return Some(SessionId(Arc::from(value)));
        }
        if len % 4 == 1 {
            return None;
        }
        if value.bytes().all(|b| BASE64URL[usize::from(b)]) {
            Some(SessionId(Arc::from(value)))
        } else {
            None
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
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
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionId {
    // Ids are bearer credentials: keep them out of debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", &self.0[..self.0.len().min(4)])
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
