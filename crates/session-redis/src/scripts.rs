//! The Lua scripts that load in one command and make compare-and-set and rotation atomic
//! on the server.
//!
//! Each script only touches the keys it is given (`KEYS`), as Redis Cluster requires, and
//! writes with `SET ... EX`, so the stored layout stays exactly Flask-Session's.

/// A Lua script and its SHA-1 digest, for `EVALSHA` with an `EVAL` fallback.
#[derive(Clone, Debug)]
pub(crate) struct Script {
    pub(crate) source: &'static str,
    pub(crate) sha1: String,
}

impl Script {
    fn new(source: &'static str) -> Script {
        Script {
            source,
            sha1: fred::util::sha1_hash(source),
        }
    }
}

/// KEYS[1] = key. Returns nil for a missing key, else `{value, PTTL}`: the value and its
/// remaining lifetime in one command. A `GET` + `PTTL` pipeline would be two commands, which
/// fred writes to the socket separately (one more system call and wake-up per request).
const LOAD: &str = r#"
local value = redis.call('GET', KEYS[1])
if not value then
  return false
end
return {value, redis.call('PTTL', KEYS[1])}
"#;

/// KEYS[1] = key; ARGV = expected bytes, new bytes, seconds. Returns 1 when written.
/// `GET` of a missing key is `false` in Lua, which equals no string, so a missing entry
/// never matches.
const COMPARE_AND_SET: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"#;

/// KEYS = old key, new key; ARGV = expected bytes, new bytes, seconds. Returns 1 when the
/// entry moved; changes nothing otherwise.
const ROTATE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('DEL', KEYS[1])
return 1
"#;

/// KEYS[1] = key; ARGV[1] = expected bytes. Deletes the entry only while it still holds
/// the expected bytes; returns 1 when it did.
const COMPARE_AND_DELETE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// The store's scripts with their digests computed once.
#[derive(Clone, Debug)]
pub(crate) struct Scripts {
    pub(crate) load: Script,
    pub(crate) compare_and_set: Script,
    pub(crate) rotate: Script,
    pub(crate) compare_and_delete: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            load: Script::new(LOAD),
            compare_and_set: Script::new(COMPARE_AND_SET),
            rotate: Script::new(ROTATE),
            compare_and_delete: Script::new(COMPARE_AND_DELETE),
        }
    }
}
