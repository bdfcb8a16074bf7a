//! `cleanup`: removes expired sessions (Flask-Session's `flask session_cleanup`).

use clap::Args;
use session_core::SessionStore as _;

use crate::report::{spinner, Report};
use crate::target::{describe_store, Target};

/// `cleanup`'s options.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Rows removed per DELETE statement (SQL).
    #[arg(long, default_value_t = session_sql::DEFAULT_CLEANUP_BATCH_SIZE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
}

/// Removes the expired sessions and says how many.
pub async fn run(target: &Target, args: &CleanupArgs) -> Result<Report, String> {
    let (store, session_type) = target.connect(Some(args.batch)).await?;
    let progress = spinner("removing expired sessions");
    let removed = store.cleanup().await;
    progress.finish_and_clear();
    let removed = removed.map_err(|error| describe_store(session_type, "cleanup", error))?;
    Ok(Report {
        text: format!(
            "removed {removed} expired sessions from {}",
            target.location(session_type)
        ),
        json: serde_json::json!({ "removed": removed, "store": session_type.to_string() }),
    })
}
