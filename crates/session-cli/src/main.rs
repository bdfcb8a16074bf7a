//! `session-cli`: maintenance commands for server-side session stores.
//!
//! `session-cli cleanup --url URL` removes expired sessions from the SQL table, like
//! Flask-Session's `flask session_cleanup`. See the README for every option.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use session_core::{SessionStore, SetupError, StoreError};
use session_sql::{SqlStore, DEFAULT_CLEANUP_BATCH_SIZE, DEFAULT_TABLE};

/// Maintenance commands for server-side session stores.
#[derive(Debug, Parser)]
#[command(name = "session-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Remove expired sessions from the SQL session table (Flask-Session's
    /// `flask session_cleanup`) and print how many were removed.
    Cleanup(CleanupArgs),
}

#[derive(Debug, Args)]
struct CleanupArgs {
    /// Database URL: postgres://USER:PASSWORD@HOST/DB, mysql://… (or mariadb://…),
    /// sqlite://PATH. Prefer the environment variable, which `ps` does not show.
    #[arg(long, env = "SESSION_DATABASE_URL", hide_env_values = true)]
    url: String,

    /// Session table (Flask-Session's SESSION_SQLALCHEMY_TABLE).
    #[arg(long, default_value = DEFAULT_TABLE)]
    table: String,

    /// Schema holding the table (SESSION_SQLALCHEMY_SCHEMA); the connection's default if
    /// not given.
    #[arg(long)]
    schema: Option<String>,

    /// Rows removed per DELETE statement.
    #[arg(long, default_value_t = DEFAULT_CLEANUP_BATCH_SIZE,
          value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,

    /// Seconds to wait for a database connection before giving up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    connect_timeout: u64,
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
                // Not println!: it panics when stdout is closed (`| head -0`). The rows are
                // removed either way, so a lost report does not make the run a failure.
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
    let mut builder = SqlStore::builder()
        .table(&args.table)
        .cleanup_batch_size(args.batch)
        // Cleanup never creates the table; a missing table is an error.
        .table_exists(true)
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(args.connect_timeout));
    if let Some(schema) = &args.schema {
        builder = builder.schema(schema);
    }
    let timeout = args.connect_timeout;
    let store = builder
        .url(&args.url)
        .connect()
        .await
        .map_err(|error| describe_setup(error, timeout))?;
    let removed = store.cleanup().await.map_err(|error| match error {
        StoreError::Unavailable(source) => {
            format!("lost the database connection during cleanup: {source}")
        }
        other => format!("cleanup failed: {other}"),
    });
    store.pool().close().await;
    let removed = removed?;
    let table = match &args.schema {
        Some(schema) => format!("{schema}.{}", args.table),
        None => args.table.clone(),
    };
    Ok(format!("removed {removed} expired sessions from {table}"))
}

/// A setup error in the command line's terms (flags instead of Flask option names).
fn describe_setup(error: SetupError, timeout_seconds: u64) -> String {
    match error {
        SetupError::Config(config) => {
            let flag = match config.option {
                "SESSION_SQLALCHEMY_TABLE" => "--table",
                "SESSION_SQLALCHEMY_SCHEMA" => "--schema",
                "cleanup_batch_size" => "--batch",
                "SESSION_SQL_URL" => "--url",
                other => other,
            };
            format!("invalid {flag}: {}", config.message)
        }
        // Named SESSION_SQL_URL by the store; the flag here.
        SetupError::Store(StoreError::Unavailable(source)) => {
            format!("cannot reach the database within {timeout_seconds} s: {source}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_with_defaults() {
        let cli = Cli::try_parse_from(["session-cli", "cleanup", "--url", "sqlite://x.db"])
            .expect("parse");
        let Command::Cleanup(args) = cli.command;
        assert_eq!(args.url, "sqlite://x.db");
        assert_eq!(args.table, "sessions");
        assert_eq!(args.schema, None);
        assert_eq!(args.batch, DEFAULT_CLEANUP_BATCH_SIZE);
        assert_eq!(args.connect_timeout, 10);
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
    fn setup_errors_name_the_flag() {
        let message = describe_setup(
            SetupError::Config(session_core::ConfigError {
                option: "SESSION_SQLALCHEMY_SCHEMA",
                message: "the name is empty".to_owned(),
            }),
            10,
        );
        assert_eq!(message, "invalid --schema: the name is empty");
    }

    #[test]
    fn clap_configuration_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
