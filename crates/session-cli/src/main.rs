//! `session-cli`: maintenance commands for server-side session stores.
//!
//! `session-cli cleanup` removes expired sessions from the store the application's
//! environment configures (`SESSION_TYPE` and the store's variables, read by session-any),
//! like Flask-Session's `flask session_cleanup`. See the README for every option.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use session_any::names::{
    SESSION_FILE_DIR, SESSION_SQLALCHEMY_SCHEMA, SESSION_SQLALCHEMY_TABLE, SESSION_SQL_URL,
    SESSION_TYPE,
};
use session_any::{AnyStoreBuilder, SessionType};
use session_core::{SessionStore, SetupError, StoreError};

/// Maintenance commands for server-side session stores.
#[derive(Debug, Parser)]
#[command(name = "session-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Remove expired sessions from the store the environment configures (SESSION_TYPE and
    /// its variables, as the application reads them) and print how many were removed
    /// (Flask-Session's `flask session_cleanup`). Stores that expire sessions themselves
    /// (Redis, memcached) have nothing to remove.
    Cleanup(CleanupArgs),
}

#[derive(Debug, Args)]
struct CleanupArgs {
    /// The store type, instead of SESSION_TYPE: filesystem, sqlalchemy (or sql), mongodb,
    /// dynamodb, redis, memcached.
    #[arg(long = "type", value_name = "TYPE")]
    session_type: Option<String>,

    /// SQL database URL, instead of SESSION_SQL_URL: postgres://USER:PASSWORD@HOST/DB,
    /// mysql://… (or mariadb://…), sqlite://PATH. Implies --type sqlalchemy when no type is
    /// given. Prefer the environment variable, which `ps` does not show.
    #[arg(long)]
    url: Option<String>,

    /// SQL table, instead of SESSION_SQLALCHEMY_TABLE (default sessions).
    #[arg(long)]
    table: Option<String>,

    /// SQL schema holding the table, instead of SESSION_SQLALCHEMY_SCHEMA; the
    /// connection's default if neither is given.
    #[arg(long)]
    schema: Option<String>,

    /// Rows removed per DELETE statement (SQL).
    #[arg(long, default_value_t = session_sql::DEFAULT_CLEANUP_BATCH_SIZE,
          value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,

    /// Seconds to wait for a connection to the store before giving up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    connect_timeout: u64,
}

impl CleanupArgs {
    /// The flag that set `variable`, if a flag did (for messages in the command line's
    /// terms).
    fn flag_for(&self, variable: &str) -> Option<&'static str> {
        let given = match variable {
            SESSION_TYPE => self.session_type.is_some(),
            SESSION_SQL_URL => self.url.is_some(),
            SESSION_SQLALCHEMY_TABLE => self.table.is_some(),
            SESSION_SQLALCHEMY_SCHEMA => self.schema.is_some(),
            _ => false,
        };
        let flag = match variable {
            SESSION_TYPE => "--type",
            SESSION_SQL_URL => "--url",
            SESSION_SQLALCHEMY_TABLE => "--table",
            SESSION_SQLALCHEMY_SCHEMA => "--schema",
            _ => return None,
        };
        given.then_some(flag)
    }

    /// The value of `name`: the flag's when given, else the environment's.
    fn lookup(&self, name: &str) -> Option<String> {
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

    /// Where the sessions are, for the report: the table or the directory.
    fn location(&self, session_type: SessionType) -> String {
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
            SessionType::Filesystem => match self.lookup(SESSION_FILE_DIR) {
                Some(dir) if !dir.trim().is_empty() => dir,
                _ => "flask_session".to_owned(),
            },
            other => format!("the {other} store"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the async runtime: {error}")),
    };
    match cli.command {
        Command::Cleanup(args) => match runtime.block_on(cleanup(&args)) {
            Ok(message) => {
                // Not println!: it panics when stdout is closed (`| head -0`). The sessions
                // are removed either way, so a lost report does not make the run a failure.
                let _ = writeln!(std::io::stdout(), "{message}");
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        },
    }
}

/// Prints `message` as one line on stderr and returns the failure exit code.
fn fail(message: &str) -> ExitCode {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let _ = writeln!(std::io::stderr(), "session-cli: error: {one_line}");
    ExitCode::FAILURE
}

async fn cleanup(args: &CleanupArgs) -> Result<String, String> {
    // An empty variable counts as unset, but an empty flag is a mistake, not "the default".
    for (value, flag) in [
        (&args.session_type, "--type"),
        (&args.url, "--url"),
        (&args.table, "--table"),
        (&args.schema, "--schema"),
    ] {
        if value
            .as_deref()
            .is_some_and(|value| value.trim().is_empty())
        {
            return Err(format!("invalid {flag}: the value is empty"));
        }
    }
    let timeout = Duration::from_secs(args.connect_timeout);
    let batch = args.batch;
    let builder = AnyStoreBuilder::from_lookup(|name| args.lookup(name))
        // Cleanup works on an existing store: it never creates a table, an index or a
        // directory.
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
        .map_err(|error| describe_setup(args, error.into()))?;
    if session_type != SessionType::Sql {
        if let Some(flag) = [
            (args.url.is_some(), "--url"),
            (args.table.is_some(), "--table"),
            (args.schema.is_some(), "--schema"),
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
        .map_err(|error| describe_setup(args, error))?;
    let removed = store.cleanup().await.map_err(|error| match error {
        StoreError::Unavailable(source) => {
            format!("lost the connection to the store during cleanup: {source}")
        }
        other => format!("cleanup failed: {other}"),
    })?;
    Ok(format!(
        "removed {removed} expired sessions from {}",
        args.location(session_type)
    ))
}

/// A setup error in the command line's terms: the flag instead of the variable when a flag
/// gave the value.
fn describe_setup(args: &CleanupArgs, error: SetupError) -> String {
    match error {
        SetupError::Config(config) => {
            let name = match config.option {
                "cleanup_batch_size" => "--batch",
                option => args.flag_for(option).unwrap_or(option),
            };
            format!("invalid {name}: {}", config.message)
        }
        SetupError::Store(StoreError::Unavailable(source)) => format!(
            "cannot reach the session store within {} s: {source}",
            args.connect_timeout
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> CleanupArgs {
        let mut all = vec!["session-cli", "cleanup"];
        all.extend(arguments);
        let Command::Cleanup(args) = Cli::try_parse_from(all).expect("parse").command;
        args
    }

    #[test]
    fn arguments_parse_with_defaults() {
        let args = parse(&["--url", "sqlite://x.db"]);
        assert_eq!(args.url.as_deref(), Some("sqlite://x.db"));
        assert_eq!(args.table, None);
        assert_eq!(args.schema, None);
        assert_eq!(args.session_type, None);
        assert_eq!(args.batch, session_sql::DEFAULT_CLEANUP_BATCH_SIZE);
        assert_eq!(args.connect_timeout, 10);
    }

    #[test]
    fn flags_override_the_variables_they_stand_for() {
        let args = parse(&["--type", "mongodb", "--table", "t", "--schema", "s"]);
        assert_eq!(args.lookup(SESSION_TYPE).as_deref(), Some("mongodb"));
        assert_eq!(args.lookup(SESSION_SQLALCHEMY_TABLE).as_deref(), Some("t"));
        assert_eq!(args.lookup(SESSION_SQLALCHEMY_SCHEMA).as_deref(), Some("s"));
        assert_eq!(args.location(SessionType::Sql), "s.t");
        assert_eq!(args.location(SessionType::MongoDb), "the mongodb store");
    }

    #[test]
    fn zero_batch_is_a_usage_error() {
        let error = Cli::try_parse_from([
            "session-cli",
            "cleanup",
            "--url",
            "sqlite://x.db",
            "--batch",
            "0",
        ])
        .expect_err("batch 0");
        assert!(error.to_string().contains("--batch"), "{error}");
    }

    #[test]
    fn setup_errors_name_the_flag_that_gave_the_value() {
        let args = parse(&["--schema", "x y"]);
        let error = session_core::ConfigError::new("SESSION_SQLALCHEMY_SCHEMA", "bad name");
        assert_eq!(
            describe_setup(&args, error.into()),
            "invalid --schema: bad name"
        );
        // Not given as a flag: the variable's name stays.
        let error = session_core::ConfigError::new("SESSION_SQLALCHEMY_TABLE", "bad name");
        assert_eq!(
            describe_setup(&args, error.into()),
            "invalid SESSION_SQLALCHEMY_TABLE: bad name"
        );
    }

    #[test]
    fn clap_configuration_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
