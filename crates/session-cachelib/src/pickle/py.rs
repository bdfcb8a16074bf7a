//! Python's `datetime` values as data: their pickle state, their ext payloads, and the
//! checks Python's constructors make.

use rmpv::Value;

use super::ext;
use super::{PickleError, MAX_DEPTH};

/// Python's `timedelta(days, seconds, microseconds)`, normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Delta {
    pub days: i32,
    pub seconds: i32,
    pub micros: i32,
}

/// `timedelta.max.days`.
const MAX_DAYS: i64 = 999_999_999;

impl Delta {
    /// The normalised fields Python pickles; anything else (which Python never writes) is
    /// refused rather than normalised here.
    pub fn new(days: i64, seconds: i64, micros: i64) -> Result<Delta, String> {
        if !(-MAX_DAYS..=MAX_DAYS).contains(&days)
            || !(0..86_400).contains(&seconds)
            || !(0..1_000_000).contains(&micros)
        {
            return Err("timedelta fields out of range".into());
        }
        Ok(Delta {
            days: days as i32,
            seconds: seconds as i32,
            micros: micros as i32,
        })
    }

    fn is_zero(self) -> bool {
        self.days == 0 && self.seconds == 0 && self.micros == 0
    }

    /// Python's `timezone` accepts offsets strictly between -24 h and +24 h.
    pub fn is_valid_offset(self) -> bool {
        self.days == 0 || (self.days == -1 && (self.seconds > 0 || self.micros > 0))
    }

    pub fn to_value(self) -> Value {
        ext::pack(
            ext::TIMEDELTA,
            vec![
                Value::from(self.days),
                Value::from(self.seconds),
                Value::from(self.micros),
            ],
        )
    }

    pub fn from_payload(payload: &[u8]) -> Result<Delta, String> {
        match payload_array(payload)?.as_slice() {
            [days, seconds, micros] => Delta::new(int(days)?, int(seconds)?, int(micros)?),
            _ => Err("timedelta payload is not [days, seconds, microseconds]".into()),
        }
    }
}

/// Python's `datetime.timezone(offset, name)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Zone {
    pub offset: Delta,
    pub name: Option<String>,
}

impl Zone {
    pub fn new(offset: Delta, name: Option<String>) -> Result<Zone, String> {
        if !offset.is_valid_offset() {
            return Err("timezone offset not strictly between -24 and +24 hours".into());
        }
        Ok(Zone { offset, name })
    }

    /// `timezone.utc`, which is what `timezone(timedelta(0))` unpickles to.
    pub fn utc() -> Zone {
        Zone {
            offset: Delta {
                days: 0,
                seconds: 0,
                micros: 0,
            },
            name: None,
        }
    }

    pub fn is_utc(&self) -> bool {
        self.offset.is_zero() && self.name.is_none()
    }

    pub fn to_value(&self) -> Value {
        ext::pack(
            ext::TIMEZONE,
            vec![
                self.offset.to_value(),
                self.name.clone().map_or(Value::Nil, Value::from),
            ],
        )
    }

    pub fn from_value(value: &Value) -> Result<Zone, String> {
        let Value::Ext(ext::TIMEZONE, payload) = value else {
            return Err("tzinfo is not a timezone ext".into());
        };
        Zone::from_payload(payload)
    }

    pub fn from_payload(payload: &[u8]) -> Result<Zone, String> {
        let items = payload_array(payload)?;
        let [offset, name] = items.as_slice() else {
            return Err("timezone payload is not [offset, name]".into());
        };
        let Value::Ext(ext::TIMEDELTA, offset) = offset else {
            return Err("timezone offset is not a timedelta ext".into());
        };
        let name = match name {
            Value::Nil => None,
            Value::String(text) => Some(
                text.as_str()
                    .ok_or("timezone name is not UTF-8")?
                    .to_owned(),
            ),
            _ => return Err("timezone name is neither a str nor nil".into()),
        };
        Zone::new(Delta::from_payload(offset)?, name)
    }
}

/// Python's `date`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    pub fn new(year: i64, month: i64, day: i64) -> Result<Date, String> {
        if !(1..=9999).contains(&year) {
            return Err("year outside Python's 1 to 9999".into());
        }
        let month_enum = u8::try_from(month)
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .ok_or("month outside 1 to 12")?;
        let day = u8::try_from(day).map_err(|_| "day out of range")?;
        time::Date::from_calendar_date(year as i32, month_enum, day)
            .map_err(|_| "day out of range for the month")?;
        Ok(Date {
            year: year as u16,
            month: month as u8,
            day,
        })
    }

    /// `date.__reduce__`'s state: year (big-endian u16), month, day.
    pub fn from_state(state: &[u8]) -> Result<Date, String> {
        let [y1, y2, month, day] = state else {
            return Err("date state is not 4 bytes".into());
        };
        Date::new(
            i64::from(u16::from_be_bytes([*y1, *y2])),
            i64::from(*month),
            i64::from(*day),
        )
    }

    pub fn state(self) -> [u8; 4] {
        let [y1, y2] = self.year.to_be_bytes();
        [y1, y2, self.month, self.day]
    }

    pub fn to_value(self) -> Value {
        ext::pack(
            ext::DATE,
            vec![
                Value::from(self.year),
                Value::from(self.month),
                Value::from(self.day),
            ],
        )
    }

    pub fn from_payload(payload: &[u8]) -> Result<Date, String> {
        match payload_array(payload)?.as_slice() {
            [year, month, day] => Date::new(int(year)?, int(month)?, int(day)?),
            _ => Err("date payload is not [year, month, day]".into()),
        }
    }

    fn calendar(self) -> Option<time::Date> {
        time::Date::from_calendar_date(
            i32::from(self.year),
            time::Month::try_from(self.month).ok()?,
            self.day,
        )
        .ok()
    }
}

/// Python's `datetime`: a date, a time of day, `fold` and an optional fixed-offset zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DateTime {
    pub date: Date,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
    pub fold: bool,
    pub zone: Option<Zone>,
}

/// Days from 0001-01-01 (Julian day 1721426) to 1970-01-01 (Julian day 2440588) are
/// counted through `time`'s Julian day numbers.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

impl DateTime {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        date: Date,
        hour: i64,
        minute: i64,
        second: i64,
        micros: i64,
        fold: bool,
        zone: Option<Zone>,
    ) -> Result<DateTime, String> {
        if !(0..24).contains(&hour)
            || !(0..60).contains(&minute)
            || !(0..60).contains(&second)
            || !(0..1_000_000).contains(&micros)
        {
            return Err("time of day out of range".into());
        }
        Ok(DateTime {
            date,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
            micros: micros as u32,
            fold,
            zone,
        })
    }

    /// `datetime.__reduce_ex__`'s state: the date's 4 bytes, hour, minute, second and the
    /// microseconds as a big-endian u24; `fold` is the high bit of the month byte.
    pub fn from_state(state: &[u8], zone: Option<Zone>) -> Result<DateTime, String> {
        let [y1, y2, month, day, hour, minute, second, u1, u2, u3] = state else {
            return Err("datetime state is not 10 bytes".into());
        };
        let date = Date::from_state(&[*y1, *y2, month & 0x7f, *day])?;
        let micros = u32::from_be_bytes([0, *u1, *u2, *u3]);
        DateTime::new(
            date,
            i64::from(*hour),
            i64::from(*minute),
            i64::from(*second),
            i64::from(micros),
            month & 0x80 != 0,
            zone,
        )
    }

    pub fn state(&self) -> [u8; 10] {
        let [y1, y2, month, day] = self.date.state();
        let [_, u1, u2, u3] = self.micros.to_be_bytes();
        let month = month | if self.fold { 0x80 } else { 0 };
        [
            y1,
            y2,
            month,
            day,
            self.hour,
            self.minute,
            self.second,
            u1,
            u2,
            u3,
        ]
    }

    /// Aware UTC datetimes become msgpack timestamps, as Flask-Session's msgpack format
    /// writes them; everything else keeps its fields in this crate's ext.
    pub fn to_value(&self) -> Value {
        if !self.fold && self.zone.as_ref().is_some_and(Zone::is_utc) {
            if let Some((seconds, nanos)) = self.unix() {
                return timestamp(seconds, nanos);
            }
        }
        ext::pack(
            ext::DATETIME,
            vec![
                Value::from(self.date.year),
                Value::from(self.date.month),
                Value::from(self.date.day),
                Value::from(self.hour),
                Value::from(self.minute),
                Value::from(self.second),
                Value::from(self.micros),
                Value::Boolean(self.fold),
                self.zone.as_ref().map_or(Value::Nil, Zone::to_value),
            ],
        )
    }

    pub fn from_payload(payload: &[u8]) -> Result<DateTime, String> {
        let items = payload_array(payload)?;
        let [year, month, day, hour, minute, second, micros, fold, zone] = items.as_slice() else {
            return Err("datetime payload does not have its 9 fields".into());
        };
        let Value::Boolean(fold) = fold else {
            return Err("datetime fold is not a bool".into());
        };
        let zone = match zone {
            Value::Nil => None,
            other => Some(Zone::from_value(other)?),
        };
        DateTime::new(
            Date::new(int(year)?, int(month)?, int(day)?)?,
            int(hour)?,
            int(minute)?,
            int(second)?,
            int(micros)?,
            *fold,
            zone,
        )
    }

    /// Seconds since the Unix epoch and nanoseconds of the wall-clock fields read as UTC.
    fn unix(&self) -> Option<(i64, u32)> {
        let days = self.date.calendar()?.to_julian_day() as i64 - UNIX_EPOCH_JULIAN_DAY;
        let seconds = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        Some((seconds, self.micros * 1000))
    }

    /// The aware UTC datetime of a msgpack timestamp; nanoseconds are cut to Python's
    /// microseconds.
    pub fn from_timestamp(payload: &[u8]) -> Result<DateTime, String> {
        let (seconds, nanos) = decode_timestamp(payload).ok_or("malformed msgpack timestamp")?;
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400);
        let julian = i32::try_from(days + UNIX_EPOCH_JULIAN_DAY)
            .map_err(|_| "timestamp outside Python's years 1 to 9999")?;
        let date = time::Date::from_julian_day(julian)
            .map_err(|_| "timestamp outside Python's years 1 to 9999")?;
        DateTime::new(
            Date::new(
                i64::from(date.year()),
                i64::from(u8::from(date.month())),
                i64::from(date.day()),
            )
            .map_err(|_| "timestamp outside Python's years 1 to 9999")?,
            in_day / 3600,
            in_day % 3600 / 60,
            in_day % 60,
            i64::from(nanos / 1000),
            false,
            Some(Zone::utc()),
        )
    }
}

use session_core::timestamp::{decode as decode_timestamp, encode as timestamp};

/// The items of an ext payload that must be one msgpack array and nothing else. Each
/// payload is decoded on its own with the depth limit; callers that descend into the items
/// count their own depth.
pub(crate) fn payload_array(payload: &[u8]) -> Result<Vec<Value>, String> {
    let mut reader = payload;
    let value = rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH)
        .map_err(|_| "ext payload is not a msgpack value")?;
    if !reader.is_empty() {
        return Err("trailing bytes after an ext payload".into());
    }
    match value {
        Value::Array(items) => Ok(items),
        _ => Err("ext payload is not a msgpack array".into()),
    }
}

fn int(value: &Value) -> Result<i64, String> {
    value
        .as_i64()
        .ok_or_else(|| "a datetime field is not a small integer".to_owned())
}

impl From<String> for PickleError {
    fn from(message: String) -> Self {
        PickleError::new(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_the_shortest_form_and_read_back() {
        for (seconds, nanos, len) in [
            (0, 0, 4),
            (1_704_164_645, 0, 4),
            (1_704_164_645, 123_456_000, 8),
            (-62_135_596_800, 0, 12),
            (1 << 34, 5, 12),
        ] {
            let Value::Ext(-1, payload) = timestamp(seconds, nanos) else {
                panic!("not a timestamp");
            };
            assert_eq!(payload.len(), len, "{seconds} {nanos}");
            assert_eq!(decode_timestamp(&payload), Some((seconds, nanos)));
        }
        assert_eq!(decode_timestamp(&[0; 5]), None);
        // Nanoseconds of a second or more are malformed.
        let mut bad = 1_000_000_000u32.to_be_bytes().to_vec();
        bad.extend_from_slice(&0i64.to_be_bytes());
        assert_eq!(decode_timestamp(&bad), None);
    }

    #[test]
    fn utc_datetimes_convert_both_ways_across_the_whole_range() {
        for (y, m, d, hh, mm, ss, us) in [
            (1, 1, 1, 0, 0, 0, 0),
            (1969, 12, 31, 23, 59, 59, 999_999),
            (1970, 1, 1, 0, 0, 0, 0),
            (2024, 2, 29, 3, 4, 5, 123_456),
            (9999, 12, 31, 23, 59, 59, 999_999),
        ] {
            let dt = DateTime::new(
                Date::new(y, m, d).unwrap(),
                hh,
                mm,
                ss,
                us,
                false,
                Some(Zone::utc()),
            )
            .unwrap();
            let Value::Ext(-1, payload) = dt.to_value() else {
                panic!("aware UTC is not a timestamp");
            };
            assert_eq!(DateTime::from_timestamp(&payload).unwrap(), dt);
        }
        // 2024-01-02T03:04:05Z, as msgspec encodes it.
        let known = DateTime::from_timestamp(&[0x65, 0x93, 0x7d, 0x25]).unwrap();
        assert_eq!(
            (known.date, known.hour, known.minute, known.second),
            (Date::new(2024, 1, 2).unwrap(), 3, 4, 5)
        );
        // One second before 0001-01-01 (12-byte form: nanoseconds, then seconds).
        let mut before = 0u32.to_be_bytes().to_vec();
        before.extend_from_slice(&(-62_135_596_801i64).to_be_bytes());
        assert!(DateTime::from_timestamp(&before).is_err());
    }

    #[test]
    fn python_constructor_checks_are_kept() {
        assert!(Date::new(2023, 2, 29).is_err());
        assert!(Date::new(0, 1, 1).is_err());
        assert!(Date::new(10_000, 1, 1).is_err());
        assert!(Date::new(2024, 13, 1).is_err());
        assert!(Delta::new(0, 86_400, 0).is_err());
        assert!(Delta::new(1_000_000_000, 0, 0).is_err());
        assert!(Zone::new(Delta::new(-1, 0, 0).unwrap(), None).is_err());
        assert!(Zone::new(Delta::new(-1, 1, 0).unwrap(), None).is_ok());
        assert!(Zone::new(Delta::new(0, 86_399, 999_999).unwrap(), None).is_ok());
        let date = Date::new(2024, 1, 1).unwrap();
        assert!(DateTime::new(date, 24, 0, 0, 0, false, None).is_err());
        assert!(DateTime::new(date, 0, 0, 0, 1_000_000, false, None).is_err());
    }

    #[test]
    fn fold_lives_in_the_month_byte() {
        let state = [0x07, 0xe8, 0x81, 2, 3, 4, 5, 0, 0, 0];
        let dt = DateTime::from_state(&state, None).unwrap();
        assert!(dt.fold);
        assert_eq!(dt.date.month, 1);
        assert_eq!(dt.state(), state);
    }
}
