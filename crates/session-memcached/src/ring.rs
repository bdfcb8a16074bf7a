//! Which server holds a key: rendezvous (highest random weight) hashing with MurmurHash3.
//!
//! For every key each server gets the score `murmur3_32("{server}-{key}", seed 0)`; the
//! highest score wins, and a tie goes to the server whose name sorts last. This is the
//! scheme of pymemcache's `HashClient` (its default `RendezvousHash`), so a Python app using
//! `HashClient` with the same `host:port` list finds the same key on the same server.
//! Adding or removing one server moves only the keys that server wins or held (about
//! `1/n` of them); keys spread evenly because the scores are independent per server.

/// MurmurHash3, x86 32-bit variant, over `data` with `seed` (Austin Appleby's public
/// domain algorithm).
pub(crate) fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;

    fn mix(block: u32) -> u32 {
        block.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
    }

    let mut hash = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let block = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        hash ^= mix(block);
        hash = hash
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let block = tail
            .iter()
            .rev()
            .fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte));
        hash ^= mix(block);
    }
    // The length is mixed in modulo 2^32, as in the reference implementation.
    hash ^= data.len() as u32;
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^= hash >> 16;
    hash
}

/// The index of the server in `names` that holds `key`; `None` only when `names` is empty.
pub(crate) fn pick<'a>(names: impl IntoIterator<Item = &'a str>, key: &str) -> Option<usize> {
    let mut best: Option<(u32, &str, usize)> = None;
    let mut input = Vec::new();
    for (index, name) in names.into_iter().enumerate() {
        input.clear();
        input.extend_from_slice(name.as_bytes());
        input.push(b'-');
        input.extend_from_slice(key.as_bytes());
        let score = murmur3_32(&input, 0);
        let wins = match best {
            None => true,
            Some((best_score, best_name, _)) => {
                score > best_score || (score == best_score && name > best_name)
            }
        };
        if wins {
            best = Some((score, name, index));
        }
    }
    best.map(|(_, _, index)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from pymemcache 4.0.0's `murmur3_32` (seed 0), which also match the
    /// published MurmurHash3_x86_32 test vectors (`"hello"` = 0x248bfa47).
    #[test]
    fn murmur3_matches_pymemcache() {
        let vectors: [(&str, u32); 8] = [
            ("", 0x0),
            ("a", 0x3c25_69b2),
            ("ab", 0x9bbf_d75f),
            ("abc", 0xb3dd_93fa),
            ("abcd", 0x43ed_676a),
            ("hello", 0x248b_fa47),
            ("session:abc", 0xe4db_270e),
            ("127.0.0.1:11211-session:0123456789abcdef", 0xa60c_873d),
        ];
        for (input, expected) in vectors {
            assert_eq!(murmur3_32(input.as_bytes(), 0), expected, "{input:?}");
        }
        assert_ne!(
            murmur3_32(b"hello", 1),
            murmur3_32(b"hello", 0),
            "seed ignored"
        );
    }

    /// Choices made by pymemcache 4.0.0's `RendezvousHash` for the same three servers.
    #[test]
    fn pick_matches_pymemcache_hash_client() {
        let servers = ["127.0.0.1:11211", "127.0.0.1:11212", "10.0.0.3:11211"];
        let expected = [
            ("session:a", "10.0.0.3:11211"),
            ("session:b", "10.0.0.3:11211"),
            ("session:c", "127.0.0.1:11212"),
            ("session:xyz", "127.0.0.1:11211"),
            (
                "session:Yl3y0rE3h0k7RzEo6E8nV2Ql6dMbUq1yJcC6O6Q0Cg8",
                "127.0.0.1:11212",
            ),
            ("session:0", "127.0.0.1:11212"),
            ("session:1", "127.0.0.1:11212"),
            ("session:2", "10.0.0.3:11211"),
        ];
        for (key, server) in expected {
            let index = pick(servers, key).expect("a server");
            assert_eq!(servers[index], server, "{key}");
        }
    }

    #[test]
    fn pick_is_stable_and_spreads_keys() {
        assert_eq!(pick([], "k"), None);
        assert_eq!(pick(["only:11211"], "anything"), Some(0));
        let servers = ["a:11211", "b:11211", "c:11211", "d:11211"];
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let key = format!("session:{i}");
            let index = pick(servers, &key).expect("a server");
            assert_eq!(pick(servers, &key), Some(index), "not stable");
            counts[index] += 1;
        }
        for count in counts {
            assert!((800..1200).contains(&count), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn removing_a_server_moves_only_its_keys() {
        let all = ["a:11211", "b:11211", "c:11211"];
        let without_c = ["a:11211", "b:11211"];
        for i in 0..1000 {
            let key = format!("session:{i}");
            let before = all[pick(all, &key).expect("a server")];
            let after = without_c[pick(without_c, &key).expect("a server")];
            if before != "c:11211" {
                assert_eq!(before, after, "{key} moved although its server stayed");
            }
        }
    }
}
