//! Naive-UTC timestamps as Flask-Session stores them (`datetime.utcnow()` + lifetime).
//!
//! "Now" is always computed here and sent as a parameter, so the database server's time
//! zone and clock never matter, exactly as with Flask-Session.

use std::time::{Duration, SystemTime};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The latest expiry written: four-digit years keep SQLite's text timestamps ordered and
/// MySQL's `DATETIME` ends at 9999.
fn latest() -> PrimitiveDateTime {
    PrimitiveDateTime::new(
        Date::MAX.replace_year(9999).unwrap_or(Date::MAX),
        Time::MIDNIGHT,
    )
}

/// The current UTC time without offset, cut to microseconds (what the databases keep).
pub(crate) fn now_utc() -> PrimitiveDateTime {
    let now = OffsetDateTime::now_utc();
    truncate_to_micros(PrimitiveDateTime::new(now.date(), now.time()))
}

fn truncate_to_micros(at: PrimitiveDateTime) -> PrimitiveDateTime {
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(at)
}

/// `now + ttl`, clamped to the year 9999 for absurdly long lifetimes.
pub(crate) fn expiry_after(now: PrimitiveDateTime, ttl: Duration) -> PrimitiveDateTime {
    time::Duration::try_from(ttl)
        .ok()
        .and_then(|ttl| now.checked_add(ttl))
        .map(truncate_to_micros)
        .map_or_else(latest, |at| at.min(latest()))
}

/// The next whole second (or `at` when it is one): MySQL's `DATETIME` keeps no fraction,
/// and rounding an expiry up means an entry never lives shorter than its TTL.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) fn ceil_to_second(at: PrimitiveDateTime) -> PrimitiveDateTime {
    if at.nanosecond() == 0 {
        return at;
    }
    at.replace_nanosecond(0)
        .ok()
        .and_then(|floor| floor.checked_add(time::Duration::SECOND))
        .map_or_else(latest, |ceil| ceil.min(latest()))
}

/// A timestamp as a SystemTime, reading the naive value as UTC.
pub(crate) fn to_system_time(at: PrimitiveDateTime) -> SystemTime {
    at.assume_utc().into()
}

/// PostgreSQL keeps microseconds in `TIMESTAMP`.
#[cfg(feature = "postgres")]
pub(crate) fn postgres_stamp(at: PrimitiveDateTime) -> PrimitiveDateTime {
    at
}

/// Flask-Session's MySQL column is `DATETIME` (whole seconds). Expiries are already whole
/// ([`ceil_to_second`]); cutting the fraction of "now" here keeps comparisons exact
/// (`expiry > floor(now)` ⇔ `expiry > now` for a whole-second expiry) whatever the server
/// would do with a fraction (MySQL rounds, MariaDB truncates).
#[cfg(feature = "mysql")]
pub(crate) fn mysql_stamp(at: PrimitiveDateTime) -> PrimitiveDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

/// SQLite has no date type; SQLAlchemy stores `DateTime` as text
/// `YYYY-MM-DD HH:MM:SS.ffffff` and compares it as text, so do we.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_stamp(at: PrimitiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

/// Parses SQLAlchemy's SQLite text timestamps (`YYYY-MM-DD HH:MM:SS[.f…]`, a `T` between
/// date and time also accepted). `None` for anything else.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn parse_sqlite(text: &str) -> Option<PrimitiveDateTime> {
    let text = text.trim();
    let (date, clock) = text.split_once([' ', 'T'])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i32 = date_parts.next()?.parse().ok()?;
    let month: u8 = date_parts.next()?.parse().ok()?;
    let day: u8 = date_parts.next()?.parse().ok()?;
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, fraction)) => (hms, fraction),
        None => (clock, ""),
    };
    let mut clock_parts = hms.splitn(3, ':');
    let hour: u8 = clock_parts.next()?.parse().ok()?;
    let minute: u8 = clock_parts.next()?.parse().ok()?;
    let second: u8 = clock_parts.next()?.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 9 {
        return None;
    }
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some(PrimitiveDateTime::new(date, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> PrimitiveDateTime {
        parse_sqlite(text).unwrap_or_else(|| panic!("{text} did not parse"))
    }

    #[test]
    fn sqlalchemy_text_timestamps_parse() {
        let parsed = at("2024-03-26 12:34:56.123456");
        assert_eq!(
            (parsed.year(), u8::from(parsed.month()), parsed.day()),
            (2024, 3, 26)
        );
        assert_eq!(
            (parsed.hour(), parsed.minute(), parsed.second()),
            (12, 34, 56)
        );
        assert_eq!(parsed.microsecond(), 123_456);
        assert_eq!(at("2024-03-26T12:34:56").nanosecond(), 0);
        assert_eq!(at("2024-03-26 12:34:56.5").millisecond(), 500);
        for bad in [
            "",
            "yesterday",
            "2024-13-01 00:00:00",
            "2024-02-30 00:00:00",
            "2024-01-01 25:00:00",
            "2024-01-01 00:00:00.12x",
            "2024-01-01 00:00:00.1234567890",
            "2024-01-01",
        ] {
            assert_eq!(parse_sqlite(bad), None, "{bad}");
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_text_matches_sqlalchemy_and_sorts_like_time() {
        let early = at("2024-03-26 09:05:06.000007");
        assert_eq!(sqlite_stamp(early), "2024-03-26 09:05:06.000007");
        let later = expiry_after(early, Duration::from_millis(1_500));
        assert_eq!(sqlite_stamp(later), "2024-03-26 09:05:07.500007");
        assert!(sqlite_stamp(early) < sqlite_stamp(later));
        assert_eq!(parse_sqlite(&sqlite_stamp(later)), Some(later));
    }

    #[test]
    fn expiry_is_clamped_and_microsecond_precise() {
        let now = now_utc();
        assert_eq!(now.nanosecond() % 1_000, 0);
        assert_eq!(expiry_after(now, Duration::MAX), latest());
        assert_eq!(
            expiry_after(now, Duration::from_secs(u64::MAX / 4)),
            latest()
        );
        assert_eq!(
            expiry_after(now, Duration::from_secs(60)) - now,
            time::Duration::seconds(60)
        );
        assert_eq!(
            expiry_after(now, Duration::from_nanos(1_999)) - now,
            time::Duration::microseconds(1)
        );
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_stamps_are_whole_seconds() {
        assert_eq!(
            mysql_stamp(at("2024-01-01 00:00:00.999999")),
            at("2024-01-01 00:00:00")
        );
        assert_eq!(
            ceil_to_second(at("2024-01-01 00:00:00.000001")),
            at("2024-01-01 00:00:01")
        );
        assert_eq!(
            ceil_to_second(at("2024-01-01 00:00:05")),
            at("2024-01-01 00:00:05")
        );
        assert_eq!(ceil_to_second(at("9999-12-31 23:59:59.5")), latest());
    }

    #[test]
    fn naive_values_read_as_utc() {
        let epoch_plus_day = at("1970-01-02 00:00:00");
        assert_eq!(
            to_system_time(epoch_plus_day),
            SystemTime::UNIX_EPOCH + Duration::from_secs(86_400)
        );
    }
}
