//! [`RedisStoreBuilder`]: URL, pool size, timeouts and reconnection.

use std::sync::Arc;
use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::{ClientLike, ClusterInterface};
use fred::types::config::{
    Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy, Server, ServerConfig, TcpConfig,
    UnresponsiveConfig,
};
use fred::types::Builder;
use session_core::{ConfigError, SetupError, StoreError};

use crate::cluster::{ClusterRoutes, NewPool};
use crate::error::map_error;
use crate::store::RedisStore;

/// Where [`RedisStoreBuilder`] connects unless told otherwise: Flask-Session's default
/// client, `redis.Redis()`, uses the same server.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// The most connections the default pool opens (see [`default_pool_size`]). Redis answers
/// each connection's commands in order, so a few connections let slow replies (large
/// sessions) overlap without the cost of one connection per request.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// Connections in the pool unless [`RedisStoreBuilder::pool_size`] says otherwise: one per
/// CPU this process may run on (`std::thread::available_parallelism`, which honours CPU
/// affinity and cgroup quotas), at most [`DEFAULT_POOL_SIZE`].
///
/// Each connection has a task of its own that encodes, writes and reads its commands, and
/// commands queued on one connection share a socket write. More connections than CPUs add
/// no parallelism, only fewer shared writes: on one CPU, one connection served 7 % more
/// session writes per second than four (docs/performance.md).
pub fn default_pool_size() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, DEFAULT_POOL_SIZE)
}

/// How long one command may take, queueing while the connection is being re-established
/// included, before it fails with [`StoreError::Unavailable`]. A session command takes
/// well under a millisecond on a healthy server; two seconds rides out a brief network
/// blip or failover without letting requests hang on a dead server.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long opening one TCP connection (and the TLS handshake, if any) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest pause between reconnection attempts. After a lost connection the client retries
/// forever, starting after 100 ms and doubling the pause up to this ceiling, so a
/// restarted server, or a Cluster replica promoted in place of a lost master, is picked up
/// within about this long. Requests wait for the store meanwhile, and a refused
/// connection attempt costs next to nothing, so the ceiling is short.
pub const DEFAULT_RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// First pause between reconnection attempts.
const RECONNECT_MIN_DELAY_MS: u32 = 100;

/// The environment name of the URL option, named by configuration errors.
const URL_OPTION: &str = "SESSION_REDIS_URL";

/// Configures and connects a [`RedisStore`]. Start from [`RedisStore::builder`].
///
/// ```no_run
/// # async fn example() -> Result<(), session_core::SetupError> {
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
///
/// Its `Debug` output shows the URL with any password replaced by `***`.
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    pool_size: usize,
    command_timeout: Duration,
    connect_timeout: Duration,
    reconnect_max_delay: Duration,
    client_tracking: bool,
    write_batching: bool,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        RedisStoreBuilder {
            url: DEFAULT_URL.to_owned(),
            pool_size: default_pool_size(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect_max_delay: DEFAULT_RECONNECT_MAX_DELAY,
            client_tracking: true,
            write_batching: true,
        }
    }
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &redact_password(&self.url))
            .field("pool_size", &self.pool_size)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("client_tracking", &self.client_tracking)
            .field("write_batching", &self.write_batching)
            .finish()
    }
}

/// `url` with its secrets replaced by `***`: the password of the user information
/// (`user:password@`, or a lone `secret@`, which Redis reads as a password) and the value
/// of any query parameter whose name contains `password` (`sentinelPassword`). The rest
/// (scheme, host, database, `node`s) stays, for debugging.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL: nothing can be told apart from a secret, so nothing is shown.
        return "***".to_owned();
    };
    let (main, query) = match rest.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (rest, None),
    };
    // Hosts and paths never hold an `@`: everything before the last one is user info.
    let main = match main.rsplit_once('@') {
        Some((user_info, host_and_path)) => {
            let user = match user_info.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{user}@{host_and_path}")
        }
        None => main.to_owned(),
    };
    let mut redacted = format!("{scheme}://{main}");
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
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

    /// Connections in the pool (default [`default_pool_size`]: one per CPU, at most
    /// [`DEFAULT_POOL_SIZE`]; 0 counts as 1).
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

    /// Whether the connections ask Redis to report other writers' changes (client tracking,
    /// RESP3; default true), which lets session-core cache sessions coherently in process.
    /// When the server cannot (Redis before 6, or a proxy that does not pass the reports
    /// on), the store works without it and logs a warning; set false when the application
    /// turns session-core's cache off (`SESSION_CACHE=false`).
    pub fn client_tracking(mut self, tracking: bool) -> Self {
        self.client_tracking = tracking;
        self
    }

    /// Whether compare-and-sets of different sessions that overlap on one connection go
    /// to Redis together, as one script call (default true). Under concurrent load this
    /// saves about a sixth of the server's CPU per write and most of Redis's per-call
    /// work; a batched write waits for the runtime's ready tasks to run once. Set false
    /// to send every write on its own. Never used in a Cluster. Measurements, including
    /// the one setting where it lost (actix-web under real-time scheduling), are in
    /// `docs/performance.md`.
    pub fn write_batching(mut self, batching: bool) -> Self {
        self.write_batching = batching;
        self
    }

    /// Connects the pool and returns the store.
    ///
    /// Fails with [`SetupError::Config`] naming `SESSION_REDIS_URL` for a URL fred cannot
    /// parse (the message does not repeat the URL, which may hold a password), and with
    /// [`SetupError::Store`] ([`StoreError::Unavailable`]) when the server cannot be
    /// reached within the connect and command timeouts. Once connected, the store
    /// reconnects on its own after connections are lost.
    ///
    /// In a Cluster, each master gets a pool of its own (`pool_size` connections) for the
    /// session commands, and a lost master stalls only the sessions in its slots; see
    /// [`RedisStore`].
    pub async fn connect(self) -> Result<RedisStore, SetupError> {
        // Cluster stores never batch (see `write_batching`).
        if self.settings(false)?.0.server.is_clustered() {
            return self.connect_cluster().await;
        }
        let batching = self.write_batching;
        if !self.client_tracking {
            let pool = self.connect_pool(false).await?;
            return Ok(RedisStore::from_pool(pool).with_write_batching(batching));
        }
        let pool = match self.connect_pool(true).await {
            Ok(pool) => pool,
            // RESP3 (HELLO 3) refused: a server before Redis 6. Sessions work without
            // tracking; only the in-process cache is lost.
            Err(SetupError::Store(StoreError::Backend(error))) => {
                tracing::warn!(%error, "Redis refused RESP3; no client tracking, so sessions are not cached in process");
                let pool = self.connect_pool(false).await?;
                return Ok(RedisStore::from_pool(pool).with_write_batching(batching));
            }
            Err(other) => return Err(other),
        };
        let tracking = crate::tracking::Tracking::start(&pool).await;
        Ok(RedisStore::with_tracking(pool, tracking).with_write_batching(batching))
    }

    /// A Cluster: fred's cluster client reads the slot map (and serves
    /// [`RedisStore::pool`], one connection per node), then each master gets its own pool.
    async fn connect_cluster(self) -> Result<RedisStore, SetupError> {
        let cluster = self.clone().pool_size(1).connect_pool(false).await?;
        let routes = async {
            let routing = cluster.next().cached_cluster_state().ok_or_else(|| {
                StoreError::unavailable("the Redis Cluster reported no slot map")
            })?;
            let limit = self.connect_timeout + self.command_timeout;
            let connect = |resp3: bool| {
                let new_pool = self.node_pools(resp3);
                let routing = routing.clone();
                async move {
                    let new_pool = new_pool?;
                    ClusterRoutes::connect(routing, new_pool, limit, self.command_timeout, resp3)
                        .await
                        .map_err(SetupError::Store)
                }
            };
            if !self.client_tracking {
                return connect(false).await;
            }
            match connect(true).await {
                // RESP3 (HELLO 3) refused: a server before Redis 6.
                Err(SetupError::Store(StoreError::Backend(error))) => {
                    tracing::warn!(%error, "Redis refused RESP3; no client tracking, so sessions are not cached in process");
                    connect(false).await
                }
                other => other,
            }
        }
        .await;
        match routes {
            Ok(routes) => Ok(RedisStore::with_routes(cluster, routes)),
            Err(error) => {
                let _ = tokio::time::timeout(self.command_timeout, cluster.quit()).await;
                Err(error)
            }
        }
    }

    /// How to build the pool of one Cluster master: this builder's settings, addressed to
    /// that master alone. `fail_fast`: report a failed first connection instead of retrying
    /// (at start-up; a master that joins later keeps being retried).
    fn node_pools(&self, resp3: bool) -> Result<NewPool, SetupError> {
        let (config, connection, performance, policy) = self.settings(resp3)?;
        let size = self.pool_size;
        Ok(Arc::new(move |server: &Server, fail_fast: bool| {
            let mut config = config.clone();
            config.server = ServerConfig::Centralized {
                server: server.clone(),
            };
            config.fail_fast = fail_fast;
            Builder::from_config(config)
                .set_connection_config(connection.clone())
                .set_performance_config(performance.clone())
                .set_policy(policy.clone())
                .build_pool(size)
        }))
    }

    /// A connected pool, speaking RESP3 when `resp3`.
    async fn connect_pool(&self, resp3: bool) -> Result<Pool, SetupError> {
        let pool = self.build_pool(resp3)?;
        // fred applies the connect timeout per connection; this bounds the whole start-up
        // (sentinel lookup, cluster discovery) as well.
        let limit = self.connect_timeout + self.command_timeout;
        match tokio::time::timeout(limit, pool.init()).await {
            Ok(Ok(_connection_task)) => Ok(pool),
            Ok(Err(error)) => {
                // Clients whose first connection failed have stopped already (quitting them
                // only makes fred log a warning each); stop any that did connect.
                for client in pool.clients() {
                    if client.state() != fred::types::ClientState::Disconnected {
                        let _ = tokio::time::timeout(self.command_timeout, client.quit()).await;
                    }
                }
                Err(SetupError::Store(map_error(error)))
            }
            Err(_) => {
                // Stop the connection tasks still retrying in the background.
                let _ = tokio::time::timeout(self.command_timeout, pool.quit()).await;
                Err(SetupError::Store(StoreError::unavailable(format!(
                    "no connection to Redis within {limit:?}"
                ))))
            }
        }
    }

    /// The fred pool this builder would connect, not yet connected.
    fn build_pool(&self, resp3: bool) -> Result<Pool, SetupError> {
        let (config, connection, performance, policy) = self.settings(resp3)?;
        Builder::from_config(config)
            .set_connection_config(connection)
            .set_performance_config(performance)
            .set_policy(policy)
            .build_pool(self.pool_size)
            .map_err(|error| SetupError::Store(map_error(error)))
    }

    /// fred's configuration for this builder's URL, timeouts and reconnection.
    fn settings(
        &self,
        resp3: bool,
    ) -> Result<(Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy), SetupError> {
        // fred reads any other scheme (http://, a typo) as a standalone server.
        let scheme = self.url.split_once("://").map(|(scheme, _)| scheme);
        if !scheme.is_some_and(|s| s.starts_with("redis") || s.starts_with("valkey")) {
            return Err(ConfigError::new(
                URL_OPTION,
                "the scheme must be redis, rediss, redis-cluster, redis-sentinel, redis+unix \
                 or one of their rediss/valkey forms",
            )
            .into());
        }
        let mut config = Config::from_url(&self.url)
            .map_err(|error| ConfigError::new(URL_OPTION, error.details().to_string()))?;
        // Report an unreachable server at start-up instead of retrying in the background.
        config.fail_fast = true;
        if resp3 {
            // Client tracking pushes invalidations on the tracking connection itself.
            config.version = fred::types::RespVersion::RESP3;
        }
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
            // Each command is written once. fred's default (3) writes a command again on
            // the next connection when the one it was in flight on closes; Redis may have
            // run it already, and a compare-and-set run twice answers "not written" to a
            // write that was made, so the session layer would apply the change again. The
            // caller gets the connection's error instead: the write's outcome is unknown.
            // The store itself sends reads and repeatable writes again (`Sending`).
            max_command_attempts: 1,
            ..ConnectionConfig::default()
        };
        let performance = PerformanceConfig {
            default_command_timeout: self.command_timeout,
            // Invalidations reach the listener through a broadcast channel; a listener that
            // falls behind by more than this flushes the cache.
            broadcast_channel_capacity: 4096,
            ..PerformanceConfig::default()
        };
        let max_delay_ms = u32::try_from(self.reconnect_max_delay.as_millis())
            .unwrap_or(u32::MAX)
            .max(RECONNECT_MIN_DELAY_MS);
        // max_attempts 0: retry forever.
        let policy = ReconnectPolicy::new_exponential(0, RECONNECT_MIN_DELAY_MS, max_delay_ms, 2);
        Ok((config, connection, performance, policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let builder = RedisStoreBuilder::default();
        assert_eq!(builder.url, DEFAULT_URL);
        assert_eq!(builder.pool_size, default_pool_size());
        assert_eq!(builder.command_timeout, DEFAULT_COMMAND_TIMEOUT);
    }

    #[test]
    fn the_default_pool_follows_the_cpus_up_to_four() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_pool_size(), cpus.min(DEFAULT_POOL_SIZE));
        assert!((1..=DEFAULT_POOL_SIZE).contains(&default_pool_size()));
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
        let pool = |url: &str| RedisStoreBuilder::default().url(url).build_pool(false);
        let standalone = pool("redis://127.0.0.1:6379/2").expect("standalone URL");
        assert!(!standalone.is_clustered() && !standalone.uses_sentinels());
        assert_eq!(standalone.client_config().database, Some(2));
        let cluster =
            pool("redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001").expect("cluster URL");
        assert!(cluster.is_clustered());
        let sentinel = pool("redis-sentinel://127.0.0.1:26379?sentinelServiceName=mymaster")
            .expect("sentinel URL");
        assert!(sentinel.uses_sentinels());
        assert_eq!(standalone.size(), default_pool_size());
    }

    #[test]
    fn bad_urls_are_config_errors_naming_the_variable_without_the_url() {
        for url in [
            "not a url",
            "http://127.0.0.1:6379",
            "redis-sentinel://127.0.0.1:26379",
            "redis://user:hunter2@[bad",
        ] {
            match RedisStoreBuilder::default().url(url).build_pool(true) {
                Err(SetupError::Config(error)) => {
                    assert_eq!(error.option, "SESSION_REDIS_URL", "{url}");
                    let message = error.to_string();
                    assert!(
                        message.starts_with("invalid SESSION_REDIS_URL: "),
                        "{message}"
                    );
                    assert!(!message.contains("127.0.0.1"), "{message}");
                    assert!(!message.contains("hunter2"), "{message}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        for (url, shown) in [
            (
                "redis://user:hunter2@10.0.0.5:6379/2",
                "redis://user:***@10.0.0.5:6379/2",
            ),
            ("redis://:hunter2@cache", "redis://:***@cache"),
            ("rediss://hunter2@cache:6380", "rediss://***@cache:6380"),
            (
                "redis-sentinel://u:hunter2@s1:26379/0?sentinelServiceName=m&node=s2:26379",
                "redis-sentinel://u:***@s1:26379/0?sentinelServiceName=m&node=s2:26379",
            ),
            (
                "redis-sentinel://s1?sentinelServiceName=m&sentinelUsername=u&sentinelPassword=hunter2",
                "redis-sentinel://s1?sentinelServiceName=m&sentinelUsername=u&sentinelPassword=***",
            ),
            // Reserved characters the URL should have percent-encoded.
            ("redis://u:hun/ter2@cache/1", "redis://u:***@cache/1"),
            // An `@` in the password (a URL that was not percent-encoded).
            ("redis://u:hun@ter2@cache", "redis://u:***@cache"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("hunter2", "***"),
        ] {
            let debug = format!("{:?}", RedisStoreBuilder::default().url(url));
            assert!(debug.contains(&format!("{shown:?}")), "{url}: {debug}");
            assert!(!debug.contains("hunter2"), "{url}: {debug}");
            assert!(!debug.contains("ter2"), "{url}: {debug}");
        }
    }
}
