//! [`MongoStoreBuilder`]: where the store connects, which collection it uses, time limits.

use std::time::Duration;

use mongodb::bson::Document;
use mongodb::options::ClientOptions;
use mongodb::Client;
use session_core::{ConfigError, SetupError, StoreError};

use crate::error::map_error;
use crate::store::MongoStore;

/// Where [`MongoStoreBuilder`] connects unless told otherwise: Flask-Session's default
/// client, `pymongo.MongoClient()`, uses the same server.
pub const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017";

/// The database unless [`MongoStoreBuilder::database`] says otherwise; Flask-Session's
/// `SESSION_MONGODB_DB` default.
pub const DEFAULT_DATABASE: &str = "flask_session";

/// The collection unless [`MongoStoreBuilder::collection`] says otherwise; Flask-Session's
/// `SESSION_MONGODB_COLLECT` default.
pub const DEFAULT_COLLECTION: &str = "sessions";

/// How long the driver looks for a usable server before an operation fails with
/// [`StoreError::Unavailable`] (the driver's own default is 30 s). Three seconds lets a
/// request answer 503 promptly while a server is down, yet rides out a brief restart.
/// A `serverSelectionTimeoutMS` in the URL takes precedence over this default.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// How long opening one connection (TCP, TLS and the MongoDB handshake) may take (the
/// driver's own default is 10 s). A `connectTimeoutMS` in the URL takes precedence.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the driver checks each server (the driver's own default is 10 s; 500 ms is
/// its minimum). After a server stalled or restarted, operations wait for the next check
/// to find it usable again; with the default, the fault matrix saw the first answer up to
/// 3.4 s after the server's return, with 500 ms about 0.1 s. A `heartbeatFrequencyMS` in
/// the URL takes precedence.
pub const DEFAULT_HEARTBEAT_FREQUENCY: Duration = Duration::from_millis(500);

/// The limit on each store operation as a whole, server selection included. The driver
/// has no per-socket read timeout, so this is what keeps a request from hanging on a
/// server that accepted a connection and then stopped answering. A session operation
/// takes a few milliseconds on a healthy server.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment names of the options, named by configuration errors.
const URL_OPTION: &str = "SESSION_MONGODB_URL";
const DATABASE_OPTION: &str = "SESSION_MONGODB_DB";
const COLLECTION_OPTION: &str = "SESSION_MONGODB_COLLECT";

enum Source {
    Url(String),
    Client(Client),
}

/// Configures and connects a [`MongoStore`]. Start from [`MongoStore::builder`].
///
/// ```no_run
/// # async fn example() -> Result<(), session_core::SetupError> {
/// use std::time::Duration;
/// use session_mongodb::MongoStore;
///
/// let store = MongoStore::builder()
///     .url("mongodb://db1.internal:27017,db2.internal:27017/?replicaSet=rs0")
///     .database("myapp")
///     .collection("web_sessions")
///     .server_selection_timeout(Duration::from_secs(10))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
pub struct MongoStoreBuilder {
    source: Source,
    database: String,
    collection: String,
    skip_index_creation: bool,
    server_selection_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    heartbeat_frequency: Option<Duration>,
    operation_timeout: Duration,
}

impl std::fmt::Debug for MongoStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        let source = match self.source {
            Source::Url(_) => "url",
            Source::Client(_) => "client",
        };
        f.debug_struct("MongoStoreBuilder")
            .field("source", &source)
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("skip_index_creation", &self.skip_index_creation)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("heartbeat_frequency", &self.heartbeat_frequency)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

impl Default for MongoStoreBuilder {
    fn default() -> Self {
        MongoStoreBuilder {
            source: Source::Url(DEFAULT_URL.to_owned()),
            database: DEFAULT_DATABASE.to_owned(),
            collection: DEFAULT_COLLECTION.to_owned(),
            skip_index_creation: false,
            server_selection_timeout: None,
            connect_timeout: None,
            heartbeat_frequency: None,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }
}

impl MongoStoreBuilder {
    /// The server, as a MongoDB connection string (default [`DEFAULT_URL`]), for example
    /// `mongodb://user:password@host:27017/?replicaSet=rs0&authSource=admin`.
    /// `mongodb+srv://` needs this crate's `dns-resolver` feature; `tls=true` works as is
    /// (rustls). Replaces an earlier [`client`](Self::client).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.source = Source::Url(url.into());
        self
    }

    /// A client the application configured itself (the equivalent of Flask-Session's
    /// `SESSION_MONGODB`). Its own options are kept, so the server-selection and connect
    /// timeouts of this builder do not apply to it; the operation timeout does.
    pub fn client(mut self, client: Client) -> Self {
        self.source = Source::Client(client);
        self
    }

    /// The database (default [`DEFAULT_DATABASE`], Flask-Session's `SESSION_MONGODB_DB`).
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// The collection (default [`DEFAULT_COLLECTION`], Flask-Session's
    /// `SESSION_MONGODB_COLLECT`).
    pub fn collection(mut self, collection: impl Into<String>) -> Self {
        self.collection = collection.into();
        self
    }

    /// Skips creating the indexes at start-up (default `false`), for deployments where
    /// the application's database user may not create indexes. Create them yourself then
    /// (see [`MongoStore::ensure_indexes`]): without the unique index on `id`, creating a
    /// session is not atomic, and without the TTL index expired documents stay until
    /// [`cleanup`](session_core::SessionStore::cleanup) removes them.
    pub fn skip_index_creation(mut self, skip: bool) -> Self {
        self.skip_index_creation = skip;
        self
    }

    /// How long to look for a usable server (default [`DEFAULT_SERVER_SELECTION_TIMEOUT`],
    /// or the URL's `serverSelectionTimeoutMS`). Not applied to a [`client`](Self::client).
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = Some(timeout.max(Duration::from_millis(1)));
        self
    }

    /// How long opening one connection may take (default [`DEFAULT_CONNECT_TIMEOUT`], or
    /// the URL's `connectTimeoutMS`). Not applied to a [`client`](Self::client).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        // The driver reads zero as "no limit".
        self.connect_timeout = Some(timeout.max(Duration::from_millis(1)));
        self
    }

    /// How often the driver checks each server (default [`DEFAULT_HEARTBEAT_FREQUENCY`], or
    /// the URL's `heartbeatFrequencyMS`; the driver refuses less than 500 ms). Not applied
    /// to a [`client`](Self::client).
    pub fn heartbeat_frequency(mut self, frequency: Duration) -> Self {
        self.heartbeat_frequency = Some(frequency);
        self
    }

    /// The limit on each store operation as a whole (default
    /// [`DEFAULT_OPERATION_TIMEOUT`]; values under 1 ms count as 1 ms).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Connects and returns the store, after creating its indexes (unless skipped) or
    /// otherwise pinging the server: either way the server has answered once.
    ///
    /// Fails with [`SetupError::Config`] for an invalid URL (naming `SESSION_MONGODB_URL`;
    /// the message does not repeat the URL, which may hold a password) or an invalid
    /// database or collection name (`SESSION_MONGODB_DB`, `SESSION_MONGODB_COLLECT`); with
    /// [`SetupError::Store`]: [`StoreError::Unavailable`] when no server answers within the
    /// time limits, [`StoreError::Backend`] for indexes that conflict with existing ones.
    pub async fn connect(self) -> Result<MongoStore, SetupError> {
        validate_database_name(&self.database)?;
        validate_collection_name(&self.collection)?;
        let client = match self.source {
            Source::Client(client) => client,
            Source::Url(ref url) => {
                let options = self.client_options(url).await?;
                Client::with_options(options).map_err(|error| {
                    ConfigError::new(URL_OPTION, format!("invalid client options: {error}"))
                })?
            }
        };
        let collection = client
            .database(&self.database)
            .collection::<Document>(&self.collection);
        let store = MongoStore::new(client, collection, self.operation_timeout);
        if self.skip_index_creation {
            store.ping().await?;
        } else {
            store.ensure_indexes().await?;
        }
        Ok(store)
    }

    async fn client_options(&self, url: &str) -> Result<ClientOptions, SetupError> {
        // Parsing a mongodb+srv:// URL looks up DNS records: bound it like any operation.
        let parsed =
            match tokio::time::timeout(self.operation_timeout, ClientOptions::parse(url)).await {
                Ok(parsed) => parsed,
                Err(_) => {
                    return Err(StoreError::unavailable(format!(
                        "MongoDB URL not resolved within {:?}",
                        self.operation_timeout
                    ))
                    .into())
                }
            };
        let mut options = parsed.map_err(|error| match map_error(error) {
            unavailable @ StoreError::Unavailable(_) => SetupError::Store(unavailable),
            // The driver's message can quote the URL, password included.
            _ => ConfigError::new(
                URL_OPTION,
                "expected mongodb://[user:password@]host[:port][,...][/[database]][?options] \
                 (mongodb+srv:// needs the dns-resolver feature)",
            )
            .into(),
        })?;
        if let Some(timeout) = self.server_selection_timeout {
            options.server_selection_timeout = Some(timeout);
        } else if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(DEFAULT_SERVER_SELECTION_TIMEOUT);
        }
        if let Some(timeout) = self.connect_timeout {
            options.connect_timeout = Some(timeout);
        } else if options.connect_timeout.is_none() {
            options.connect_timeout = Some(DEFAULT_CONNECT_TIMEOUT);
        }
        if let Some(frequency) = self.heartbeat_frequency {
            options.heartbeat_freq = Some(frequency);
        } else if options.heartbeat_freq.is_none() {
            options.heartbeat_freq = Some(DEFAULT_HEARTBEAT_FREQUENCY);
        }
        if options.app_name.is_none() {
            options.app_name = Some("session-mongodb".to_owned());
        }
        Ok(options)
    }
}

/// MongoDB's rules for database names, checked here so that a typo fails at start-up
/// with the option named instead of at the first request.
fn validate_database_name(name: &str) -> Result<(), ConfigError> {
    let forbidden = ['/', '\\', '.', ' ', '"', '$', '\0'];
    if name.is_empty() || name.len() >= 64 || name.contains(forbidden) {
        return Err(ConfigError::new(
            DATABASE_OPTION,
            format!(
                "{name:?} is not a MongoDB database name: it must be 1-63 bytes without \
                 / \\ . \" $, spaces or NUL"
            ),
        ));
    }
    Ok(())
}

fn validate_collection_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.contains(['$', '\0']) || name.starts_with("system.") {
        return Err(ConfigError::new(
            COLLECTION_OPTION,
            format!(
                "{name:?} is not a MongoDB collection name: it must be non-empty, without $ \
                 or NUL, and not start with \"system.\""
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_flask_session() {
        let builder = MongoStoreBuilder::default();
        assert!(matches!(&builder.source, Source::Url(url) if url == DEFAULT_URL));
        assert_eq!(builder.database, "flask_session");
        assert_eq!(builder.collection, "sessions");
        assert!(!builder.skip_index_creation);
        assert_eq!(builder.operation_timeout, DEFAULT_OPERATION_TIMEOUT);
    }

    #[tokio::test]
    async fn default_timeouts_apply_unless_the_url_sets_them() {
        let builder = MongoStoreBuilder::default();
        let options = builder.client_options(DEFAULT_URL).await.unwrap();
        assert_eq!(
            options.server_selection_timeout,
            Some(DEFAULT_SERVER_SELECTION_TIMEOUT)
        );
        assert_eq!(options.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));
        let options = builder
            .client_options("mongodb://h:1/?serverSelectionTimeoutMS=900&connectTimeoutMS=800")
            .await
            .unwrap();
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_millis(900))
        );
        assert_eq!(options.connect_timeout, Some(Duration::from_millis(800)));
        let options = MongoStoreBuilder::default()
            .server_selection_timeout(Duration::from_secs(7))
            .connect_timeout(Duration::ZERO)
            .client_options("mongodb://h:1/?serverSelectionTimeoutMS=900")
            .await
            .unwrap();
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_secs(7))
        );
        assert_eq!(options.connect_timeout, Some(Duration::from_millis(1)));
    }

    #[tokio::test]
    async fn the_server_check_frequency_defaults_to_half_a_second() {
        let builder = MongoStoreBuilder::default();
        let options = builder.client_options(DEFAULT_URL).await.unwrap();
        assert_eq!(options.heartbeat_freq, Some(DEFAULT_HEARTBEAT_FREQUENCY));
        let options = builder
            .client_options("mongodb://h:1/?heartbeatFrequencyMS=2000")
            .await
            .unwrap();
        assert_eq!(options.heartbeat_freq, Some(Duration::from_secs(2)));
        let options = MongoStoreBuilder::default()
            .heartbeat_frequency(Duration::from_secs(1))
            .client_options("mongodb://h:1/?heartbeatFrequencyMS=2000")
            .await
            .unwrap();
        assert_eq!(options.heartbeat_freq, Some(Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn bad_urls_are_config_errors_without_the_password() {
        for url in [
            "not a url",
            "http://127.0.0.1:27017",
            "mongodb://user:hunter2@[bad",
            "mongodb://user:hunter2@host:notaport",
        ] {
            match MongoStoreBuilder::default().url(url).connect().await {
                Err(SetupError::Config(error)) => {
                    assert_eq!(error.option, "SESSION_MONGODB_URL", "{url}");
                    assert!(!error.to_string().contains("hunter2"), "{error}");
                }
                other => panic!("{url}: {:?}", other.map(|_| ())),
            }
        }
    }

    #[tokio::test]
    async fn names_are_validated_before_connecting() {
        for bad in ["", "a.b", "a b", "a$b", "a/b", &"x".repeat(64)] {
            assert!(validate_database_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_database_name("flask_session").is_ok());
        for bad in ["", "a$b", "system.sessions", "a\0b"] {
            assert!(validate_collection_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_collection_name("sessions.web").is_ok());
        // Port 1: a connection attempt would fail as Unavailable, not name the option.
        let unreachable = || MongoStoreBuilder::default().url("mongodb://127.0.0.1:1");
        for (builder, option) in [
            (unreachable().database("a.b"), "SESSION_MONGODB_DB"),
            (unreachable().collection("a$b"), "SESSION_MONGODB_COLLECT"),
        ] {
            match builder.connect().await {
                Err(SetupError::Config(error)) => assert_eq!(error.option, option),
                other => panic!("{option}: {:?}", other.map(|_| ())),
            }
        }
    }
}
