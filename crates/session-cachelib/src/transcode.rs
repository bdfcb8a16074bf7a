//! Between the bytes `session-core` reads and writes (a msgpack or JSON map) and the pickle
//! cachelib keeps in a file.
//!
//! - A session (bytes that `SerializationFormat::decode` reads as a map) is written as the
//!   pickle of a dict, which Flask-Session loads as the session.
//! - Anything else (session-core never writes it; test tools and the conformance kit do)
//!   is written behind the pickle of `None`: cachelib's `pickle.load` stops at the first
//!   pickle's STOP, so Flask-Session sees `None`, a missing session, and this store gives
//!   the bytes back exactly. No file this store writes makes a Flask reader fail.
//! - Reading turns a dict pickle into msgpack bytes, the same bytes for the same file every
//!   time, since compare-and-set compares them.

use rmpv::Value;
use session_core::{SerializationFormat, StoreError};

use crate::pickle::{self, PickleError};

/// `pickle.dumps(None, 5)`: the prefix of stored bytes that are not a session.
const RAW_PREFIX: &[u8] = b"\x80\x05N.";

/// The file payload for `value`.
pub(crate) fn encode(value: &[u8]) -> Result<Vec<u8>, StoreError> {
    match SerializationFormat::Msgpack.decode(value) {
        Ok(data) => {
            let entries: Vec<(Value, &Value)> = data
                .iter()
                .map(|(key, value)| (Value::from(key), value))
                .chain(
                    data.foreign_entries()
                        .iter()
                        .map(|(key, value)| (key.clone(), value)),
                )
                .collect();
            pickle::dumps_dict(&entries).map_err(|error| {
                StoreError::Unsupported(format!("session data cannot be stored for Flask: {error}"))
            })
        }
        Err(_) => {
            let mut payload = Vec::with_capacity(RAW_PREFIX.len() + value.len());
            payload.extend_from_slice(RAW_PREFIX);
            payload.extend_from_slice(value);
            Ok(payload)
        }
    }
}

/// What a file's payload reads as.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A session dict, as msgpack bytes.
    Session(Vec<u8>),
    /// Bytes stored behind `None`, exactly as written.
    Raw(Vec<u8>),
}

impl Decoded {
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Decoded::Session(bytes) | Decoded::Raw(bytes) => bytes,
        }
    }

    /// Whether `expected` (what a caller loaded, or what it wrote itself) is this value.
    ///
    /// Equal bytes match. A session also matches bytes that describe the same data once
    /// written: the JSON session-core writes when configured for JSON, a 32-bit float that
    /// the file holds as 64-bit. Both sides then go through the same writer and reader, so
    /// this is the equality of what a Flask reader would see.
    pub fn matches(&self, expected: &[u8]) -> bool {
        match self {
            Decoded::Raw(bytes) => bytes == expected,
            Decoded::Session(bytes) => {
                bytes == expected
                    || encode(expected)
                        .ok()
                        .filter(|payload| !payload.starts_with(RAW_PREFIX))
                        .and_then(|payload| decode(&payload).ok())
                        .is_some_and(|normalised| normalised == *self)
            }
        }
    }
}

/// Reads a file's payload; an error when it is neither a session dict this crate can read
/// nor raw bytes it wrote.
pub(crate) fn decode(payload: &[u8]) -> Result<Decoded, PickleError> {
    if let Some(raw) = payload.strip_prefix(RAW_PREFIX) {
        return Ok(Decoded::Raw(raw.to_vec()));
    }
    match pickle::loads(payload)? {
        map @ Value::Map(_) => {
            let mut bytes = Vec::with_capacity(payload.len());
            // Writing into a Vec cannot fail.
            let _ = rmpv::encode::write_value(&mut bytes, &map);
            Ok(Decoded::Session(bytes))
        }
        _ => Err(PickleError::new("the pickle holds no dict")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgpack(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    #[test]
    fn sessions_become_dict_pickles_and_read_back_as_the_same_msgpack() {
        let session = msgpack(&Value::Map(vec![
            (Value::from("_permanent"), Value::Boolean(true)),
            (Value::from(1), Value::from("int key, written last")),
            (Value::from("user"), Value::from("ann")),
        ]));
        let payload = encode(&session).unwrap();
        assert_eq!(&payload[..2], b"\x80\x05");
        let Decoded::Session(back) = decode(&payload).unwrap() else {
            panic!("not read as a session");
        };
        // session-core keeps non-string keys after the others, so they are written last.
        assert_eq!(
            back,
            msgpack(&Value::Map(vec![
                (Value::from("_permanent"), Value::Boolean(true)),
                (Value::from("user"), Value::from("ann")),
                (Value::from(1), Value::from("int key, written last")),
            ]))
        );
        assert_eq!(decode(&encode(&back).unwrap()).unwrap().into_bytes(), back);
    }

    #[test]
    fn json_sessions_are_stored_as_the_same_dict() {
        let payload = encode(br#"{"user":"ann","n":1}"#).unwrap();
        let decoded = decode(&payload).unwrap();
        assert_eq!(
            decoded,
            Decoded::Session(msgpack(&Value::Map(vec![
                (Value::from("user"), Value::from("ann")),
                (Value::from("n"), Value::from(1)),
            ])))
        );
        assert!(decoded.matches(br#"{"user":"ann","n":1}"#));
        assert!(!decoded.matches(br#"{"user":"ann","n":2}"#));
    }

    #[test]
    fn other_bytes_hide_behind_none_and_come_back_exactly() {
        for value in [&b""[..], b"0", b"\xc1garbage", b"[1,2]", b"\x80\x05N."] {
            let payload = encode(value).unwrap();
            assert!(payload.starts_with(b"\x80\x05N."));
            let decoded = decode(&payload).unwrap();
            assert!(decoded.matches(value));
            assert_eq!(decoded.into_bytes(), value);
        }
    }

    #[test]
    fn matching_is_by_content_for_sessions_and_exact_for_raw_bytes() {
        let stored = decode(
            &encode(&msgpack(&Value::Map(vec![(
                Value::from("f"),
                Value::F32(1.5),
            )])))
            .unwrap(),
        )
        .unwrap();
        // The file holds a 64-bit float; the writer's 32-bit bytes still match.
        assert!(stored.matches(&msgpack(&Value::Map(vec![(
            Value::from("f"),
            Value::F32(1.5)
        )]))));
        assert!(stored.matches(&msgpack(&Value::Map(vec![(
            Value::from("f"),
            Value::F64(1.5)
        )]))));
        assert!(!stored.matches(&msgpack(&Value::Map(vec![(
            Value::from("f"),
            Value::F64(2.5)
        )]))));
        // Raw bytes that happen to equal nothing: no normalisation.
        assert!(!Decoded::Raw(b"1".to_vec()).matches(b"01"));
        // A session never matches raw bytes, even its own msgpack behind None.
        assert!(!stored.matches(b"\x80\x05N."));
    }

    #[test]
    fn unreadable_payloads_are_errors() {
        assert!(decode(b"").is_err());
        assert!(
            decode(b"\x80\x05K\x01.").is_err(),
            "an int is not a session"
        );
        assert!(decode(b"\x80\x04\x8c\x02os\x8c\x06system\x93.").is_err());
    }

    #[test]
    fn values_flask_could_not_read_are_refused() {
        let session = msgpack(&Value::Map(vec![(
            Value::from("x"),
            Value::Ext(42, vec![]),
        )]));
        assert!(matches!(encode(&session), Err(StoreError::Unsupported(_))));
    }
}
