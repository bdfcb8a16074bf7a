//! The pickler: protocol 5, the opcodes Python's own pickler uses for the same types, in
//! one frame, without a memo (nothing is shared, so nothing needs one).

use std::borrow::Borrow;

use rmpv::Value;

use super::ext;
use super::py::{payload_array, Date, DateTime, Delta, Zone};
use super::read::shortest_le;
use super::{PickleError, MAX_DEPTH};

/// Python's pickler puts at most this many items between one MARK and its APPENDS,
/// SETITEMS or ADDITEMS.
const BATCH: usize = 1000;

/// Bytes of `PROTO 5` and of a FRAME header.
const PROTO_LEN: usize = 2;
const FRAME_HEADER_LEN: usize = 9;

pub(super) fn dumps(value: &Value) -> Result<Vec<u8>, PickleError> {
    framed(|writer| writer.value(value, 0))
}

pub(super) fn dumps_dict(entries: &[(Value, &Value)]) -> Result<Vec<u8>, PickleError> {
    framed(|writer| writer.dict(entries, 0))
}

/// PROTO 5, what `body` writes and STOP, in one frame.
fn framed(
    body: impl FnOnce(&mut Writer) -> Result<(), PickleError>,
) -> Result<Vec<u8>, PickleError> {
    let mut writer = Writer {
        out: Vec::with_capacity(64),
    };
    writer.out.extend_from_slice(&[0x80, 5]);
    writer.out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    body(&mut writer)?;
    writer.out.push(b'.');
    let body = writer.out.len() - PROTO_LEN - FRAME_HEADER_LEN;
    // As Python: one FRAME around everything after PROTO, unless that is under 4 bytes.
    if body >= 4 {
        writer.out[PROTO_LEN] = 0x95;
        writer.out[PROTO_LEN + 1..PROTO_LEN + FRAME_HEADER_LEN]
            .copy_from_slice(&(body as u64).to_le_bytes());
    } else {
        writer.out.drain(PROTO_LEN..PROTO_LEN + FRAME_HEADER_LEN);
    }
    Ok(writer.out)
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn value(&mut self, value: &Value, depth: usize) -> Result<(), PickleError> {
        if depth > MAX_DEPTH {
            return Err(PickleError::new(format!(
                "value nests deeper than {MAX_DEPTH} levels"
            )));
        }
        match value {
            Value::Nil => self.out.push(b'N'),
            Value::Boolean(true) => self.out.push(0x88),
            Value::Boolean(false) => self.out.push(0x89),
            Value::Integer(n) => match (n.as_u64(), n.as_i64()) {
                (Some(n), _) => self.int(i128::from(n)),
                (_, Some(n)) => self.int(i128::from(n)),
                _ => return Err(PickleError::new("integer out of msgpack's range")),
            },
            Value::F32(f) => self.float(f64::from(*f)),
            Value::F64(f) => self.float(*f),
            Value::String(text) => match text.as_str() {
                Some(text) => self.str(text),
                None => return Err(PickleError::new("a string that is not valid UTF-8")),
            },
            Value::Binary(bytes) => self.bytes(bytes),
            Value::Array(items) => self.list(items, depth)?,
            Value::Map(entries) => self.dict(entries, depth)?,
            Value::Ext(code, payload) => self.ext(*code, payload, depth)?,
        }
        Ok(())
    }

    fn ext(&mut self, code: i8, payload: &[u8], depth: usize) -> Result<(), PickleError> {
        match code {
            ext::TIMESTAMP => self.datetime(&DateTime::from_timestamp(payload)?),
            ext::TUPLE => {
                let items = payload_array(payload)?;
                self.tuple(&items, depth)?;
            }
            ext::SET => {
                let items = payload_array(payload)?;
                self.check_hashable(&items, depth)?;
                self.set(&items, depth)?;
            }
            ext::FROZENSET => {
                let items = payload_array(payload)?;
                self.check_hashable(&items, depth)?;
                self.out.push(b'(');
                for item in &items {
                    self.value(item, depth + 1)?;
                }
                self.out.push(0x91);
            }
            ext::DATETIME => self.datetime(&DateTime::from_payload(payload)?),
            ext::DATE => self.date(Date::from_payload(payload)?),
            ext::TIMEDELTA => self.delta(Delta::from_payload(payload)?),
            ext::TIMEZONE => self.zone(&Zone::from_payload(payload)?),
            ext::BIGINT => {
                if payload.is_empty() {
                    return Err(PickleError::new("empty big-int payload"));
                }
                self.long(&shortest_le(payload.to_vec()))?;
            }
            other => {
                return Err(PickleError::new(format!(
                    "msgpack extension type {other} has no Python equivalent"
                )))
            }
        }
        Ok(())
    }

    /// Python's choice of opcode for an int.
    fn int(&mut self, n: i128) {
        if let Ok(small) = u8::try_from(n) {
            self.out.extend_from_slice(&[b'K', small]);
        } else if let Ok(small) = u16::try_from(n) {
            self.out.push(b'M');
            self.out.extend_from_slice(&small.to_le_bytes());
        } else if let Ok(small) = i32::try_from(n) {
            self.out.push(b'J');
            self.out.extend_from_slice(&small.to_le_bytes());
        } else {
            // Beyond 32 bits; an i128 takes at most 16 bytes, so LONG1 always fits.
            let le = shortest_le(n.to_le_bytes().to_vec());
            self.out.extend_from_slice(&[0x8a, le.len() as u8]);
            self.out.extend_from_slice(&le);
        }
    }

    fn long(&mut self, le: &[u8]) -> Result<(), PickleError> {
        if let Ok(n) = u8::try_from(le.len()) {
            self.out.extend_from_slice(&[0x8a, n]);
        } else {
            // LONG4's size is a signed 32-bit int.
            let n = i32::try_from(le.len())
                .map_err(|_| PickleError::new("big-int payload over 2 GiB"))?;
            self.out.push(0x8b);
            self.out.extend_from_slice(&n.to_le_bytes());
        }
        self.out.extend_from_slice(le);
        Ok(())
    }

    fn float(&mut self, f: f64) {
        self.out.push(b'G');
        self.out.extend_from_slice(&f.to_be_bytes());
    }

    fn str(&mut self, text: &str) {
        self.sized(text.as_bytes(), 0x8c, b'X', 0x8d);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.sized(bytes, b'C', b'B', 0x8e);
    }

    /// A length-prefixed opcode: 1-byte length below 256, 4 bytes below 4 GiB, else 8.
    fn sized(&mut self, data: &[u8], short: u8, long: u8, huge: u8) {
        if let Ok(n) = u8::try_from(data.len()) {
            self.out.extend_from_slice(&[short, n]);
        } else if let Ok(n) = u32::try_from(data.len()) {
            self.out.push(long);
            self.out.extend_from_slice(&n.to_le_bytes());
        } else {
            self.out.push(huge);
            self.out
                .extend_from_slice(&(data.len() as u64).to_le_bytes());
        }
        self.out.extend_from_slice(data);
    }

    fn list(&mut self, items: &[Value], depth: usize) -> Result<(), PickleError> {
        self.out.push(b']');
        for batch in items.chunks(BATCH) {
            if let [item] = batch {
                self.value(item, depth + 1)?;
                self.out.push(b'a');
            } else {
                self.out.push(b'(');
                for item in batch {
                    self.value(item, depth + 1)?;
                }
                self.out.push(b'e');
            }
        }
        Ok(())
    }

    fn dict<V: Borrow<Value>>(
        &mut self,
        entries: &[(Value, V)],
        depth: usize,
    ) -> Result<(), PickleError> {
        self.out.push(b'}');
        for batch in entries.chunks(BATCH) {
            let many = batch.len() > 1;
            if many {
                self.out.push(b'(');
            }
            for (key, value) in batch {
                if !hashable(key, depth + 1)? {
                    return Err(PickleError::new(
                        "a dict key that Python cannot hash (a list, dict or set)",
                    ));
                }
                self.value(key, depth + 1)?;
                self.value(value.borrow(), depth + 1)?;
            }
            self.out.push(if many { b'u' } else { b's' });
        }
        Ok(())
    }

    fn tuple(&mut self, items: &[Value], depth: usize) -> Result<(), PickleError> {
        if items.is_empty() {
            self.out.push(b')');
            return Ok(());
        }
        let small = items.len() <= 3;
        if !small {
            self.out.push(b'(');
        }
        for item in items {
            self.value(item, depth + 1)?;
        }
        self.out.push(match items.len() {
            1 => 0x85,
            2 => 0x86,
            3 => 0x87,
            _ => b't',
        });
        Ok(())
    }

    fn set(&mut self, items: &[Value], depth: usize) -> Result<(), PickleError> {
        self.out.push(0x8f);
        for batch in items.chunks(BATCH) {
            self.out.push(b'(');
            for item in batch {
                self.value(item, depth + 1)?;
            }
            self.out.push(0x90);
        }
        Ok(())
    }

    fn check_hashable(&self, items: &[Value], depth: usize) -> Result<(), PickleError> {
        for item in items {
            if !hashable(item, depth + 1)? {
                return Err(PickleError::new(
                    "a set item that Python cannot hash (a list, dict or set)",
                ));
            }
        }
        Ok(())
    }

    /// `module.name` by STACK_GLOBAL, as protocol 4 and later write it.
    fn global(&mut self, module: &str, name: &str) {
        self.str(module);
        self.str(name);
        self.out.push(0x93);
    }

    fn datetime(&mut self, dt: &DateTime) {
        self.global("datetime", "datetime");
        self.bytes(&dt.state());
        match &dt.zone {
            Some(zone) => {
                self.zone(zone);
                self.out.push(0x86);
            }
            None => self.out.push(0x85),
        }
        self.out.push(b'R');
    }

    fn date(&mut self, date: Date) {
        self.global("datetime", "date");
        self.bytes(&date.state());
        self.out.extend_from_slice(&[0x85, b'R']);
    }

    fn delta(&mut self, delta: Delta) {
        self.global("datetime", "timedelta");
        self.int(i128::from(delta.days));
        self.int(i128::from(delta.seconds));
        self.int(i128::from(delta.micros));
        self.out.extend_from_slice(&[0x87, b'R']);
    }

    fn zone(&mut self, zone: &Zone) {
        self.global("datetime", "timezone");
        self.delta(zone.offset);
        match &zone.name {
            Some(name) => {
                self.str(name);
                self.out.push(0x86);
            }
            None => self.out.push(0x85),
        }
        self.out.push(b'R');
    }
}

/// Whether Python can hash the value `value` becomes: not lists, dicts, sets, nor tuples
/// holding one.
fn hashable(value: &Value, depth: usize) -> Result<bool, PickleError> {
    if depth > MAX_DEPTH {
        return Err(PickleError::new(format!(
            "value nests deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(match value {
        Value::Array(_) | Value::Map(_) | Value::Ext(ext::SET, _) => false,
        Value::Ext(ext::TUPLE, payload) => {
            for item in payload_array(payload)? {
                if !hashable(&item, depth + 1)? {
                    return Ok(false);
                }
            }
            true
        }
        _ => true,
    })
}
