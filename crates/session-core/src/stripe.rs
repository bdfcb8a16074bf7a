//! One cheap hash for spreading keys and ids over locks, counters and buckets.

use std::hash::BuildHasher;

/// A fixed-seed hash of `bytes`, for picking a stripe: the cache's invalidation buckets and
/// the group-commit shards. Session ids are random, so any decent hash spreads them, and a
/// collision only shares a lock or a counter (more conservative, never wrong). foldhash
/// reads eight bytes at a time; the byte-by-byte FNV-1a it replaced cost about 200
/// instructions per call, several calls per save.
pub(crate) fn stripe_hash(bytes: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5e55_1011).hash_one(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_input_equal_hash_and_ids_spread() {
        assert_eq!(stripe_hash(b"session:abc"), stripe_hash(b"session:abc"));
        let stripes: std::collections::HashSet<u64> = (0..1000)
            .map(|n| stripe_hash(format!("session:{n}").as_bytes()) % 64)
            .collect();
        assert_eq!(
            stripes.len(),
            64,
            "1000 keys should reach every one of 64 stripes"
        );
    }
}
