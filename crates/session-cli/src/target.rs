//! Which store the commands work on: `SESSION_TYPE` and the store's variables, as the
//! application reads them, with flags standing in for a few of them.

use std::time::Duration;

use clap::Args;
use session_any::names::{
    SESSION_FILE_DIR, SESSION_SQLALCHEMY_SCHEMA, SESSION_SQLALCHEMY_TABLE, SESSION_SQL_URL,
    SESSION_TYPE,
};
use session_any::{AnyStore, AnyStoreBuilder, SessionType};
use session_core::{SessionConfig, SetupError, StoreError};

/// The store's flags, accepted before or after the command.
#[derive(Debug, Args)]
pub struct Target {
    /// The store type, instead of SESSION_TYPE: filesystem, cachelib, sqlalchemy (or sql),
    /// redis, memcached, mongodb, dynamodb.
    #[arg(long = "type", value_name = "TYPE", global = true)]
    pub session_type: Option<String>,

    /// SQL database URL, instead of SESSION_SQL_URL: postgres://USER:PASSWORD@HOST/DB,
    /// mysql://… (or mariadb://…), sqlite://PATH. Implies --type sqlalchemy when no type is
    /// given. Prefer the environment variable, which `ps` does not show.
    #[arg(long, global = true)]
    pub url: Option<String>,

    /// SQL table, instead of SESSION_SQLALCHEMY_TABLE (default sessions).
    #[arg(long, global = true)]
    pub table: Option<String>,

    /// SQL schema holding the table, instead of SESSION_SQLALCHEMY_SCHEMA; the
    /// connection's default if neither is given.
    #[arg(long, global = true)]
    pub schema: Option<String>,

    /// Seconds to wait for a connection to the store before giving up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..),
          global = true)]
    pub connect_timeout: u64,
}

impl Target {
    /// The flag that set `variable`, if a flag did (for messages in the command line's
    /// terms).
    pub fn flag_for(&self, variable: &str) -> Option<&'static str> {
        let (given, flag) = match variable {
            SESSION_TYPE => (self.session_type.is_some(), "--type"),
            SESSION_SQL_URL => (self.url.is_some(), "--url"),
            SESSION_SQLALCHEMY_TABLE => (self.table.is_some(), "--table"),
            SESSION_SQLALCHEMY_SCHEMA => (self.schema.is_some(), "--schema"),
            _ => return None,
        };
        given.then_some(flag)
    }

    /// The value of `name`: the flag's when given, else the environment's.
    pub fn lookup(&self, name: &str) -> Option<String> {
        let flag = match name {
            SESSION_TYPE => self.session_type.clone().or_else(|| {
                // `--url` alone means the SQL store, unless the environment names a type.
                let typed = std::env::var(SESSION_TYPE).is_ok_and(|t| !t.trim().is_empty());
                (self.url.is_some() && !typed).then(|| "sqlalchemy".to_owned())
            }),
            SESSION_SQL_URL => self.url.clone(),
            SESSION_SQLALCHEMY_TABLE => self.table.clone(),
            SESSION_SQLALCHEMY_SCHEMA => self.schema.clone(),
            _ => None,
        };
        flag.or_else(|| std::env::var(name).ok())
    }

    /// Where the sessions are, for reports: the table, the directory, or the store type.
    pub fn location(&self, session_type: SessionType) -> String {
        match session_type {
            SessionType::Sql => {
                let table = self
                    .lookup(SESSION_SQLALCHEMY_TABLE)
                    .filter(|table| !table.trim().is_empty())
                    .unwrap_or_else(|| session_sql::DEFAULT_TABLE.to_owned());
                match self.lookup(SESSION_SQLALCHEMY_SCHEMA) {
                    Some(schema) if !schema.trim().is_empty() => format!("{schema}.{table}"),
                    _ => table,
                }
            }
            SessionType::Filesystem | SessionType::Cachelib => {
                match self.lookup(SESSION_FILE_DIR) {
                    Some(dir) if !dir.trim().is_empty() => dir,
                    _ => "flask_session".to_owned(),
                }
            }
            other => format!("the {other} store"),
        }
    }

    /// The session options (`SESSION_KEY_PREFIX`, `SESSION_HASH_IDS`, the owner key, …)
    /// from the environment, as the application reads them.
    pub fn config(&self) -> Result<SessionConfig, String> {
        SessionConfig::from_env().map_err(|error| error.to_string())
    }

    /// Connects to the store, which must exist: no table, index or directory is created.
    /// `batch` is the SQL cleanup's batch size.
    pub async fn connect(&self, batch: Option<u32>) -> Result<(AnyStore, SessionType), String> {
        // An empty variable counts as unset, but an empty flag is a mistake, not "the default".
        for (value, flag) in [
            (&self.session_type, "--type"),
            (&self.url, "--url"),
            (&self.table, "--table"),
            (&self.schema, "--schema"),
        ] {
            if value
                .as_deref()
                .is_some_and(|value| value.trim().is_empty())
            {
                return Err(format!("invalid {flag}: the value is empty"));
            }
        }
        let timeout = Duration::from_secs(self.connect_timeout);
        let batch = batch.unwrap_or(session_sql::DEFAULT_CLEANUP_BATCH_SIZE);
        let builder = AnyStoreBuilder::from_lookup(|name| self.lookup(name))
            .sql(move |sql| {
                sql.table_exists(true)
                    .cleanup_batch_size(batch)
                    .max_connections(1)
                    .acquire_timeout(timeout)
            })
            .filesystem(|files| files.create_dir(false))
            .redis(move |redis| redis.connect_timeout(timeout))
            .memcached(move |memcached| memcached.connect_timeout(timeout))
            .mongodb(move |mongo| {
                mongo
                    .skip_index_creation(true)
                    .server_selection_timeout(timeout)
            })
            .dynamodb(move |dynamo| dynamo.table_exists(true).connect_timeout(timeout));
        let session_type = builder
            .session_type()
            .map_err(|error| self.describe_setup(error.into()))?;
        if session_type != SessionType::Sql {
            if let Some(flag) = [
                (self.url.is_some(), "--url"),
                (self.table.is_some(), "--table"),
                (self.schema.is_some(), "--schema"),
            ]
            .iter()
            .find_map(|(given, flag)| given.then_some(*flag))
            {
                return Err(format!(
                    "{flag} applies to SESSION_TYPE=sqlalchemy, not {session_type}"
                ));
            }
        }
        let store = builder
            .connect()
            .await
            .map_err(|error| self.describe_setup(error))?;
        Ok((store, session_type))
    }

    /// A setup error in the command line's terms: the flag instead of the variable when a
    /// flag gave the value.
    pub fn describe_setup(&self, error: SetupError) -> String {
        match error {
            SetupError::Config(config) => {
                let name = match config.option {
                    "cleanup_batch_size" => "--batch",
                    option => self.flag_for(option).unwrap_or(option),
                };
                format!("invalid {name}: {}", config.message)
            }
            SetupError::Store(StoreError::Unavailable(source)) => format!(
                "cannot reach the session store within {} s: {source}",
                self.connect_timeout
            ),
            other => other.to_string(),
        }
    }
}

/// A store error during a command, in one sentence; `Unsupported` says which store could
/// not do it.
pub fn describe_store(session_type: SessionType, doing: &str, error: StoreError) -> String {
    match error {
        StoreError::Unavailable(source) => {
            format!("lost the connection to the store during {doing}: {source}")
        }
        StoreError::Unsupported(why) => format!("the {session_type} store cannot {doing}: {why}"),
        other => format!("{doing} failed: {other}"),
    }
}
