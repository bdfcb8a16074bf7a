//! Serialization formats: MessagePack (default) and JSON, byte-compatible with
//! Flask-Session's msgspec encoders.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::data::{SessionData, Value};
use crate::error::ConfigError;

/// The format session data is written in (`SESSION_SERIALIZATION_FORMAT`).
///
/// Reading always tries the configured format first and then the other one, as
/// Flask-Session does, so switching formats logs nobody out.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SerializationFormat {
    /// MessagePack, as msgspec writes it.
    #[default]
    Msgpack,
    /// Compact UTF-8 JSON, as msgspec writes it.
    Json,
}

/// Why stored bytes could not be decoded as a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored session data is neither a msgpack map nor a JSON object ({0})")]
pub struct DecodeError(String);

impl SerializationFormat {
    /// Encodes `data`; only maps are ever written.
    pub fn encode(self, data: &SessionData) -> Result<Vec<u8>, String> {
        match self {
            SerializationFormat::Msgpack => Ok(encode_msgpack(data)),
            SerializationFormat::Json => serde_json::to_vec(&JsonData {
                data,
                show_ext: false,
            })
            .map_err(|e| e.to_string()),
        }
    }

    /// Decodes stored bytes: the configured format first, then the other one.
    pub fn decode(self, bytes: &[u8]) -> Result<SessionData, DecodeError> {
        let (first, second) = match self {
            SerializationFormat::Msgpack => (decode_msgpack as Decoder, decode_json as Decoder),
            SerializationFormat::Json => (decode_json as Decoder, decode_msgpack as Decoder),
        };
        first(bytes).or_else(|first_error| {
            second(bytes).map_err(|second_error| {
                DecodeError(format!(
                    "{self}: {first_error}; other format: {second_error}"
                ))
            })
        })
    }
}

type Decoder = fn(&[u8]) -> Result<SessionData, String>;

impl fmt::Display for SerializationFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SerializationFormat::Msgpack => "msgpack",
            SerializationFormat::Json => "json",
        })
    }
}

impl FromStr for SerializationFormat {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "msgpack" => Ok(SerializationFormat::Msgpack),
            "json" => Ok(SerializationFormat::Json),
            other => Err(ConfigError::new(
                "SESSION_SERIALIZATION_FORMAT",
                format!("{other:?} is not one of \"msgpack\", \"json\""),
            )),
        }
    }
}

fn encode_msgpack(data: &SessionData) -> Vec<u8> {
    // Sized up front: growing from a small buffer cost three reallocations per write.
    let mut out = Vec::with_capacity(msgpack_size_hint(data));
    // Writes into a Vec cannot fail.
    let _ = rmp::encode::write_map_len(&mut out, data.len() as u32);
    for (key, value) in data.iter() {
        let _ = rmp::encode::write_str(&mut out, key);
        let _ = rmpv::encode::write_value(&mut out, value);
    }
    for (key, value) in data.foreign_entries() {
        let _ = rmpv::encode::write_value(&mut out, key);
        let _ = rmpv::encode::write_value(&mut out, value);
    }
    out
}

/// At least the msgpack size of `data`.
fn msgpack_size_hint(data: &SessionData) -> usize {
    5 + data
        .iter()
        .map(|(key, value)| 5 + key.len() + encoded_size_hint(value))
        .sum::<usize>()
        + data
            .foreign_entries()
            .iter()
            .map(|(key, value)| encoded_size_hint(key) + encoded_size_hint(value))
            .sum::<usize>()
}

/// At least the msgpack size of `value` (headers at their largest), without encoding it.
fn encoded_size_hint(value: &Value) -> usize {
    match value {
        Value::String(s) => 5 + s.as_bytes().len(),
        Value::Binary(b) => 5 + b.len(),
        Value::Array(items) => 5 + items.iter().map(encoded_size_hint).sum::<usize>(),
        Value::Map(entries) => {
            5 + entries
                .iter()
                .map(|(k, v)| encoded_size_hint(k) + encoded_size_hint(v))
                .sum::<usize>()
        }
        Value::Ext(_, b) => 6 + b.len(),
        _ => 9,
    }
}

/// Nesting deeper than this is refused rather than risking the stack on hostile data.
const MAX_DEPTH: usize = 256;

fn decode_msgpack(bytes: &[u8]) -> Result<SessionData, String> {
    let mut reader = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH)
        .map_err(|e| e.to_string())?;
    if !reader.is_empty() {
        return Err("trailing bytes after the msgpack value".into());
    }
    let Value::Map(entries) = value else {
        return Err("top level is not a map".into());
    };
    let mut data = SessionData::new();
    for (key, value) in entries {
        match key {
            Value::String(s) if s.is_str() => {
                data.insert(s.into_str().unwrap_or_default(), value);
            }
            other => data.push_foreign(other, value),
        }
    }
    Ok(data)
}

fn decode_json(bytes: &[u8]) -> Result<SessionData, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(map) = value else {
        return Err("top level is not an object".into());
    };
    Ok(map
        .into_iter()
        .map(|(key, value)| (key, json_to_value(value)))
        .collect())
}

fn json_to_value(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s),
        serde_json::Value::Array(items) => {
            Value::Array(items.into_iter().map(json_to_value).collect())
        }
        serde_json::Value::Object(map) => Value::Map(
            map.into_iter()
                .map(|(k, v)| (Value::from(k), json_to_value(v)))
                .collect(),
        ),
    }
}

impl SessionData {
    /// The data as a JSON object for display, with the same conversions as the JSON format
    /// (binary as base64, timestamps as RFC 3339, non-string keys as text); other msgpack
    /// extension types, which the JSON format cannot write, and malformed timestamps show
    /// as `{"$ext": type, "base64": payload}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.json_view()).unwrap_or(serde_json::Value::Null)
    }

    /// The display form of [`SessionData::to_json`], serialized straight from the data:
    /// `axum::Json(data.json_view())` writes the response body without building a
    /// `serde_json::Value` first.
    pub fn json_view(&self) -> JsonView<'_> {
        JsonView(JsonData {
            data: self,
            show_ext: true,
        })
    }
}

/// Session data serialized for display, as [`SessionData::to_json`] shows it; from
/// [`SessionData::json_view`]. Its serialization does not fail.
pub struct JsonView<'a>(JsonData<'a>);

impl Serialize for JsonView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Serializes session data the way msgspec's JSON encoder does.
struct JsonData<'a> {
    data: &'a SessionData,
    /// Show extension types JSON has no form for, instead of failing (display only).
    show_ext: bool,
}

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = |value| JsonValue(value, self.show_ext);
        let mut map = serializer.serialize_map(Some(self.data.len()))?;
        for (key, item) in self.data.iter() {
            map.serialize_entry(key, &value(item))?;
        }
        for (key, item) in self.data.foreign_entries() {
            map.serialize_entry(&json_key(key), &value(item))?;
        }
        map.end()
    }
}

struct JsonValue<'a>(&'a Value, bool);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Nil => serializer.serialize_unit(),
            Value::Boolean(b) => serializer.serialize_bool(*b),
            Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
                (Some(u), _) => serializer.serialize_u64(u),
                (_, Some(n)) => serializer.serialize_i64(n),
                _ => serializer.serialize_unit(),
            },
            // serde_json writes non-finite floats as null, as msgspec does.
            Value::F32(f) => serializer.serialize_f32(*f),
            Value::F64(f) => serializer.serialize_f64(*f),
            Value::String(s) => match s.as_str() {
                Some(text) => serializer.serialize_str(text),
                None => serializer.serialize_str(&String::from_utf8_lossy(s.as_bytes())),
            },
            Value::Binary(bytes) => serializer.serialize_str(&STANDARD.encode(bytes)),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&JsonValue(item, self.1))?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(&json_key(key), &JsonValue(value, self.1))?;
                }
                map.end()
            }
            Value::Ext(kind, payload) => {
                if *kind == -1 {
                    if let Some(text) = timestamp_rfc3339(payload) {
                        return serializer.serialize_str(&text);
                    }
                }
                if self.1 {
                    let mut map = serializer.serialize_map(Some(2))?;
                    map.serialize_entry("$ext", kind)?;
                    map.serialize_entry("base64", &STANDARD.encode(payload))?;
                    map.end()
                } else if *kind == -1 {
                    Err(serde::ser::Error::custom("malformed msgpack timestamp"))
                } else {
                    Err(serde::ser::Error::custom(format!(
                        "msgpack extension type {kind} has no JSON form"
                    )))
                }
            }
        }
    }
}

/// msgspec writes non-string map keys as their text.
fn json_key(key: &Value) -> String {
    match key {
        Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Value::Integer(i) => i.to_string(),
        Value::F64(f) => f.to_string(),
        Value::F32(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Nil => "null".to_owned(),
        other => other.to_string(),
    }
}

fn timestamp_rfc3339(payload: &[u8]) -> Option<String> {
    let (seconds, nanos) = crate::timestamp::decode(payload)?;
    let at = time::OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    let (y, m, d) = (at.year(), at.month() as u8, at.day());
    let (hh, mm, ss) = (at.hour(), at.minute(), at.second());
    let fraction = match nanos {
        0 => String::new(),
        n if n % 1000 == 0 => format!(".{:06}", n / 1000),
        n => format!(".{n:09}"),
    };
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{fraction}Z"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// msgspec 0.19 encoding of a Flask session with every type Flask apps write:
    /// `{"_permanent": True, "user_id": 42, "big": 2**64-1, "neg": -129, "ratio": 0.5,
    ///   "blob": b"\x00\x01\xff", "nested": {1: "one", "k": [1, 2.0, None]},
    ///   "when": datetime(2024,1,2,3,4,5,123456, tzinfo=utc),
    ///   "_flashes": [["message", "Welcome " + "x"*40]], "csrf_token": "a"*40, "_fresh": False}`
    const FLASK_MSGPACK: &str = "8baa5f7065726d616e656e74c3a7757365725f69642aa3626967cfffffffffffffffffa36e6567d1ff7fa5726174696fcb3fe0000000000000a4626c6f62c4030001ffa66e65737465648201a36f6e65a16b9301cb4000000000000000c0a47768656ed7ff1d6f280065937d25a85f666c61736865739192a76d657373616765d93057656c636f6d652078787878787878787878787878787878787878787878787878787878787878787878787878787878aa637372665f746f6b656ed92861616161616161616161616161616161616161616161616161616161616161616161616161616161a65f6672657368c2";

    #[test]
    fn flask_msgpack_round_trips_byte_for_byte() {
        let bytes = hex(FLASK_MSGPACK);
        let data = SerializationFormat::Msgpack.decode(&bytes).unwrap();
        assert!(data.is_permanent());
        assert_eq!(data.get("big"), Some(&Value::from(u64::MAX)));
        assert_eq!(data.get("ratio"), Some(&Value::F64(0.5)));
        assert_eq!(data.get("blob"), Some(&Value::Binary(vec![0, 1, 255])));
        assert!(matches!(data.get("when"), Some(Value::Ext(-1, _))));
        assert_eq!(SerializationFormat::Msgpack.encode(&data).unwrap(), bytes);
    }

    #[test]
    fn the_encode_buffer_is_sized_once() {
        let mut data = SerializationFormat::Msgpack
            .decode(&hex(FLASK_MSGPACK))
            .unwrap();
        data.insert("long", Value::from("x".repeat(70_000)));
        data.insert("big", Value::from(u64::MAX));
        data.insert("float", Value::F64(0.5));
        data.insert(
            "nested",
            Value::Map(vec![(
                Value::from(1),
                Value::Array(vec![
                    Value::Binary(vec![7; 300]),
                    Value::Ext(5, vec![1; 20]),
                ]),
            )]),
        );
        data.push_foreign(Value::from(-7), Value::from("foreign"));
        let encoded = encode_msgpack(&data);
        // A buffer that had to grow would have more than the estimate.
        assert_eq!(encoded.capacity(), msgpack_size_hint(&data));
        assert!(encoded.len() <= encoded.capacity());
        assert_eq!(SerializationFormat::Msgpack.decode(&encoded).unwrap(), data);
    }

    #[test]
    fn read_modify_write_keeps_other_values_untouched() {
        let bytes = hex(FLASK_MSGPACK);
        let mut data = SerializationFormat::Msgpack.decode(&bytes).unwrap();
        data.insert("user_id", Value::from(43));
        let written = SerializationFormat::Msgpack.encode(&data).unwrap();
        let mut back = SerializationFormat::Msgpack.decode(&written).unwrap();
        back.insert("user_id", Value::from(42));
        assert_eq!(SerializationFormat::Msgpack.encode(&back).unwrap(), bytes);
    }

    #[test]
    fn other_extensions_show_in_json_but_are_never_written_as_json() {
        let mut data = SessionData::new();
        data.insert("flashes", Value::Ext(80, vec![0x92, 0x01, 0x02]));
        assert_eq!(
            data.to_json(),
            serde_json::json!({"flashes": {"$ext": 80, "base64": "kgEC"}})
        );
        assert!(SerializationFormat::Json.encode(&data).is_err());
    }

    #[test]
    fn the_json_view_writes_what_to_json_shows_and_never_fails() {
        let mut data = SessionData::new();
        data.insert("user", Value::from("ann"));
        data.insert("n", Value::from(3));
        data.insert("blob", Value::Binary(vec![1, 2, 3]));
        data.insert("at", Value::Ext(-1, vec![0, 0, 0, 0]));
        // A timestamp payload of a length msgpack does not define.
        data.insert("bad", Value::Ext(-1, vec![1, 2, 3]));
        data.insert("flashes", Value::Ext(80, vec![0x92, 0x01, 0x02]));
        let text = serde_json::to_string(&data.json_view()).expect("display never fails");
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, data.to_json());
        assert_eq!(parsed["at"], "1970-01-01T00:00:00Z");
        assert_eq!(
            parsed["bad"],
            serde_json::json!({"$ext": -1, "base64": "AQID"})
        );
        // Stored as JSON, the malformed timestamp is still an error, never written.
        assert!(SerializationFormat::Json.encode(&data).is_err());
    }

    /// Found by the `stored_data` fuzz target: without a correctly rounded float parser
    /// this float came back one ulp off, so every JSON save changed it.
    #[test]
    fn json_floats_survive_a_write_and_a_read() {
        let stored = br#"{"":144777777777777777775}"#;
        let data = SerializationFormat::Json.decode(stored).unwrap();
        let written = SerializationFormat::Json.encode(&data).unwrap();
        let again = SerializationFormat::Json.decode(&written).unwrap();
        assert_eq!(again.get(""), data.get(""));
        assert_eq!(SerializationFormat::Json.encode(&again).unwrap(), written);
    }

    #[test]
    fn json_matches_msgspec_output() {
        let data = SerializationFormat::Msgpack
            .decode(&hex(FLASK_MSGPACK))
            .unwrap();
        let json = String::from_utf8(SerializationFormat::Json.encode(&data).unwrap()).unwrap();
        assert!(json.starts_with(r#"{"_permanent":true,"user_id":42,"big":18446744073709551615,"neg":-129,"ratio":0.5,"blob":"AAH/","nested":{"1":"one","k":[1,2.0,null]},"when":"2024-01-02T03:04:05.123456Z""#), "{json}");
        let compact = r#"{"f":1.0,"s":"é"}"#;
        let parsed = SerializationFormat::Json
            .decode(compact.as_bytes())
            .unwrap();
        assert_eq!(
            SerializationFormat::Json.encode(&parsed).unwrap(),
            compact.as_bytes()
        );
        // Exponents are written `1e+20` where msgspec writes `1e20`: the same JSON number.
        let big = SerializationFormat::Json.decode(br#"{"e":1e20}"#).unwrap();
        let written = SerializationFormat::Json.encode(&big).unwrap();
        assert_eq!(SerializationFormat::Json.decode(&written).unwrap(), big);
    }

    #[test]
    fn decode_falls_back_to_the_other_format() {
        let json = br#"{"_permanent":true,"user":"ann"}"#;
        let data = SerializationFormat::Msgpack.decode(json).unwrap();
        assert_eq!(data.get("user"), Some(&Value::from("ann")));
        let msgpack = SerializationFormat::Msgpack.encode(&data).unwrap();
        assert_eq!(SerializationFormat::Json.decode(&msgpack).unwrap(), data);
    }

    #[test]
    fn garbage_and_non_maps_are_decode_errors() {
        for bad in [
            &b""[..],
            b"\x80\x04\x95pickle",
            b"[1,2]",
            b"\x93\x01\x02\x03",
            b"\x81\xa1a",
            b"{\"a\":1} trailing",
            b"\xc1",
        ] {
            assert!(SerializationFormat::Msgpack.decode(bad).is_err(), "{bad:?}");
            assert!(SerializationFormat::Json.decode(bad).is_err(), "{bad:?}");
        }
        // Hostile nesting is refused, not a stack overflow.
        let mut deep = vec![0x81, 0xa1, b'a'];
        deep.extend(std::iter::repeat_n(0x91, 100_000));
        deep.push(0xc0);
        assert!(SerializationFormat::Msgpack.decode(&deep).is_err());
    }

    #[test]
    fn format_names_parse_and_bad_ones_name_the_option() {
        assert_eq!(
            "JSON".parse::<SerializationFormat>().unwrap(),
            SerializationFormat::Json
        );
        let error = "pickle".parse::<SerializationFormat>().unwrap_err();
        assert_eq!(error.option, "SESSION_SERIALIZATION_FORMAT");
    }
}
