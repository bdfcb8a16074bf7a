//! A pickle codec limited to what a Flask session holds, safe by construction.
//!
//! [`loads`] reads pickle protocols 2 to 5 into a msgpack value ([`rmpv::Value`], the data
//! model of `session-core`); [`dumps`] writes protocol 5 from one. Neither ever imports,
//! looks up or calls anything: the few classes a session holds are recognised by name and
//! rebuilt as data, and every other class or function is an error.
//!
//! | Python | msgpack value |
//! |---|---|
//! | `None`, `bool`, `float`, `str`, `bytes`, `list`, `dict` (any hashable keys) | nil, bool, float 64, str, bin, array, map |
//! | `int` in `[-2**63, 2**64-1]` | int |
//! | any other `int` | ext [`ext::BIGINT`]: little-endian two's complement, shortest form |
//! | `tuple`, `set`, `frozenset` | ext [`ext::TUPLE`], [`ext::SET`], [`ext::FROZENSET`]: a msgpack array of the items |
//! | `datetime.datetime` with `tzinfo=timezone.utc` | ext −1, the msgpack timestamp (what Flask-Session's msgpack writes) |
//! | any other `datetime.datetime` (naive, fixed offset, `fold=1`) | ext [`ext::DATETIME`] |
//! | `datetime.date`, `datetime.timedelta`, `datetime.timezone` | ext [`ext::DATE`], [`ext::TIMEDELTA`], [`ext::TIMEZONE`] |
//!
//! The [`ext`] module documents each payload. What is refused: any other class (`Markup`,
//! `zoneinfo.ZoneInfo`, `datetime.time`, `bytearray`, user classes), out-of-band buffers,
//! protocol 0 and 1 pickles, truncated or malformed input, nesting deeper than
//! [`MAX_DEPTH`] (cycles included), and input that would expand past a budget proportional
//! to its length (shared references repeated to build a huge value).
//!
//! ```
//! use rmpv::Value;
//! use session_cachelib::pickle;
//!
//! let data = Value::Map(vec![
//!     (Value::from("user"), Value::from("ann")),
//!     (Value::from("pair"), pickle::ext::tuple(vec![Value::from(1), Value::from(2)])),
//! ]);
//! let bytes = pickle::dumps(&data)?;
//! assert_eq!(&bytes[..2], b"\x80\x05"); // protocol 5
//! assert_eq!(pickle::loads(&bytes)?, data);
//! // A pickle that names anything else is refused, never executed.
//! assert!(pickle::loads(b"\x80\x04\x8c\x02os\x8c\x06system\x93.").is_err());
//! # Ok::<(), pickle::PickleError>(())
//! ```

mod py;
mod read;
mod write;

/// Deepest nesting [`loads`] and [`dumps`] accept (containers inside containers, the items
/// inside ext payloads included), as `session-core`'s msgpack decoder.
pub const MAX_DEPTH: usize = 256;

/// Why bytes could not be read as, or a value could not be written as, a pickle.
///
/// The message names the opcode, class or type at fault and the byte offset, never the
/// session data itself, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PickleError {
    message: String,
}

impl PickleError {
    pub(crate) fn new(message: impl Into<String>) -> PickleError {
        PickleError {
            message: message.into(),
        }
    }

    pub(crate) fn at(offset: usize, message: impl std::fmt::Display) -> PickleError {
        PickleError::new(format!("pickle byte {offset}: {message}"))
    }
}

/// Reads one pickle (protocol 2 to 5) that holds only the types of the table above.
///
/// The whole input must be that one pickle: trailing bytes are an error. Work and memory
/// are bounded by the input's length; no length field in the input is trusted.
pub fn loads(input: &[u8]) -> Result<rmpv::Value, PickleError> {
    read::loads(input)
}

/// Writes `value` as a protocol 5 pickle that Python's `pickle.loads` turns back into the
/// Python value of the table above.
///
/// Refused: extension types other than this crate's and the timestamp, strings that are
/// not UTF-8, dictionary keys and set items that Python cannot hash (lists, dicts, sets),
/// dates outside Python's years 1 to 9999, and malformed ext payloads. A 32-bit float
/// becomes a Python float (64-bit) and reads back as a 64-bit float; a timestamp's
/// nanoseconds are cut to Python's microseconds.
pub fn dumps(value: &rmpv::Value) -> Result<Vec<u8>, PickleError> {
    write::dumps(value)
}

/// [`dumps`] of the dict of `entries`, without copying the values.
pub(crate) fn dumps_dict(entries: &[(rmpv::Value, &rmpv::Value)]) -> Result<Vec<u8>, PickleError> {
    write::dumps_dict(entries)
}

/// The msgpack extension types this crate maps Python values onto, and helpers to build
/// and read them.
///
/// Codes 80 to 87 are this crate's own (msgpack leaves 0 to 127 to applications); −1 is
/// msgpack's timestamp. Payloads that hold several fields are a msgpack array, encoded
/// with the shortest forms:
///
/// | Code | Python | Payload |
/// |---|---|---|
/// | −1 | `datetime` with `tzinfo=timezone.utc`, `fold=0` | msgpack timestamp (4, 8 or 12 bytes) |
/// | 80 | `tuple` | `[item, ...]` |
/// | 81 | `set` | `[item, ...]` |
/// | 82 | `frozenset` | `[item, ...]` |
/// | 83 | other `datetime` | `[year, month, day, hour, minute, second, microsecond, fold, tzinfo]`, `fold` a bool, `tzinfo` nil or a timezone ext (86) |
/// | 84 | `date` | `[year, month, day]` |
/// | 85 | `timedelta` | `[days, seconds, microseconds]`, normalised as Python does (`0 <= seconds < 86400`, `0 <= microseconds < 10**6`) |
/// | 86 | `timezone` | `[offset, name]`: offset a timedelta ext (85), name a str or nil |
/// | 87 | `int` outside `[-2**63, 2**64-1]` | little-endian two's complement bytes (pickle's `LONG1` payload) |
pub mod ext {
    use rmpv::Value;

    /// msgpack's timestamp extension: aware UTC datetimes.
    pub const TIMESTAMP: i8 = -1;
    /// `tuple`.
    pub const TUPLE: i8 = 80;
    /// `set`.
    pub const SET: i8 = 81;
    /// `frozenset`.
    pub const FROZENSET: i8 = 82;
    /// `datetime.datetime` other than aware UTC.
    pub const DATETIME: i8 = 83;
    /// `datetime.date`.
    pub const DATE: i8 = 84;
    /// `datetime.timedelta`.
    pub const TIMEDELTA: i8 = 85;
    /// `datetime.timezone`.
    pub const TIMEZONE: i8 = 86;
    /// `int` too large for msgpack.
    pub const BIGINT: i8 = 87;

    /// A msgpack ext of `code` whose payload is the array `items`.
    pub(crate) fn pack(code: i8, items: Vec<Value>) -> Value {
        let mut payload = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = rmpv::encode::write_value(&mut payload, &Value::Array(items));
        Value::Ext(code, payload)
    }

    /// A Python `tuple` of `items` (a flash message is `tuple(["message", "Saved"])`).
    pub fn tuple(items: Vec<Value>) -> Value {
        pack(TUPLE, items)
    }

    /// A Python `set` of `items`; items must be hashable in Python (no lists, dicts, sets).
    pub fn set(items: Vec<Value>) -> Value {
        pack(SET, items)
    }

    /// A Python `frozenset` of `items`; items must be hashable in Python.
    pub fn frozenset(items: Vec<Value>) -> Value {
        pack(FROZENSET, items)
    }

    /// The items of a tuple, set or frozenset value; `None` for any other value or a
    /// malformed payload.
    pub fn items(value: &Value) -> Option<Vec<Value>> {
        match value {
            Value::Ext(TUPLE | SET | FROZENSET, payload) => super::py::payload_array(payload).ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
