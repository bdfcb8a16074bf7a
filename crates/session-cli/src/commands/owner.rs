//! `sessions --owner X` and `revoke --owner X [--keep HANDLE]`: one user's sessions, read
//! from the owner index (`docs/owners.md`), listed or ended.

use std::time::{Duration, UNIX_EPOCH};

use clap::Args;
use session_any::SessionType;
use session_core::{Keep, OwnedSession, SessionError, SessionManager, MAX_OWNER_BYTES};

use crate::report::{rfc3339, Report};
use crate::target::{describe_store, Target};

/// `sessions`'s options.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// The owner: the value under the owner key (`_user_id` by default), as the application
    /// stores it.
    #[arg(long, allow_hyphen_values = true)]
    pub owner: String,
}

/// `revoke`'s options.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The owner whose sessions end.
    #[arg(long, allow_hyphen_values = true)]
    pub owner: String,

    /// The handle (from `sessions --owner`) of a session to leave alone.
    // Handles are base64url: one in 64 begins with `-`.
    #[arg(long, value_name = "HANDLE", allow_hyphen_values = true)]
    pub keep: Option<String>,
}

/// A manager on the configured store, for the owner index's reads and revocations. Its
/// handles are those the application computes when `SECRET_KEY` is the application's.
async fn manager(target: &Target) -> Result<(SessionManager, SessionType), String> {
    let config = target.config()?;
    let (store, session_type) = target.connect(None).await?;
    Ok((SessionManager::new(store, config), session_type))
}

/// `owner`, refused when empty or longer than the index accepts.
fn check_owner(owner: &str) -> Result<&str, String> {
    if owner.is_empty() || owner.len() > MAX_OWNER_BYTES {
        return Err(format!(
            "invalid --owner: it must be 1 to {MAX_OWNER_BYTES} bytes"
        ));
    }
    Ok(owner)
}

/// A failure of the owner index in one sentence; `Unsupported` says which store.
fn describe(session_type: SessionType, doing: &str, error: SessionError) -> String {
    match error {
        SessionError::Store(error) => describe_store(session_type, doing, error),
        other => format!("{doing} failed: {other}"),
    }
}

/// Unix seconds as RFC 3339.
fn at(seconds: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Lists the owner's sessions.
pub async fn sessions(target: &Target, args: &SessionsArgs) -> Result<Report, String> {
    let owner = check_owner(&args.owner)?;
    let (manager, session_type) = manager(target).await?;
    let location = target.location(session_type);
    let listed = manager
        .sessions_of(owner, None)
        .await
        .map_err(|error| describe(session_type, "list an owner's sessions", error))?;
    Ok(sessions_report(&listed, owner, &location))
}

fn sessions_report(listed: &[OwnedSession], owner: &str, location: &str) -> Report {
    let mut text = format!(
        "{:<22}  {:<20}  {:<20}  {}\n",
        "HANDLE", "CREATED (UTC)", "LAST SEEN (UTC)", "EXPIRES (UTC)"
    );
    for session in listed {
        text.push_str(&format!(
            "{:<22}  {:<20}  {:<20}  {}\n",
            session.handle,
            at(session.created),
            at(session.last_seen),
            at(session.expires_at)
        ));
    }
    text.push_str(&format!(
        "{} sessions of {owner} in {location}",
        listed.len()
    ));
    let json = listed
        .iter()
        .map(|session| {
            serde_json::json!({
                "handle": session.handle,
                "created": at(session.created),
                "last_seen": at(session.last_seen),
                "expires": at(session.expires_at),
            })
        })
        .collect();
    Report {
        text,
        json: serde_json::Value::Array(json),
    }
}

/// Ends the owner's sessions but the kept one, and says how many ended. A `--keep` handle
/// that names none of the owner's live sessions is refused before anything ends.
pub async fn revoke(target: &Target, args: &RevokeArgs) -> Result<Report, String> {
    let owner = check_owner(&args.owner)?;
    let (manager, session_type) = manager(target).await?;
    let location = target.location(session_type);
    if let Some(handle) = &args.keep {
        let listed = manager
            .sessions_of(owner, None)
            .await
            .map_err(|error| describe(session_type, "list an owner's sessions", error))?;
        if !listed.iter().any(|session| &session.handle == handle) {
            return Err(format!(
                "invalid --keep: no live session of {owner} has handle {handle:?} \
                 (see `sessions --owner`); nothing revoked"
            ));
        }
    }
    let keep = args.keep.as_deref().map(Keep::Handle);
    let revoked = manager
        .revoke_owner(owner, keep)
        .await
        .map_err(|error| describe(session_type, "revoke an owner's sessions", error))?;
    let kept = match &args.keep {
        Some(handle) => format!(", kept {handle}"),
        None => String::new(),
    };
    Ok(Report {
        text: format!("revoked {revoked} sessions of {owner} in {location}{kept}"),
        json: serde_json::json!({ "revoked": revoked }),
    })
}
