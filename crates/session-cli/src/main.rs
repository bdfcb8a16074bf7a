//! `session-cli`: look into and maintain the session store an application uses.
//!
//! The store is the one the application's environment configures (`SESSION_TYPE`, the
//! store's variables, `SESSION_KEY_PREFIX`, read as session-any and session-core read
//! them). Commands: `count`, `list`, `show ID`, `delete ID`, `cleanup`, `sessions --owner
//! X`, `revoke --owner X [--keep HANDLE]`; `--json` for scripts. See the README and
//! docs/cli.md.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod commands;
mod report;
mod target;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::cleanup::CleanupArgs;
use commands::delete::DeleteArgs;
use commands::list::ListArgs;
use commands::owner::{RevokeArgs, SessionsArgs};
use commands::show::ShowArgs;
use target::Target;

/// Look into and maintain the session store the environment configures (SESSION_TYPE and
/// its variables, as the application reads them).
#[derive(Debug, Parser)]
#[command(name = "session-cli", version, about)]
struct Cli {
    #[command(flatten)]
    target: Target,

    /// Print one JSON value instead of text, for scripts.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print how many live sessions the store holds under SESSION_KEY_PREFIX.
    Count,
    /// List the live sessions: id (shortened; whole with --json), size in bytes, expiry,
    /// and owner (the value under the owner key, `_user_id` by default). Memcached cannot
    /// list, nor can cachelib (its file names are hashes of the ids; `count` works).
    List(ListArgs),
    /// Print one session's data, decoded, as JSON.
    Show(ShowArgs),
    /// Delete one session (its user is logged out).
    Delete(DeleteArgs),
    /// Remove expired sessions and print how many were removed (Flask-Session's
    /// `flask session_cleanup`). Stores that expire sessions themselves (Redis,
    /// memcached) have nothing to remove.
    Cleanup(CleanupArgs),
    /// List one owner's live sessions from the owner index: handle (never the id),
    /// created, last seen, expiry. Handles match the application's when SECRET_KEY is
    /// its key. Stores without an owner index (memcached; see docs/owners.md) say so.
    Sessions(SessionsArgs),
    /// End one owner's sessions ("log out everywhere"), but the one `--keep` names, and
    /// print how many ended.
    Revoke(RevokeArgs),
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
    let target = &cli.target;
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Count => commands::count::run(target).await,
            Command::List(args) => commands::list::run(target, args).await,
            Command::Show(args) => commands::show::run(target, args).await,
            Command::Delete(args) => commands::delete::run(target, args).await,
            Command::Cleanup(args) => commands::cleanup::run(target, args).await,
            Command::Sessions(args) => commands::owner::sessions(target, args).await,
            Command::Revoke(args) => commands::owner::revoke(target, args).await,
        }
    });
    match result {
        Ok(report) => {
            report.print(cli.json);
            ExitCode::SUCCESS
        }
        Err(message) => fail(&message),
    }
}

/// Prints `message` as one line on stderr and returns the failure exit code.
fn fail(message: &str) -> ExitCode {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let _ = writeln!(std::io::stderr(), "session-cli: error: {one_line}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_any::names::{SESSION_SQLALCHEMY_SCHEMA, SESSION_SQLALCHEMY_TABLE, SESSION_TYPE};
    use session_any::SessionType;

    fn parse(arguments: &[&str]) -> Cli {
        let mut all = vec!["session-cli"];
        all.extend(arguments);
        Cli::try_parse_from(all).expect("parse")
    }

    #[test]
    fn arguments_parse_with_defaults() {
        let cli = parse(&["cleanup", "--url", "sqlite://x.db"]);
        assert_eq!(cli.target.url.as_deref(), Some("sqlite://x.db"));
        assert_eq!(cli.target.table, None);
        assert_eq!(cli.target.connect_timeout, 10);
        assert!(!cli.json);
        let Command::Cleanup(args) = cli.command else {
            panic!("cleanup")
        };
        assert_eq!(args.batch, session_sql::DEFAULT_CLEANUP_BATCH_SIZE);
    }

    #[test]
    fn store_flags_and_json_go_before_or_after_the_command() {
        for arguments in [
            &["--json", "--type", "redis", "count"][..],
            &["count", "--type", "redis", "--json"][..],
        ] {
            let cli = parse(arguments);
            assert!(cli.json);
            assert_eq!(cli.target.session_type.as_deref(), Some("redis"));
        }
        let cli = parse(&["show", "abc", "--json"]);
        assert!(matches!(cli.command, Command::Show(ShowArgs { ref id }) if id == "abc"));
    }

    #[test]
    fn ids_handles_and_owners_may_begin_with_a_hyphen() {
        // Session ids and handles are base64url: `-` is one of their 64 letters.
        for arguments in [
            &["show", "-Dch6DkSOVQ"][..],
            &["show", "-Dch6DkSOVQ", "--json"][..],
            &["--json", "show", "-Dch6DkSOVQ"][..],
            &["show", "--json", "-Dch6DkSOVQ"][..],
        ] {
            let cli = parse(arguments);
            assert!(
                matches!(cli.command, Command::Show(ShowArgs { ref id }) if id == "-Dch6DkSOVQ"),
                "{arguments:?}: {:?}",
                cli.command
            );
        }
        let cli = parse(&["delete", "--type", "redis", "--x-y"]);
        assert!(matches!(cli.command, Command::Delete(DeleteArgs { ref id }) if id == "--x-y"));
        let cli = parse(&["revoke", "--owner", "-ann", "--keep", "-Dch6", "--json"]);
        assert!(cli.json);
        let Command::Revoke(args) = cli.command else {
            panic!("revoke")
        };
        assert_eq!(args.owner, "-ann");
        assert_eq!(args.keep.as_deref(), Some("-Dch6"));
        let cli = parse(&["sessions", "--owner", "-1"]);
        assert!(
            matches!(cli.command, Command::Sessions(SessionsArgs { ref owner }) if owner == "-1")
        );
    }

    #[test]
    fn flags_override_the_variables_they_stand_for() {
        let cli = parse(&[
            "cleanup", "--type", "mongodb", "--table", "t", "--schema", "s",
        ]);
        let target = &cli.target;
        assert_eq!(target.lookup(SESSION_TYPE).as_deref(), Some("mongodb"));
        assert_eq!(
            target.lookup(SESSION_SQLALCHEMY_TABLE).as_deref(),
            Some("t")
        );
        assert_eq!(
            target.lookup(SESSION_SQLALCHEMY_SCHEMA).as_deref(),
            Some("s")
        );
        assert_eq!(target.location(SessionType::Sql), "s.t");
        assert_eq!(target.location(SessionType::MongoDb), "the mongodb store");
    }

    #[test]
    fn zero_batch_or_limit_is_a_usage_error() {
        for arguments in [
            &["cleanup", "--batch", "0"][..],
            &["list", "--limit", "0"][..],
        ] {
            let mut all = vec!["session-cli"];
            all.extend(arguments);
            let error = Cli::try_parse_from(all).expect_err("zero");
            assert!(error.to_string().contains("--"), "{error}");
        }
    }

    #[test]
    fn setup_errors_name_the_flag_that_gave_the_value() {
        let cli = parse(&["cleanup", "--schema", "x y"]);
        let error = session_core::ConfigError::new("SESSION_SQLALCHEMY_SCHEMA", "bad name");
        assert_eq!(
            cli.target.describe_setup(error.into()),
            "invalid --schema: bad name"
        );
        // Not given as a flag: the variable's name stays.
        let error = session_core::ConfigError::new("SESSION_SQLALCHEMY_TABLE", "bad name");
        assert_eq!(
            cli.target.describe_setup(error.into()),
            "invalid SESSION_SQLALCHEMY_TABLE: bad name"
        );
    }

    #[test]
    fn clap_configuration_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
