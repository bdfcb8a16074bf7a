//! The msgpack timestamp extension (type -1), in which Flask-Session's msgspec writes
//! aware UTC datetimes: one home for its three wire forms, for core's JSON rendering and for
//! stores that translate datetimes (session-cachelib's pickle).

use crate::data::Value;

/// The extension type of a msgpack timestamp.
pub const EXT_TYPE: i8 = -1;

/// A msgpack timestamp in its shortest form, as msgspec writes it. `nanos` must be below
/// one second.
pub fn encode(seconds: i64, nanos: u32) -> Value {
    let payload = if nanos == 0 && (0..=i64::from(u32::MAX)).contains(&seconds) {
        (seconds as u32).to_be_bytes().to_vec()
    } else if (0..1 << 34).contains(&seconds) {
        ((u64::from(nanos) << 34) | seconds as u64)
            .to_be_bytes()
            .to_vec()
    } else {
        let mut payload = nanos.to_be_bytes().to_vec();
        payload.extend_from_slice(&seconds.to_be_bytes());
        payload
    };
    Value::Ext(EXT_TYPE, payload)
}

/// Seconds and nanoseconds of a timestamp payload (any of its three forms); `None` when it
/// is not one.
pub fn decode(payload: &[u8]) -> Option<(i64, u32)> {
    let (seconds, nanos) = match payload.len() {
        4 => (i64::from(u32::from_be_bytes(payload.try_into().ok()?)), 0),
        8 => {
            let raw = u64::from_be_bytes(payload.try_into().ok()?);
            ((raw & 0x3_ffff_ffff) as i64, (raw >> 34) as u32)
        }
        12 => (
            i64::from_be_bytes(payload[4..].try_into().ok()?),
            u32::from_be_bytes(payload[..4].try_into().ok()?),
        ),
        _ => return None,
    };
    (nanos < 1_000_000_000).then_some((seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips_in_the_shortest_one() {
        for (seconds, nanos, len) in [
            (1_704_164_645, 0, 4),
            (1_704_164_645, 123_456_000, 8),
            (-1, 0, 12),
            (1 << 40, 5, 12),
        ] {
            let Value::Ext(EXT_TYPE, payload) = encode(seconds, nanos) else {
                panic!("not a timestamp");
            };
            assert_eq!(payload.len(), len);
            assert_eq!(decode(&payload), Some((seconds, nanos)));
        }
        assert_eq!(decode(&[0; 5]), None);
        let mut too_many_nanos = 1_000_000_000u32.to_be_bytes().to_vec();
        too_many_nanos.extend_from_slice(&0i64.to_be_bytes());
        assert_eq!(decode(&too_many_nanos), None);
    }
}
