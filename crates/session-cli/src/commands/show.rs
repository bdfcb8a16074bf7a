//! `show ID`: one session's data, decoded, as JSON.

use clap::Args;

use crate::report::{rfc3339, Report};
use crate::target::Target;

/// `show`'s argument.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The session id (the cookie's value; a signed `id.signature` is accepted).
    // Ids are base64url and may begin with `-`.
    #[arg(allow_hyphen_values = true)]
    pub id: String,
}

/// Shows the session.
pub async fn run(target: &Target, args: &ShowArgs) -> Result<Report, String> {
    let config = target.config()?;
    let key = super::key_of(&config, &args.id)?;
    let (store, _) = target.connect(None).await?;
    let entry = super::load(&store, &key, &args.id).await?;
    let data = super::decoded(&config, &entry).ok_or_else(|| {
        format!(
            "the session's {} bytes are neither msgpack nor JSON",
            entry.value.len()
        )
    })?;
    let text = serde_json::to_string_pretty(&data).unwrap_or_default();
    Ok(Report {
        text,
        json: serde_json::json!({
            "bytes": entry.value.len(),
            "expires": entry.expires_at.map(rfc3339),
            "data": data,
        }),
    })
}
