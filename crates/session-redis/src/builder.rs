//! [`RedisStoreBuilder`]: URL, pool size, timeouts and reconnection.

use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::config::{
    Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy, TcpConfig, UnresponsiveConfig,
};
use fred::types::Builder;
use session_core::StoreError;

use crate::error::map_error;
use crate::store::RedisStore;

/// Where [`RedisStore::connect_default`] connects: Flask-Session's default client,
/// `redis.Redis()`, uses the same server.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// Connections in the pool unless [`RedisStoreBuilder::pool_size`] says otherwise. Redis
/// answers each connection's commands in order, so a few connections let slow replies
/// (large sessions) overlap without the cost of one connection per request.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// How long one command may take, queueing while the connection is being re-established
/// included, before it fails with [`StoreError::Unavailable`]. A session command takes
/// well under a millisecond on a healthy server; two seconds rides out a brief network
/// blip or failover without letting requests hang on a dead server.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long opening one TCP connection (and the TLS handshake, if any) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest pause between reconnection attempts. After a lost connection the client retries
/// forever, starting after 100 ms and doubling the pause up to this ceiling, so a
/// restarted server is picked up within about this long.
pub const DEFAULT_RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// First pause between reconnection attempts.
const RECONNECT_MIN_DELAY_MS: u32 = 100;

/// Configures and connects a [`RedisStore`]. Start from [`RedisStore::builder`].
///
/// ```no_run
/// # async fn example() -> Result<(), session_core::StoreError> {
/// use std::time::Duration;
/// use session_redis::RedisStore;
///
/// let store = RedisStore::builder()
///     .url("redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001&node=127.0.0.1:7002")
///     .pool_size(8)
///     .command_timeout(Duration::from_millis(500))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RedisStoreBuilder {
    url: String,
    pool_size: usize,
    command_timeout: Duration,
    connect_timeout: Duration,
    reconnect_max_delay: Duration,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        RedisStoreBuilder {
            url: DEFAULT_URL.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect_max_delay: DEFAULT_RECONNECT_MAX_DELAY,
        }
    }
}

impl RedisStoreBuilder {
    /// The server, in fred's URL syntax (default [`DEFAULT_URL`]):
    ///
    /// - standalone: `redis://[[user:]password@]host[:port][/db]`
    /// - Cluster: `redis-cluster://host:port[?node=host:port&node=...]`
    /// - Sentinel: `redis-sentinel://host[:port][/db]?sentinelServiceName=NAME[&node=host:port...]`
    ///   (host and `node`s are sentinels; the store talks to the master they name)
    ///
    /// `rediss…` (TLS) schemes work when one of fred's TLS features (for example
    /// `enable-rustls-ring`) is enabled in the application's own `fred` dependency.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Connections in the pool (default [`DEFAULT_POOL_SIZE`]; 0 counts as 1).
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// Time limit per command (default [`DEFAULT_COMMAND_TIMEOUT`]; values under 1 ms count
    /// as 1 ms, since fred reads zero as "wait forever").
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Time limit for opening a connection (default [`DEFAULT_CONNECT_TIMEOUT`]; values
    /// under 1 ms count as 1 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Ceiling of the pause between reconnection attempts (default
    /// [`DEFAULT_RECONNECT_MAX_DELAY`]).
    pub fn reconnect_max_delay(mut self, delay: Duration) -> Self {
        self.reconnect_max_delay = delay;
        self
    }

    /// Connects the pool and returns the store.
    ///
    /// Fails with [`StoreError::Backend`] for a URL fred cannot parse (the message does not
    /// repeat the URL, which may hold a password), and with [`StoreError::Unavailable`] when
    /// the server cannot be reached within the connect and command timeouts. Once
    /// connected, the store reconnects on its own after connections are lost.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let pool = self.build_pool()?;
        // fred applies the connect timeout per connection; this bounds the whole start-up
        // (sentinel lookup, cluster discovery) as well.
        let limit = self.connect_timeout + self.command_timeout;
        match tokio::time::timeout(limit, pool.init()).await {
            Ok(Ok(_connection_task)) => Ok(RedisStore::from_pool(pool)),
            Ok(Err(error)) => Err(map_error(error)),
            Err(_) => {
                // Stop the connection tasks still retrying in the background.
                let _ = tokio::time::timeout(self.command_timeout, pool.quit()).await;
                Err(StoreError::unavailable(format!(
                    "no connection to Redis within {limit:?}"
                )))
            }
        }
    }

    /// The fred pool this builder would connect, not yet connected.
    fn build_pool(&self) -> Result<Pool, StoreError> {
        // fred reads any other scheme (http://, a typo) as a standalone server.
        let scheme = self.url.split_once("://").map(|(scheme, _)| scheme);
        if !scheme.is_some_and(|s| s.starts_with("redis") || s.starts_with("valkey")) {
            return Err(StoreError::backend(
                "invalid Redis URL: the scheme must be redis, rediss, redis-cluster, \
                 redis-sentinel, redis+unix or one of their rediss/valkey forms",
            ));
        }
        let mut config = Config::from_url(&self.url).map_err(|error| {
            StoreError::backend(format!("invalid Redis URL: {}", error.details()))
        })?;
        // Report an unreachable server at start-up instead of retrying in the background.
        config.fail_fast = true;
        let connection = ConnectionConfig {
            connection_timeout: self.connect_timeout,
            internal_command_timeout: self.command_timeout,
            // A connection that stops answering (a peer gone without a reset) is closed
            // and re-established instead of timing out every command forever.
            unresponsive: UnresponsiveConfig {
                max_timeout: Some(self.command_timeout * 2),
                interval: (self.command_timeout / 2).max(Duration::from_millis(10)),
            },
            tcp: TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            },
            ..ConnectionConfig::default()
        };
        let performance = PerformanceConfig {
            default_command_timeout: self.command_timeout,
            ..PerformanceConfig::default()
        };
        let max_delay_ms = u32::try_from(self.reconnect_max_delay.as_millis())
            .unwrap_or(u32::MAX)
            .max(RECONNECT_MIN_DELAY_MS);
        // max_attempts 0: retry forever.
        let policy = ReconnectPolicy::new_exponential(0, RECONNECT_MIN_DELAY_MS, max_delay_ms, 2);
        Builder::from_config(config)
            .set_connection_config(connection)
            .set_performance_config(performance)
            .set_policy(policy)
            .build_pool(self.pool_size)
            .map_err(map_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let builder = RedisStoreBuilder::default();
        assert_eq!(builder.url, DEFAULT_URL);
        assert_eq!(builder.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(builder.command_timeout, DEFAULT_COMMAND_TIMEOUT);
    }

    #[test]
    fn zero_values_are_raised() {
        let builder = RedisStoreBuilder::default()
            .pool_size(0)
            .command_timeout(Duration::ZERO)
            .connect_timeout(Duration::ZERO);
        assert_eq!(builder.pool_size, 1);
        assert_eq!(builder.command_timeout, Duration::from_millis(1));
        assert_eq!(builder.connect_timeout, Duration::from_millis(1));
    }

    #[test]
    fn url_forms_select_the_deployment() {
        let pool = |url: &str| RedisStoreBuilder::default().url(url).build_pool();
        let standalone = pool("redis://127.0.0.1:6379/2").expect("standalone URL");
        assert!(!standalone.is_clustered() && !standalone.uses_sentinels());
        assert_eq!(standalone.client_config().database, Some(2));
        let cluster =
            pool("redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001").expect("cluster URL");
        assert!(cluster.is_clustered());
        let sentinel = pool("redis-sentinel://127.0.0.1:26379?sentinelServiceName=mymaster")
            .expect("sentinel URL");
        assert!(sentinel.uses_sentinels());
        assert_eq!(standalone.size(), DEFAULT_POOL_SIZE);
    }

    #[test]
    fn bad_urls_are_backend_errors_without_the_url() {
        for url in [
            "not a url",
            "http://127.0.0.1:6379",
            "redis-sentinel://127.0.0.1:26379",
        ] {
            match RedisStoreBuilder::default().url(url).build_pool() {
                Err(StoreError::Backend(error)) => {
                    assert!(!error.to_string().contains("127.0.0.1"), "{error}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        match RedisStoreBuilder::default()
            .url("redis://user:hunter2@[bad")
            .build_pool()
        {
            Err(StoreError::Backend(error)) => assert!(!error.to_string().contains("hunter2")),
            other => panic!("{other:?}"),
        }
    }
}
