//! The Lua scripts that load in one command and make compare-and-set and rotation atomic
//! on the server.
//!
//! Each script only touches the keys it is given (`KEYS`), as Redis Cluster requires, and
//! writes with `SET ... EX`, so the stored layout stays exactly Flask-Session's. Every
//! script that writes a key reads it back (`EXISTS`) afterwards: with client tracking
//! (NOLOOP), a write of this connection stops Redis tracking the key for it, and a read
//! inside a script tracks it again for the caller, so that another process's next write
//! of the key is reported.
//!
//! The compare-and-sets read the current bytes with `GETEX` (no options: a plain read
//! that Redis counts as a write command) rather than `GET`, because Redis tracks keys on
//! read commands only, and Redis 7.0 (and other versions that do the same) tracks *every*
//! key a script was given on each read inside it: a batch of six keys made twelve reads
//! and so 72 tracking-table updates (37.8 µs of Redis time per call; 25.1 µs as below,
//! docs/performance.md). The one `EXISTS` of the written keys at the end tracks each of
//! them once, whether the server tracks a script's keys or the read's own. Servers without
//! `GETEX` (before 6.2), or users whose ACL does not allow it, get its error, and the
//! script reads with `GET` instead.

use fred::bytes_utils::Str;
use fred::clients::Client;
use fred::interfaces::LuaInterface;
use fred::types::{Key, Value};

use crate::error::is_noscript;

/// A Lua script and its SHA-1 digest, for `EVALSHA` with an `EVAL` fallback.
#[derive(Clone, Debug)]
pub(crate) struct Script {
    pub(crate) source: &'static str,
    /// Shared bytes: each `EVALSHA` takes a reference instead of a copy.
    pub(crate) sha1: Str,
}

impl Script {
    fn new(source: &'static str) -> Script {
        Script {
            source,
            sha1: Str::from(fred::util::sha1_hash(source)),
        }
    }

    /// Runs the script on `client` by digest, sending its source when the server does not
    /// have it cached (after a restart or `SCRIPT FLUSH`). `args` builds the arguments: a
    /// second time only for that fallback, so the common path copies nothing.
    pub(crate) async fn run(
        &self,
        client: &Client,
        keys: &[&str],
        args: impl Fn() -> Vec<Value>,
    ) -> Result<Value, fred::error::Error> {
        let keys = || keys.iter().map(|key| Key::from(*key)).collect::<Vec<Key>>();
        match client.evalsha(self.sha1.clone(), keys(), args()).await {
            // EVAL also caches the script, so the next EVALSHA finds it.
            Err(error) if is_noscript(&error) => client.eval(self.source, keys(), args()).await,
            other => other,
        }
    }

    /// [`run`](Self::run) with the keys and arguments already built (shared bytes: the
    /// copies kept for the `EVAL` fallback cost no data copy).
    pub(crate) async fn run_owned(
        &self,
        client: &Client,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<Value, fred::error::Error> {
        match client
            .evalsha(self.sha1.clone(), keys.clone(), args.clone())
            .await
        {
            Err(error) if is_noscript(&error) => client.eval(self.source, keys, args).await,
            other => other,
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

/// KEYS[1] = key; ARGV = bytes, seconds. Returns 1 when written (the key was free).
const CREATE: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX') then
  redis.call('EXISTS', KEYS[1])
  return 1
end
return 0
"#;

/// KEYS[1] = key; ARGV = expected bytes, new bytes, seconds. Returns 1 when written.
/// `GET` of a missing key is `false` in Lua, which equals no string, so a missing entry
/// never matches.
const COMPARE_AND_SET: &str = r#"
local current = redis.pcall('GETEX', KEYS[1])
if type(current) == 'table' and current.err then
  current = redis.call('GET', KEYS[1])
end
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  redis.call('EXISTS', KEYS[1])
  return 1
end
return 0
"#;

/// The compare-and-set of several keys in one call (see `batch.rs`): KEYS = keys; ARGV =
/// expected bytes, new bytes, seconds for each key in turn. Answers per key, in order: 1
/// (written), 0 (the entry did not match), or the error text Redis raised for that key
/// alone (a key of another type), without stopping the others. Each key is otherwise
/// handled exactly as by [`COMPARE_AND_SET`].
const COMPARE_AND_SET_MANY: &str = r#"
local answers = {}
local written = {}
for i, key in ipairs(KEYS) do
  local at = i * 3 - 2
  local current = redis.pcall('GETEX', key)
  if type(current) == 'table' and current.err then
    current = redis.pcall('GET', key)
  end
  if type(current) == 'table' and current.err then
    answers[i] = current.err
  elseif current == ARGV[at] then
    local set = redis.pcall('SET', key, ARGV[at + 1], 'EX', ARGV[at + 2])
    if type(set) == 'table' and set.err then
      answers[i] = set.err
    else
      written[#written + 1] = key
      answers[i] = 1
    end
  else
    answers[i] = 0
  end
end
if #written > 0 then
  redis.call('EXISTS', unpack(written))
end
return answers
"#;

/// KEYS[1] = key; ARGV[1] = seconds. Returns 1 when the key was live and extended.
const TOUCH: &str = r#"
if redis.call('EXPIRE', KEYS[1], ARGV[1]) == 1 then
  redis.call('EXISTS', KEYS[1])
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
redis.call('EXISTS', KEYS[2])
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

/// KEYS[1] = an owner's index (a hash: session key -> "created last_seen expires_at", Unix
/// seconds); ARGV = session key, entry, seconds the entry must live. Writes the field and
/// extends the hash's expiry to the entry's if that is later, so the index lives as long
/// as its longest-lived entry and no longer.
const INDEX_PUT: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[3])
if redis.call('TTL', KEYS[1]) < ttl then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return 1
"#;

/// KEYS[1] = an owner's index; ARGV[1] = session key. Redis deletes the hash with its
/// last field.
const INDEX_REMOVE: &str = r#"
return redis.call('HDEL', KEYS[1], ARGV[1])
"#;

/// KEYS[1] = an owner's index; ARGV[1] = now (Unix seconds). Drops the entries that
/// expired before now and returns the others, flat: key, entry, key, entry...
const INDEX_LIST: &str = r#"
local flat = redis.call('HGETALL', KEYS[1])
local live = {}
local now = tonumber(ARGV[1])
for i = 1, #flat, 2 do
  local expires_at = tonumber(string.match(flat[i + 1], '(%d+)$'))
  if expires_at and expires_at < now then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    live[#live + 1] = flat[i]
    live[#live + 1] = flat[i + 1]
  end
end
return live
"#;

/// The store's scripts with their digests computed once.
#[derive(Clone, Debug)]
pub(crate) struct Scripts {
    pub(crate) load: Script,
    pub(crate) create: Script,
    pub(crate) compare_and_set: Script,
    pub(crate) compare_and_set_many: Script,
    pub(crate) touch: Script,
    pub(crate) rotate: Script,
    pub(crate) compare_and_delete: Script,
    pub(crate) index_put: Script,
    pub(crate) index_remove: Script,
    pub(crate) index_list: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            load: Script::new(LOAD),
            create: Script::new(CREATE),
            compare_and_set: Script::new(COMPARE_AND_SET),
            compare_and_set_many: Script::new(COMPARE_AND_SET_MANY),
            touch: Script::new(TOUCH),
            rotate: Script::new(ROTATE),
            compare_and_delete: Script::new(COMPARE_AND_DELETE),
            index_put: Script::new(INDEX_PUT),
            index_remove: Script::new(INDEX_REMOVE),
            index_list: Script::new(INDEX_LIST),
        }
    }
}
