//! `delete ID`: ends one session (the user is logged out).

use clap::Args;
use session_core::SessionStore as _;

use crate::report::{short_id, Report};
use crate::target::Target;

/// `delete`'s argument.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The session id (the cookie's value; a signed `id.signature` is accepted).
    // Ids are base64url and may begin with `-`.
    #[arg(allow_hyphen_values = true)]
    pub id: String,
}

/// Deletes the session; deleting a session that does not exist is not an error (it says
/// so).
pub async fn run(target: &Target, args: &DeleteArgs) -> Result<Report, String> {
    let config = target.config()?;
    let key = super::key_of(&config, &args.id)?;
    let (store, _) = target.connect(None).await?;
    let existed = store
        .load(&key)
        .await
        .map_err(|error| format!("reading the session failed: {error}"))?
        .is_some();
    store
        .delete(&key)
        .await
        .map_err(|error| format!("deleting the session failed: {error}"))?;
    let short = short_id(&args.id);
    Ok(Report {
        text: if existed {
            format!("deleted session {short}")
        } else {
            format!("no session {short}; nothing deleted")
        },
        json: serde_json::json!({ "deleted": existed }),
    })
}
