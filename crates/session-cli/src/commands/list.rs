//! `list`: the live sessions, one line each: id (shortened), size, expiry, owner.

use clap::Args;
use session_core::SessionStore as _;

use crate::report::{rfc3339, short_id, spinner, Report};
use crate::target::{describe_store, Target};

/// `list`'s options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// List at most this many sessions.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

/// Keys asked of the store per page.
const PAGE: usize = 500;

/// Lists the sessions.
pub async fn run(target: &Target, args: &ListArgs) -> Result<Report, String> {
    let config = target.config()?;
    let (store, session_type) = target.connect(None).await?;
    let prefix = config.key_prefix().to_owned();
    let limit = args
        .limit
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let progress = spinner("listing sessions");
    let mut rows = Vec::new();
    let mut cursor = None;
    'pages: loop {
        let page = store
            .scan(&prefix, cursor, PAGE)
            .await
            .map_err(|error| describe_store(session_type, "list sessions", error))?;
        for key in page.keys {
            // Gone or expired since the scan: not a session any more.
            let Ok(Some(entry)) = store.load(&key).await else {
                continue;
            };
            let data = super::decoded(&config, &entry);
            let owner = data
                .as_ref()
                .and_then(|data| data.get(config.owner_key()))
                .filter(|owner| !owner.is_null())
                .map(|owner| match owner {
                    serde_json::Value::String(owner) => owner.clone(),
                    other => other.to_string(),
                });
            let id = key.strip_prefix(prefix.as_str()).unwrap_or(&key).to_owned();
            rows.push(Row {
                id,
                size: entry.value.len(),
                expires: entry.expires_at.map(rfc3339),
                owner,
                decodes: data.is_some(),
            });
            progress.set_message(format!("listing sessions: {}", rows.len()));
            if rows.len() >= limit {
                break 'pages;
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    progress.finish_and_clear();
    Ok(report(&rows, &target.location(session_type)))
}

/// One listed session.
struct Row {
    id: String,
    size: usize,
    expires: Option<String>,
    owner: Option<String>,
    decodes: bool,
}

fn report(rows: &[Row], location: &str) -> Report {
    let mut text = format!(
        "{:<10} {:>8}  {:<20}  {}\n",
        "ID", "BYTES", "EXPIRES (UTC)", "OWNER"
    );
    for row in rows {
        let owner = match (&row.owner, row.decodes) {
            (Some(owner), _) => owner.as_str(),
            (None, true) => "-",
            (None, false) => "(data does not decode)",
        };
        text.push_str(&format!(
            "{:<10} {:>8}  {:<20}  {}\n",
            short_id(&row.id),
            row.size,
            row.expires.as_deref().unwrap_or("unknown"),
            owner
        ));
    }
    text.push_str(&format!("{} sessions in {location}", rows.len()));
    // Scripts get whole ids (to pass to `show` and `delete`); people get short ones.
    let json = rows
        .iter()
        .map(|row| {
            serde_json::json!({
                "id": row.id,
                "bytes": row.size,
                "expires": row.expires,
                "owner": row.owner,
                "decodes": row.decodes,
            })
        })
        .collect();
    Report {
        text,
        json: serde_json::Value::Array(json),
    }
}
