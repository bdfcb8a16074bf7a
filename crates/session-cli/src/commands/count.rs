//! `count`: how many live sessions the store holds under the key prefix.

use session_any::SessionType;
use session_core::SessionStore as _;

use crate::report::{spinner, Report};
use crate::target::{describe_store, Target};

/// Counts the sessions.
pub async fn run(target: &Target) -> Result<Report, String> {
    let config = target.config()?;
    let (store, session_type) = target.connect(None).await?;
    let progress = spinner("counting sessions");
    let counted = store.count(config.key_prefix()).await;
    progress.finish_and_clear();
    let count = counted.map_err(|error| describe_store(session_type, "count", error))?;
    let location = target.location(session_type);
    // cachelib's file names are hashes: every entry of the directory counts.
    let scope = if session_type == SessionType::Cachelib {
        " (every cachelib entry of the directory, whatever its key prefix)"
    } else {
        ""
    };
    Ok(Report {
        text: format!("{count} sessions in {location}{scope}"),
        json: serde_json::json!({ "count": count, "store": session_type.to_string() }),
    })
}
