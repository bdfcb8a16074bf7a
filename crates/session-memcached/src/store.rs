//! [`MemcachedStore`]: the [`SessionStore`] for memcached, in Flask-Session's layout.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool::managed::{Object, PoolError};
use session_core::{ConfigError, SessionStore, SetupError, StoreError, StoredEntry};

use crate::pool::{Pool, ServerManager};
use crate::protocol::{CasDelete, Error};
use crate::ring;

/// The server used when none is given, as in Flask-Session.
pub const DEFAULT_SERVER: &str = "127.0.0.1:11211";
/// The port assumed when a server is given without one.
pub const DEFAULT_PORT: u16 = 11211;
/// Connections kept per server, by default.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long opening a connection may take, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a command may wait for its reply (and a call for a free connection), by default.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// The environment name of the server list, named by configuration errors.
const SERVERS_OPTION: &str = "SESSION_MEMCACHED_SERVERS";

/// The largest value stored by default: safely below memcached's default 1 MiB item size
/// limit, which also counts the key and about 60 bytes of item header.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1_000_000;
/// The longest key memcached accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 250;
/// Expiry times up to this many seconds (30 days) are sent relative to now; longer ones
/// as an absolute Unix timestamp, because memcached reads any larger number as one.
pub const RELATIVE_EXPIRY_LIMIT_SECS: u64 = 2_592_000;

/// A session store on one or more memcached servers, byte-compatible with Flask-Session:
/// the key as given, the value as given with client flags 0, and Flask-Session's expiry
/// rule (see [`RELATIVE_EXPIRY_LIMIT_SECS`]).
///
/// Cheap to clone: clones share the connection pools. [`connect`](Self::connect) checks
/// that every server answers; after that, connections are opened as calls need them and
/// re-opened after failures. With several servers each key lives on one of them, chosen by
/// rendezvous hashing (the scheme of pymemcache's `HashClient`).
#[derive(Clone)]
pub struct MemcachedStore {
    servers: Arc<[Server]>,
    command_timeout: Duration,
}

struct Server {
    /// `host:port`, the name the ring hashes (as pymemcache names its servers).
    name: String,
    pool: Pool,
    /// Largest value accepted, in bytes.
    max_value_bytes: Arc<AtomicUsize>,
    /// Whether `max_value_bytes` is learned from the server on each new connection.
    learns_limit: bool,
}

impl fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedStore")
            .field(
                "servers",
                &self
                    .servers
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`MemcachedStore`]; see each method for the default. Start from
/// [`MemcachedStore::builder`], end with [`connect`](Self::connect).
#[derive(Clone, Debug)]
pub struct MemcachedStoreBuilder {
    servers: Vec<String>,
    pool_size: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
    max_value_bytes: Option<usize>,
}

impl Default for MemcachedStoreBuilder {
    fn default() -> Self {
        MemcachedStoreBuilder {
            servers: Vec::new(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_value_bytes: Some(DEFAULT_MAX_VALUE_BYTES),
        }
    }
}

impl MemcachedStoreBuilder {
    /// Adds a server: `host`, `host:port`, `[ipv6]:port`, optionally with a `memcache://`
    /// or `memcached://` scheme. Without any, [`DEFAULT_SERVER`] is used.
    pub fn server(mut self, address: impl Into<String>) -> Self {
        self.servers.push(address.into());
        self
    }

    /// Adds the servers of a comma-separated list such as `"10.0.0.1:11211,10.0.0.2"`
    /// (the form of `SESSION_MEMCACHED_SERVERS`); a blank list adds none.
    pub fn server_list(self, list: &str) -> Self {
        if list.trim().is_empty() {
            return self;
        }
        // An empty entry ("a,,b") stays in, so that connecting reports it.
        self.servers(list.split(','))
    }

    /// Adds several servers (see [`server`](Self::server)).
    pub fn servers<I>(mut self, addresses: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.servers
            .extend(addresses.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Connections kept open per server (default [`DEFAULT_POOL_SIZE`]); calls beyond that
    /// wait for a free connection, up to the command timeout.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections;
        self
    }

    /// How long opening a connection may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a command may wait for its reply, and a call for a free connection
    /// (default [`DEFAULT_COMMAND_TIMEOUT`]). A call that runs out fails with
    /// [`StoreError::Unavailable`] and its connection is closed.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The largest value stored; larger ones fail with [`StoreError::TooLarge`] before
    /// anything is sent (default [`DEFAULT_MAX_VALUE_BYTES`]). Raise it only together with
    /// the server's item size limit (`memcached -I`).
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = Some(bytes);
        self
    }

    /// Takes the largest value from each server instead: its `item_size_max` (read with
    /// `stats settings` on every new connection) less 512 bytes for the key and item
    /// header. Until a server has been reached, [`DEFAULT_MAX_VALUE_BYTES`] applies.
    pub fn max_value_bytes_from_server(mut self) -> Self {
        self.max_value_bytes = None;
        self
    }

    /// Checks the options, then asks every server for its version, and returns the store.
    ///
    /// Fails with [`SetupError::Config`] for an invalid option (a server address names
    /// `SESSION_MEMCACHED_SERVERS`; the other options their builder method) and with
    /// [`SetupError::Store`] ([`StoreError::Unavailable`]) when a server cannot be reached
    /// within the connect and command timeouts.
    pub async fn connect(self) -> Result<MemcachedStore, SetupError> {
        let store = self.prepare()?;
        store.ping().await?;
        Ok(store)
    }

    /// The store for these options, without any connection yet.
    fn prepare(self) -> Result<MemcachedStore, ConfigError> {
        if self.pool_size == 0 {
            return Err(ConfigError::new("pool_size", "must be at least 1"));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "connect_timeout",
                "must be more than zero",
            ));
        }
        if self.command_timeout.is_zero() {
            return Err(ConfigError::new(
                "command_timeout",
                "must be more than zero",
            ));
        }
        if self.max_value_bytes == Some(0) {
            return Err(ConfigError::new("max_value_bytes", "must be at least 1"));
        }
        let addresses = if self.servers.is_empty() {
            vec![DEFAULT_SERVER.to_owned()]
        } else {
            self.servers
        };
        let mut servers = Vec::with_capacity(addresses.len());
        for address in &addresses {
            let parsed = ServerAddress::parse(address)?;
            if servers.iter().any(|s: &Server| s.name == parsed.name) {
                return Err(ConfigError::new(
                    SERVERS_OPTION,
                    format!("{} is listed twice", parsed.name),
                ));
            }
            let max_value_bytes = Arc::new(AtomicUsize::new(
                self.max_value_bytes.unwrap_or(DEFAULT_MAX_VALUE_BYTES),
            ));
            let learns_limit = self.max_value_bytes.is_none();
            let manager = ServerManager {
                address: parsed.connect_to,
                connect_timeout: self.connect_timeout,
                command_timeout: self.command_timeout,
                learned_limit: learns_limit.then(|| max_value_bytes.clone()),
            };
            let pool = Pool::builder(manager)
                .max_size(self.pool_size)
                .runtime(deadpool::Runtime::Tokio1)
                .wait_timeout(Some(self.command_timeout))
                .build()
                .map_err(|error| ConfigError::new("pool_size", error.to_string()))?;
            servers.push(Server {
                name: parsed.name,
                pool,
                max_value_bytes,
                learns_limit,
            });
        }
        Ok(MemcachedStore {
            servers: servers.into(),
            command_timeout: self.command_timeout,
        })
    }
}

/// A server as configured: the name hashed by the ring and the address connected to.
#[derive(Debug, PartialEq, Eq)]
struct ServerAddress {
    /// `host:port` with the host as written (no brackets), as pymemcache names servers.
    name: String,
    /// `host:port`, IPv6 hosts in brackets.
    connect_to: String,
}

impl ServerAddress {
    fn parse(input: &str) -> Result<ServerAddress, ConfigError> {
        let invalid = |why: &str| {
            ConfigError::new(
                SERVERS_OPTION,
                format!("{input:?} is not a server address: {why}"),
            )
        };
        let trimmed = input.trim();
        let address = trimmed
            .strip_prefix("memcache://")
            .or_else(|| trimmed.strip_prefix("memcached://"))
            .unwrap_or(trimmed)
            .trim_end_matches('/');
        if address.is_empty() {
            return Err(invalid("empty"));
        }
        let (host, port) = if let Some(rest) = address.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| invalid("missing `]`"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| invalid("expected `:port` after `]`"))?,
                    ),
                ),
            }
        } else {
            match address.split_once(':') {
                None => (address, None),
                Some((_, port)) if port.contains(':') => {
                    return Err(invalid(
                        "write IPv6 addresses in brackets, e.g. [::1]:11211",
                    ))
                }
                Some((host, port)) => (host, Some(port)),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))?,
        };
        let connect_to = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(ServerAddress {
            name: format!("{host}:{port}"),
            connect_to,
        })
    }
}

/// Why memcached cannot hold `key`, if it cannot: empty, longer than 250 bytes, or with a
/// space or control character (the text protocol separates tokens with them).
pub(crate) fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        Some("memcached keys cannot be empty".to_owned())
    } else if key.len() > MAX_KEY_BYTES {
        Some(format!(
            "a key of {} bytes is longer than memcached's limit of {MAX_KEY_BYTES}",
            key.len()
        ))
    } else if key.bytes().any(|b| b <= b' ' || b == 0x7f) {
        Some("memcached keys cannot contain spaces or control characters".to_owned())
    } else {
        None
    }
}

fn require_valid_key(key: &str) -> Result<(), StoreError> {
    match key_problem(key) {
        Some(problem) => Err(StoreError::InvalidKey(problem)),
        None => Ok(()),
    }
}

/// The expiry memcached is sent for `ttl`, exactly as Flask-Session computes it: whole
/// seconds (at least 1: memcached reads 0 as "never"); above 30 days, `now` plus that as a
/// Unix timestamp. Capped at `i32::MAX`, the largest the server parses.
pub(crate) fn exptime(ttl: Duration, now: SystemTime) -> u32 {
    let seconds = ttl.as_secs().max(1);
    let value = if seconds > RELATIVE_EXPIRY_LIMIT_SECS {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or(0);
        now.saturating_add(seconds)
    } else {
        seconds
    };
    u32::try_from(value.min(i32::MAX as u64)).unwrap_or(i32::MAX as u32)
}

/// A failure on one server, naming it.
#[derive(Debug)]
struct ServerFailure {
    server: String,
    error: Error,
}

impl fmt::Display for ServerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memcached at {}: {}", self.server, self.error)
    }
}

impl std::error::Error for ServerFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl Server {
    fn failure(&self, error: Error) -> ServerFailure {
        ServerFailure {
            server: self.name.clone(),
            error,
        }
    }

    fn timed_out(&self, what: String) -> StoreError {
        StoreError::unavailable(
            self.failure(Error::Io(io::Error::new(io::ErrorKind::TimedOut, what))),
        )
    }

    fn max_value_bytes(&self) -> usize {
        self.max_value_bytes.load(Ordering::Relaxed)
    }

    fn check_size(&self, size: usize) -> Result<(), StoreError> {
        let limit = self.max_value_bytes();
        if size > limit {
            Err(StoreError::TooLarge { size, limit })
        } else {
            Ok(())
        }
    }

    async fn checkout(&self) -> Result<Object<ServerManager>, StoreError> {
        self.pool.get().await.map_err(|error| match error {
            PoolError::Backend(error) => StoreError::unavailable(self.failure(error)),
            PoolError::Timeout(_) => self.timed_out(format!(
                "no connection free within {:?} ({} in use)",
                self.pool.timeouts().wait.unwrap_or_default(),
                self.pool.status().max_size
            )),
            other => StoreError::unavailable(format!("memcached at {}: {other}", self.name)),
        })
    }

    /// A connection for writing `size` bytes, refusing values over the limit before
    /// anything is sent (after connecting, when the limit is learned from the server).
    async fn checkout_for(&self, size: usize) -> Result<Object<ServerManager>, StoreError> {
        if !self.learns_limit {
            self.check_size(size)?;
        }
        let connection = self.checkout().await?;
        if self.learns_limit {
            self.check_size(size)?;
        }
        Ok(connection)
    }
}

impl MemcachedStore {
    /// Connects to the servers of a comma-separated list such as
    /// `"10.0.0.1:11211,10.0.0.2:11211"` (an empty or blank list means [`DEFAULT_SERVER`])
    /// with default options. Shorthand for
    /// `MemcachedStore::builder().server_list(list).connect()`.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), session_core::SetupError> {
    /// use session_memcached::MemcachedStore;
    ///
    /// let store = MemcachedStore::connect("127.0.0.1:11211").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(list: &str) -> Result<MemcachedStore, SetupError> {
        MemcachedStore::builder().server_list(list).connect().await
    }

    /// A builder with every option at its default.
    pub fn builder() -> MemcachedStoreBuilder {
        MemcachedStoreBuilder::default()
    }

    /// The servers, as `host:port`, in the order given.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(|server| server.name.as_str())
    }

    /// The server (`host:port`) that holds `key`.
    pub fn server_for_key(&self, key: &str) -> &str {
        &self.server(key).name
    }

    /// The largest value `key`'s server accepts with the current settings, in bytes.
    pub fn max_value_bytes(&self, key: &str) -> usize {
        self.server(key).max_value_bytes()
    }

    /// Asks every server for its version: `Ok` when all answer. Useful as a readiness check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        for server in self.servers.iter() {
            let mut connection = server.checkout().await?;
            self.timed(server, None, connection.version()).await?;
        }
        Ok(())
    }

    fn server(&self, key: &str) -> &Server {
        let index = match self.servers.len() {
            1 => 0,
            _ => ring::pick(self.servers.iter().map(|s| s.name.as_str()), key).unwrap_or(0),
        };
        // The builder never makes a store without servers, and `pick` returns an index
        // into the list it was given.
        &self.servers[index]
    }

    /// Runs one command with the command timeout and maps its failure. `writing` is the
    /// size of the value being written, so a server's "too large" becomes `TooLarge`.
    async fn timed<T>(
        &self,
        server: &Server,
        writing: Option<usize>,
        command: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.command_timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(match (writing, error) {
                (Some(size), error) if error.is_too_large() => StoreError::TooLarge {
                    size,
                    limit: server.max_value_bytes().min(size.saturating_sub(1)),
                },
                (_, error @ Error::Io(_)) => StoreError::unavailable(server.failure(error)),
                (_, error) => StoreError::backend(server.failure(error)),
            }),
            Err(_) => Err(server.timed_out(format!("no reply within {:?}", self.command_timeout))),
        }
    }
}

#[async_trait]
impl SessionStore for MemcachedStore {
    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        require_valid_key(key)
    }

    /// Meta get (`mg <key> v t f`): the value and, from the remaining TTL, when it expires.
    /// A key memcached cannot hold is never sent and loads as `None`.
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        if key_problem(key).is_some() {
            return Ok(None);
        }
        let server = self.server(key);
        let mut connection = server.checkout().await?;
        let item = self
            .timed(
                server,
                None,
                connection.meta_get(key, server.max_value_bytes()),
            )
            .await?;
        Ok(item.map(|item| {
            if item.flags != 0 {
                tracing::debug!(
                    flags = item.flags,
                    "session entry stored with non-zero client flags; reading the bytes as they are"
                );
            }
            StoredEntry {
                value: item.value,
                // The server's remaining TTL; a value past the clock's range is no expiry
                // we can name, never a panic.
                expires_at: item.ttl.and_then(|seconds| {
                    SystemTime::now().checked_add(Duration::from_secs(seconds))
                }),
            }
        }))
    }

    /// `add`: stores only when the key holds no live item.
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        require_valid_key(key)?;
        let server = self.server(key);
        let mut connection = server.checkout_for(value.len()).await?;
        let exptime = exptime(ttl, SystemTime::now());
        self.timed(
            server,
            Some(value.len()),
            connection.add(key, value, exptime),
        )
        .await
    }

    /// `gets`, a byte comparison with `expected`, then `cas` with the token read.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        if key_problem(key).is_some() {
            // No entry can exist under such a key.
            return Ok(false);
        }
        let server = self.server(key);
        let mut connection = server.checkout_for(value.len()).await?;
        let Some((current, cas)) = self
            .timed(server, None, connection.gets(key, server.max_value_bytes()))
            .await?
        else {
            return Ok(false);
        };
        if current != expected {
            return Ok(false);
        }
        let exptime = exptime(ttl, SystemTime::now());
        self.timed(
            server,
            Some(value.len()),
            connection.cas(key, value, exptime, cas),
        )
        .await
    }

    /// `touch <key> <exptime>`.
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        if key_problem(key).is_some() {
            return Ok(false);
        }
        let server = self.server(key);
        let mut connection = server.checkout().await?;
        let exptime = exptime(ttl, SystemTime::now());
        self.timed(server, None, connection.touch(key, exptime))
            .await
    }

    /// `delete <key>`, waiting for the reply.
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if key_problem(key).is_some() {
            return Ok(());
        }
        let server = self.server(key);
        let mut connection = server.checkout().await?;
        self.timed(server, None, connection.delete(key)).await?;
        Ok(())
    }

    /// `gets`, then `md <key> C<cas>`: the entry is removed only if nobody changed it
    /// since it was read. Rotation uses it through the default
    /// [`rotate`](SessionStore::rotate) (`add` of the new key, then this, undone when it
    /// fails), since memcached has no command that moves an item.
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        if key_problem(key).is_some() {
            return Ok(false);
        }
        let server = self.server(key);
        let mut connection = server.checkout().await?;
        let cas = match self
            .timed(server, None, connection.gets(key, server.max_value_bytes()))
            .await?
        {
            Some((current, cas)) if current == expected => cas,
            _ => return Ok(false),
        };
        let removed = self
            .timed(server, None, connection.delete_if_unchanged(key, cas))
            .await?;
        Ok(removed == CasDelete::Deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn expiry_follows_flask_session() {
        let now = at(NOW);
        assert_eq!(exptime(Duration::from_secs(300), now), 300);
        assert_eq!(
            exptime(Duration::from_millis(1_999), now),
            1,
            "whole seconds"
        );
        assert_eq!(exptime(Duration::ZERO, now), 1, "0 would mean never");
        assert_eq!(exptime(Duration::from_millis(10), now), 1);
        // Exactly 30 days is still relative; one second more is absolute.
        assert_eq!(exptime(Duration::from_secs(2_592_000), now), 2_592_000);
        assert_eq!(
            exptime(Duration::from_secs(2_592_001), now),
            (NOW + 2_592_001) as u32
        );
        // Flask-Session's default lifetime of 31 days.
        assert_eq!(
            exptime(Duration::from_secs(31 * 86_400), now),
            (NOW + 2_678_400) as u32
        );
        assert_eq!(
            exptime(Duration::from_secs(400 * 365 * 86_400), now),
            i32::MAX as u32,
            "capped at the largest expiry memcached parses"
        );
    }

    #[test]
    fn keys_memcached_cannot_hold() {
        assert_eq!(key_problem("session:abc"), None);
        assert_eq!(key_problem("session:ключ-🔑"), None, "UTF-8 bytes are fine");
        assert_eq!(key_problem(&"k".repeat(250)), None);
        assert!(key_problem(&"k".repeat(251)).is_some());
        assert!(key_problem("").is_some());
        for bad in ["a b", "a\r\nset x 0 0 1", "a\tb", "a\0b", "a\x7fb"] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        assert!(
            !key_problem(&"k".repeat(300))
                .unwrap_or_default()
                .contains("kkk"),
            "the key itself is not echoed"
        );
    }

    #[test]
    fn server_addresses() {
        let parse = |s| ServerAddress::parse(s).map(|a| (a.name, a.connect_to));
        let pair = |a: &str, b: &str| Ok((a.to_owned(), b.to_owned()));
        assert_eq!(
            parse("127.0.0.1:11211"),
            pair("127.0.0.1:11211", "127.0.0.1:11211")
        );
        assert_eq!(parse(" cache "), pair("cache:11211", "cache:11211"));
        assert_eq!(
            parse("memcache://10.0.0.1:11311/"),
            pair("10.0.0.1:11311", "10.0.0.1:11311")
        );
        assert_eq!(
            parse("memcached://cache"),
            pair("cache:11211", "cache:11211")
        );
        assert_eq!(parse("[::1]:11212"), pair("::1:11212", "[::1]:11212"));
        assert_eq!(parse("[::1]"), pair("::1:11211", "[::1]:11211"));
        for bad in [
            "",
            "  ",
            ":11211",
            "host:",
            "host:0",
            "host:70000",
            "::1",
            "[::1",
            "[::1]x",
        ] {
            let error = ServerAddress::parse(bad).expect_err(bad);
            assert_eq!(error.option, "SESSION_MEMCACHED_SERVERS", "{bad:?}");
        }
    }

    fn prepared(list: &str) -> Result<MemcachedStore, ConfigError> {
        MemcachedStore::builder().server_list(list).prepare()
    }

    #[test]
    fn builder_validates_options() {
        let store = prepared("").expect("default server");
        assert_eq!(store.servers().collect::<Vec<_>>(), [DEFAULT_SERVER]);
        let store = prepared("a:1, b").expect("two servers");
        assert_eq!(store.servers().collect::<Vec<_>>(), ["a:1", "b:11211"]);
        assert_eq!(store.max_value_bytes("k"), DEFAULT_MAX_VALUE_BYTES);
        for (list, why) in [("a,a:11211", "duplicate"), ("a,,b", "empty entry")] {
            let error = prepared(list).expect_err(why);
            assert_eq!(error.option, "SESSION_MEMCACHED_SERVERS", "{why}");
        }
        let builder = MemcachedStore::builder;
        assert_eq!(
            builder().pool_size(0).prepare().unwrap_err().option,
            "pool_size"
        );
        assert_eq!(
            builder()
                .connect_timeout(Duration::ZERO)
                .prepare()
                .unwrap_err()
                .option,
            "connect_timeout"
        );
        assert_eq!(
            builder()
                .command_timeout(Duration::ZERO)
                .prepare()
                .unwrap_err()
                .option,
            "command_timeout"
        );
        assert_eq!(
            builder().max_value_bytes(0).prepare().unwrap_err().option,
            "max_value_bytes"
        );
        let store = builder().max_value_bytes(42).prepare().expect("valid");
        assert_eq!(store.max_value_bytes("k"), 42);
    }

    #[tokio::test]
    async fn connect_reports_options_before_connecting() {
        // Port 1 would be unreachable: the option error must come first.
        match MemcachedStore::builder()
            .server("127.0.0.1:1")
            .pool_size(0)
            .connect()
            .await
        {
            Err(SetupError::Config(error)) => assert_eq!(error.option, "pool_size"),
            other => panic!("{other:?}"),
        }
        match MemcachedStore::connect("127.0.0.1:0").await {
            Err(SetupError::Config(error)) => {
                assert_eq!(error.option, "SESSION_MEMCACHED_SERVERS")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keys_are_spread_over_servers_like_pymemcache() {
        let store = prepared("127.0.0.1:11211,127.0.0.1:11212,10.0.0.3:11211").expect("valid");
        // The same choices as pymemcache's HashClient (see ring.rs).
        assert_eq!(store.server_for_key("session:a"), "10.0.0.3:11211");
        assert_eq!(store.server_for_key("session:c"), "127.0.0.1:11212");
        assert_eq!(store.server_for_key("session:xyz"), "127.0.0.1:11211");
    }
}
