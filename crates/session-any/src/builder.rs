//! [`AnyStoreBuilder`]: reads the variables, lets code adjust each backend's builder, and
//! connects the store `SESSION_TYPE` names.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use session_core::{BoxError, ConfigError, MemoryStore, SessionStore, SetupError, StoreError};

use crate::names::*;
use crate::{AnyStore, SessionType};

/// A change to one backend's builder, applied just before it connects.
#[allow(dead_code)] // unused when no backend with a builder is compiled in
type Adjust<B> = Option<Box<dyn FnOnce(B) -> B + Send>>;

/// Builds an [`AnyStore`] from environment variables (see the crate documentation for
/// every name), with optional adjustments in code of the chosen backend's own builder,
/// for options that have no variable (pool sizes, timeouts, ...).
///
/// The variables are read when the builder is made ([`from_env`](Self::from_env),
/// [`from_lookup`](Self::from_lookup)); they are checked, and the store connected, by
/// [`connect`](Self::connect).
///
/// ```no_run
/// # async fn example() -> Result<(), session_core::SetupError> {
/// use session_any::AnyStoreBuilder;
///
/// let store = AnyStoreBuilder::from_env()
///     .redis(|builder| builder.pool_size(8)) // used only when SESSION_TYPE=redis
///     .connect()
///     .await?;
/// println!("sessions in {}", store.session_type());
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until connect() is awaited"]
pub struct AnyStoreBuilder {
    /// The non-empty values of [`STORE_ENV_NAMES`].
    values: HashMap<&'static str, String>,
    /// `SESSION_CACHE` is not `false`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    cache_wanted: bool,
    /// Core's `SESSION_STORE_TIMEOUT` as set, checked when a store that follows it is built.
    #[allow(dead_code)] // unused when no backend that follows it is compiled in
    store_timeout: Option<String>,
    #[cfg(feature = "filesystem")]
    filesystem: Adjust<session_filesystem::FileStoreBuilder>,
    #[cfg(feature = "redis")]
    redis: Adjust<session_redis::RedisStoreBuilder>,
    #[cfg(feature = "memcached")]
    memcached: Adjust<session_memcached::MemcachedStoreBuilder>,
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    sql: Adjust<session_sql::SqlStoreBuilder>,
    #[cfg(feature = "mongodb")]
    mongodb: Adjust<session_mongodb::MongoStoreBuilder>,
    #[cfg(feature = "dynamodb")]
    dynamodb: Adjust<session_dynamo::DynamoStoreBuilder>,
}

impl fmt::Debug for AnyStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values can be URLs with passwords: only the names that are set are shown.
        let mut set: Vec<&str> = self.values.keys().copied().collect();
        set.sort_unstable();
        f.debug_struct("AnyStoreBuilder")
            .field("variables_set", &set)
            .finish_non_exhaustive()
    }
}

impl AnyStoreBuilder {
    /// Reads the variables from the process environment, and warns (with `tracing`) about
    /// each `SESSION_*` variable set there that nothing reads, naming the closest known
    /// name ([`crate::names::unread_variables`]).
    pub fn from_env() -> AnyStoreBuilder {
        crate::names::warn_unread_variables();
        AnyStoreBuilder::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (a name in, its value out), for configuration
    /// kept elsewhere than the process environment, and for tests. Empty and blank values
    /// count as unset, as in `SessionConfig::from_lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> AnyStoreBuilder {
        let values = STORE_ENV_NAMES
            .iter()
            .filter_map(|name| {
                let value = lookup(name).filter(|value| !value.trim().is_empty())?;
                Some((*name, value))
            })
            .collect();
        // Core's SESSION_CACHE: read here only to skip Redis's client tracking when off.
        let cache_wanted = lookup("SESSION_CACHE")
            .and_then(|value| session_core::parse_bool(value.trim()).ok())
            .unwrap_or(true);
        // Core's deadline per store call: the SQL store's database timeouts follow it.
        let store_timeout = lookup(session_core::STORE_TIMEOUT_OPTION);
        AnyStoreBuilder {
            values,
            cache_wanted,
            store_timeout,
            #[cfg(feature = "filesystem")]
            filesystem: None,
            #[cfg(feature = "redis")]
            redis: None,
            #[cfg(feature = "memcached")]
            memcached: None,
            #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
            sql: None,
            #[cfg(feature = "mongodb")]
            mongodb: None,
            #[cfg(feature = "dynamodb")]
            dynamodb: None,
        }
    }

    /// The type `SESSION_TYPE` names ([`SessionType::Filesystem`] when unset), whether or
    /// not this build can make it.
    pub fn session_type(&self) -> Result<SessionType, ConfigError> {
        match self.get(SESSION_TYPE) {
            Some(value) => value.parse(),
            None => Ok(SessionType::default()),
        }
    }

    /// Adjusts the filesystem store's builder after the variables are applied.
    #[cfg(feature = "filesystem")]
    pub fn filesystem(
        mut self,
        adjust: impl FnOnce(session_filesystem::FileStoreBuilder) -> session_filesystem::FileStoreBuilder
            + Send
            + 'static,
    ) -> Self {
        self.filesystem = Some(Box::new(adjust));
        self
    }

    /// Adjusts the Redis store's builder after the variables are applied.
    #[cfg(feature = "redis")]
    pub fn redis(
        mut self,
        adjust: impl FnOnce(session_redis::RedisStoreBuilder) -> session_redis::RedisStoreBuilder
            + Send
            + 'static,
    ) -> Self {
        self.redis = Some(Box::new(adjust));
        self
    }

    /// Adjusts the memcached store's builder after the variables are applied.
    #[cfg(feature = "memcached")]
    pub fn memcached(
        mut self,
        adjust: impl FnOnce(
                session_memcached::MemcachedStoreBuilder,
            ) -> session_memcached::MemcachedStoreBuilder
            + Send
            + 'static,
    ) -> Self {
        self.memcached = Some(Box::new(adjust));
        self
    }

    /// Adjusts the SQL store's builder after the variables are applied.
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    pub fn sql(
        mut self,
        adjust: impl FnOnce(session_sql::SqlStoreBuilder) -> session_sql::SqlStoreBuilder
            + Send
            + 'static,
    ) -> Self {
        self.sql = Some(Box::new(adjust));
        self
    }

    /// Adjusts the MongoDB store's builder after the variables are applied.
    #[cfg(feature = "mongodb")]
    pub fn mongodb(
        mut self,
        adjust: impl FnOnce(session_mongodb::MongoStoreBuilder) -> session_mongodb::MongoStoreBuilder
            + Send
            + 'static,
    ) -> Self {
        self.mongodb = Some(Box::new(adjust));
        self
    }

    /// Adjusts the DynamoDB store's builder after the variables are applied.
    #[cfg(feature = "dynamodb")]
    pub fn dynamodb(
        mut self,
        adjust: impl FnOnce(session_dynamo::DynamoStoreBuilder) -> session_dynamo::DynamoStoreBuilder
            + Send
            + 'static,
    ) -> Self {
        self.dynamodb = Some(Box::new(adjust));
        self
    }

    /// Checks the variables and connects the store `SESSION_TYPE` names.
    ///
    /// Fails with [`SetupError::Config`] naming the variable at fault: `SESSION_TYPE` for
    /// an unknown type or one whose cargo feature is off (the message names the feature),
    /// the backend's variable for a bad value; with [`SetupError::Store`] when the server
    /// cannot be reached or refuses the setup. Messages never contain a URL.
    pub async fn connect(self) -> Result<AnyStore, SetupError> {
        let session_type = self.session_type()?;
        if !session_type.is_built() {
            return Err(session_type.not_built().into());
        }
        let store: Arc<dyn SessionStore> = match session_type {
            #[cfg(feature = "filesystem")]
            SessionType::Filesystem => Arc::new(self.filesystem_store()?),
            #[cfg(feature = "cachelib")]
            SessionType::Cachelib => Arc::new(self.cachelib_store()?),
            SessionType::Memory => {
                tracing::warn!("sessions are kept in memory and lost when the process exits");
                Arc::new(MemoryStore::new())
            }
            #[cfg(feature = "redis")]
            SessionType::Redis => Arc::new(self.redis_store().await?),
            #[cfg(feature = "memcached")]
            SessionType::Memcached => Arc::new(self.memcached_store().await?),
            #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
            SessionType::Sql => Arc::new(self.sql_store().await?),
            #[cfg(feature = "mongodb")]
            SessionType::MongoDb => Arc::new(self.mongodb_store().await?),
            #[cfg(feature = "dynamodb")]
            SessionType::DynamoDb => Arc::new(self.dynamodb_store().await?),
            // Types whose feature is off were refused above.
            #[allow(unreachable_patterns)]
            other => return Err(other.not_built().into()),
        };
        Ok(AnyStore::from_shared(session_type, store))
    }

    /// The non-empty value of `name`, one of [`STORE_ENV_NAMES`].
    fn get(&self, name: &'static str) -> Option<&str> {
        debug_assert!(
            STORE_ENV_NAMES.contains(&name),
            "{name} is missing from STORE_ENV_NAMES"
        );
        self.values.get(name).map(String::as_str)
    }

    /// A boolean variable: `true/false`, `1/0`, `yes/no`, `on/off` in any case (the rule of
    /// `SessionConfig::from_env`); unset is `false`.
    #[allow(dead_code)] // only the SQL and DynamoDB stores have boolean options
    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(false),
            Some(value) => session_core::parse_bool(value.trim())
                .map_err(|message| ConfigError::new(name, message)),
        }
    }

    #[cfg(feature = "filesystem")]
    fn filesystem_store(mut self) -> Result<session_filesystem::FileStore, SetupError> {
        let mut builder = session_filesystem::FileStore::builder();
        if let Some(dir) = self.get(SESSION_FILE_DIR) {
            builder = builder.dir(dir);
        }
        if let Some(mode) = self.get(SESSION_FILE_MODE) {
            builder = builder.file_mode(session_core::parse_file_mode(mode)?);
        }
        if let Some(adjust) = self.filesystem.take() {
            builder = adjust(builder);
        }
        let store = builder.build()?;
        tracing::info!(dir = %store.dir().display(), "sessions are stored in files");
        Ok(store)
    }

    #[cfg(feature = "cachelib")]
    fn cachelib_store(self) -> Result<session_cachelib::CachelibStore, SetupError> {
        let builder = session_cachelib::CachelibStoreBuilder::from_lookup(|name| {
            [SESSION_FILE_DIR, SESSION_FILE_THRESHOLD, SESSION_FILE_MODE]
                .into_iter()
                .find(|known| *known == name)
                .and_then(|known| self.get(known))
                .map(str::to_owned)
        })?;
        let store = builder.build()?;
        tracing::info!(dir = %store.dir().display(), "sessions are stored in Flask's cachelib files");
        Ok(store)
    }

    #[cfg(feature = "redis")]
    async fn redis_store(mut self) -> Result<session_redis::RedisStore, SetupError> {
        let url = self
            .get(SESSION_REDIS_URL)
            .unwrap_or(session_redis::DEFAULT_URL);
        // No client tracking when the application turns session-core's cache off: it would
        // cost RESP3 and invalidation traffic for nothing.
        let cache = self.cache_wanted;
        let mut builder = session_redis::RedisStore::builder()
            .url(url)
            .client_tracking(cache);
        if let Some(adjust) = self.redis.take() {
            builder = adjust(builder);
        }
        let store = builder
            .connect()
            .await
            .map_err(unreachable("Redis", SESSION_REDIS_URL))?;
        tracing::info!(
            clustered = store.is_clustered(),
            "sessions are stored in Redis"
        );
        Ok(store)
    }

    #[cfg(feature = "memcached")]
    async fn memcached_store(mut self) -> Result<session_memcached::MemcachedStore, SetupError> {
        let mut builder = session_memcached::MemcachedStore::builder()
            .server_list(self.get(SESSION_MEMCACHED_SERVERS).unwrap_or_default());
        if let Some(adjust) = self.memcached.take() {
            builder = adjust(builder);
        }
        let store = builder
            .connect()
            .await
            .map_err(unreachable("memcached", SESSION_MEMCACHED_SERVERS))?;
        let servers: Vec<&str> = store.servers().collect();
        tracing::info!(?servers, "sessions are stored in memcached");
        Ok(store)
    }

    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    async fn sql_store(mut self) -> Result<session_sql::SqlStore, SetupError> {
        let (url_name, url) = self.sql_url()?;
        let store_timeout =
            session_core::store_timeout_from_lookup(|_| self.store_timeout.clone())?;
        let mut builder = session_sql::SqlStore::builder()
            .url(&url)
            .store_timeout(store_timeout)
            .table_exists(self.flag(SESSION_SQLALCHEMY_TABLE_EXISTS)?);
        if let Some(table) = self.get(SESSION_SQLALCHEMY_TABLE) {
            builder = builder.table(table);
        }
        if let Some(schema) = self.get(SESSION_SQLALCHEMY_SCHEMA) {
            builder = builder.schema(schema);
        }
        if let Some(sequence) = self.get(SESSION_SQLALCHEMY_SEQUENCE) {
            builder = builder.sequence(sequence);
        }
        if let Some(adjust) = self.sql.take() {
            builder = adjust(builder);
        }
        let store = builder
            .connect()
            .await
            .map_err(|error| match error {
                // The store names its URL option SESSION_SQL_URL; say which variable held it.
                SetupError::Config(config) if config.option == SESSION_SQL_URL => {
                    ConfigError::new(url_name, config.message).into()
                }
                other => other,
            })
            .map_err(unreachable("the SQL database", url_name))?;
        tracing::info!(database = ?store.backend(), "sessions are stored in SQL");
        Ok(store)
    }

    /// The SQL database's URL (sqlx's form) and the variable it came from: ours
    /// (`SESSION_SQL_URL`, sqlx's form) first, then SQLAlchemy URLs as a Flask app sets
    /// them: `SESSION_SQLALCHEMY`, the bind `SESSION_SQLALCHEMY_BIND_KEY` names in
    /// `SQLALCHEMY_BINDS`, `SQLALCHEMY_DATABASE_URI`.
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    fn sql_url(&self) -> Result<(&'static str, String), ConfigError> {
        if let Some(url) = self.get(SESSION_SQL_URL) {
            return Ok((SESSION_SQL_URL, url.to_owned()));
        }
        let sqlalchemy = |name: &'static str, url: &str| {
            session_sql::url_from_sqlalchemy(url)
                .map(|url| (name, url))
                .map_err(|message| ConfigError::new(name, message))
        };
        if let Some(url) = self.get(SESSION_SQLALCHEMY) {
            return sqlalchemy(SESSION_SQLALCHEMY, url);
        }
        if let Some(key) = self.get(SESSION_SQLALCHEMY_BIND_KEY) {
            let key = key.trim();
            let binds = self.get(SQLALCHEMY_BINDS).ok_or_else(|| {
                ConfigError::new(
                    SESSION_SQLALCHEMY_BIND_KEY,
                    format!("names the bind {key:?} but SQLALCHEMY_BINDS is not set"),
                )
            })?;
            let url = bind_url(binds, key)
                .map_err(|message| ConfigError::new(SQLALCHEMY_BINDS, message))?
                .ok_or_else(|| {
                    ConfigError::new(
                        SESSION_SQLALCHEMY_BIND_KEY,
                        format!("names the bind {key:?}, which SQLALCHEMY_BINDS does not have"),
                    )
                })?;
            return sqlalchemy(SQLALCHEMY_BINDS, &url);
        }
        if let Some(url) = self.get(SQLALCHEMY_DATABASE_URI) {
            return sqlalchemy(SQLALCHEMY_DATABASE_URI, url);
        }
        Err(ConfigError::new(
            SESSION_SQL_URL,
            "SESSION_TYPE=sqlalchemy needs the database URL (postgres://, mysql://, \
             sqlite://): set SESSION_SQL_URL, or SQLALCHEMY_DATABASE_URI as for \
             Flask-SQLAlchemy",
        ))
    }

    #[cfg(feature = "mongodb")]
    async fn mongodb_store(mut self) -> Result<session_mongodb::MongoStore, SetupError> {
        let mut builder = session_mongodb::MongoStore::builder();
        if let Some(url) = self.get(SESSION_MONGODB_URL) {
            builder = builder.url(url);
        }
        if let Some(database) = self.get(SESSION_MONGODB_DB) {
            builder = builder.database(database);
        }
        if let Some(collection) = self.get(SESSION_MONGODB_COLLECT) {
            builder = builder.collection(collection);
        }
        if let Some(adjust) = self.mongodb.take() {
            builder = adjust(builder);
        }
        let store = builder
            .connect()
            .await
            .map_err(unreachable("MongoDB", SESSION_MONGODB_URL))?;
        tracing::info!("sessions are stored in MongoDB");
        Ok(store)
    }

    #[cfg(feature = "dynamodb")]
    async fn dynamodb_store(mut self) -> Result<session_dynamo::DynamoStore, SetupError> {
        let mut builder = session_dynamo::DynamoStore::builder()
            .table_exists(self.flag(SESSION_DYNAMODB_TABLE_EXISTS)?);
        builder = match self.get(SESSION_DYNAMODB_ENDPOINT) {
            // Unset: Flask-Session's http://localhost:8000 with its dummy credentials.
            None => builder,
            Some(endpoint) if endpoint.trim().eq_ignore_ascii_case("aws") => builder.aws_endpoint(),
            Some(endpoint) => builder.endpoint_url(endpoint.trim()),
        };
        let table_names = (
            self.get(SESSION_DYNAMODB_TABLE),
            self.get(SESSION_DYNAMODB_TABLE_NAME),
        );
        // The variable that named the table, for errors about its value.
        let table_variable = match table_names {
            (None, Some(_)) => SESSION_DYNAMODB_TABLE_NAME,
            _ => SESSION_DYNAMODB_TABLE,
        };
        let table = match table_names {
            (Some(table), Some(other)) if table.trim() != other.trim() => {
                return Err(ConfigError::new(
                    SESSION_DYNAMODB_TABLE_NAME,
                    format!(
                        "names the table {other:?} but SESSION_DYNAMODB_TABLE names {table:?}; \
                         set only one"
                    ),
                )
                .into())
            }
            (Some(table), _) | (None, Some(table)) => Some(table),
            (None, None) => None,
        };
        if let Some(table) = table {
            builder = builder.table_name(table);
        }
        if let Some(region) = self.get(AWS_REGION) {
            builder = builder.region(region);
        }
        if let Some(adjust) = self.dynamodb.take() {
            builder = adjust(builder);
        }
        let store = builder.connect().await.map_err(|error| match error {
            SetupError::Config(config) if config.option == SESSION_DYNAMODB_TABLE => {
                ConfigError::new(table_variable, config.message).into()
            }
            other => other,
        })?;
        tracing::info!(
            table = store.table_name(),
            "sessions are stored in DynamoDB"
        );
        Ok(store)
    }
}

/// The URL of bind `key` in `SQLALCHEMY_BINDS`: a JSON object whose values are URLs or
/// `{"url": URL, …}` (Flask-SQLAlchemy's dict, as JSON), or `key=url,key=url`. `Ok(None)`
/// when the bind is not there; an error (never quoting the value, which holds passwords)
/// when the value cannot be read.
#[allow(dead_code)] // only the SQL store has binds
fn bind_url(binds: &str, key: &str) -> Result<Option<String>, String> {
    let binds = binds.trim();
    if binds.starts_with('{') {
        let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(binds)
            .map_err(|error| {
                format!(
                    "is not a JSON object of bind names to URLs (line {}, column {})",
                    error.line(),
                    error.column()
                )
            })?;
        return match parsed.get(key) {
            None => Ok(None),
            Some(serde_json::Value::String(url)) => Ok(Some(url.clone())),
            Some(serde_json::Value::Object(options)) => match options.get("url") {
                Some(serde_json::Value::String(url)) => Ok(Some(url.clone())),
                _ => Err(format!("the bind {key:?} has no \"url\" string")),
            },
            Some(_) => Err(format!("the bind {key:?} is neither a URL nor an object")),
        };
    }
    for entry in binds.split(',') {
        let Some((name, url)) = entry.split_once('=') else {
            return Err("is neither a JSON object nor key=url,key=url".to_owned());
        };
        if name.trim() == key {
            return Ok(Some(url.trim().to_owned()));
        }
    }
    Ok(None)
}

/// A server that did not answer while connecting, named with the variable that points at
/// it, so the operator knows what to check. The driver's error is the source.
#[derive(Debug)]
struct Unreachable {
    server: &'static str,
    variable: &'static str,
    source: BoxError,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no answer from {} ({})", self.server, self.variable)
    }
}

impl std::error::Error for Unreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Names `server` and `variable` in an `Unavailable` setup error; other errors pass
/// unchanged (configuration errors name their variable already).
#[allow(dead_code)] // unused when no network backend is compiled in
fn unreachable(
    server: &'static str,
    variable: &'static str,
) -> impl FnOnce(SetupError) -> SetupError {
    move |error| match error {
        SetupError::Store(StoreError::Unavailable(source)) => {
            SetupError::Store(StoreError::unavailable(Unreachable {
                server,
                variable,
                source,
            }))
        }
        other => other,
    }
}

#[cfg(test)]
mod bind_tests {
    use super::bind_url;

    #[test]
    fn binds_are_read_as_json_or_as_pairs() {
        let json =
            r#"{"users": "sqlite:///u.db", "sessions": {"url": "postgresql://h/s", "echo": true}}"#;
        assert_eq!(
            bind_url(json, "sessions").unwrap().as_deref(),
            Some("postgresql://h/s")
        );
        assert_eq!(
            bind_url(json, "users").unwrap().as_deref(),
            Some("sqlite:///u.db")
        );
        assert_eq!(bind_url(json, "other").unwrap(), None);
        let pairs = "users=sqlite:///u.db, sessions = postgresql://u:p@h/s?sslmode=require";
        assert_eq!(
            bind_url(pairs, "sessions").unwrap().as_deref(),
            Some("postgresql://u:p@h/s?sslmode=require")
        );
        assert_eq!(bind_url(pairs, "nope").unwrap(), None);
        for bad in [
            r#"{"sessions": 3}"#,
            r#"{"sessions": {"echo": 1}}"#,
            "{oops hunter2",
            "hunter2",
        ] {
            let error = bind_url(bad, "sessions").expect_err(bad);
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_server_is_named_with_its_variable() {
        let error = unreachable("Redis", SESSION_REDIS_URL)(SetupError::Store(
            StoreError::unavailable("connection refused"),
        ));
        assert!(error.is_unavailable());
        let SetupError::Store(StoreError::Unavailable(source)) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(
            source.to_string(),
            "no answer from Redis (SESSION_REDIS_URL)"
        );
        let driver = std::error::Error::source(&**source).map(|e| e.to_string());
        assert_eq!(driver.as_deref(), Some("connection refused"));
        let config = unreachable("Redis", SESSION_REDIS_URL)(
            ConfigError::new(SESSION_REDIS_URL, "bad").into(),
        );
        assert!(matches!(config, SetupError::Config(_)));
    }

    fn builder(pairs: &[(&str, &str)]) -> AnyStoreBuilder {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        AnyStoreBuilder::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(known, _)| known == name)
                .map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn only_listed_names_are_read_and_blank_values_are_unset() {
        let asked = std::cell::RefCell::new(Vec::new());
        let read = AnyStoreBuilder::from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            Some(if name == SESSION_TYPE { " " } else { "x" }.to_owned())
        });
        // The store's names, then core's SESSION_CACHE (which decides Redis's tracking) and
        // SESSION_STORE_TIMEOUT (from which the drivers' own timeouts are derived).
        let mut expected: Vec<&str> = STORE_ENV_NAMES.to_vec();
        expected.extend(["SESSION_CACHE", "SESSION_STORE_TIMEOUT"]);
        assert_eq!(asked.into_inner(), expected);
        assert_eq!(read.session_type(), Ok(SessionType::Filesystem));
        assert!(read.get(SESSION_FILE_DIR).is_some());
    }

    #[test]
    fn booleans_follow_session_configs_rule() {
        for (value, expected) in [("TRUE", true), (" on ", true), ("0", false), ("No", false)] {
            let read = builder(&[(SESSION_SQLALCHEMY_TABLE_EXISTS, value)]);
            assert_eq!(read.flag(SESSION_SQLALCHEMY_TABLE_EXISTS), Ok(expected));
        }
        assert_eq!(builder(&[]).flag(SESSION_DYNAMODB_TABLE_EXISTS), Ok(false));
        let error = builder(&[(SESSION_DYNAMODB_TABLE_EXISTS, "maybe")])
            .flag(SESSION_DYNAMODB_TABLE_EXISTS)
            .unwrap_err();
        assert_eq!(error.option, "SESSION_DYNAMODB_TABLE_EXISTS");
    }

    #[test]
    fn debug_output_shows_names_not_values() {
        let read = builder(&[(SESSION_REDIS_URL, "redis://:hunter2@cache")]);
        let shown = format!("{read:?}");
        assert!(shown.contains("SESSION_REDIS_URL"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
