//! What a command prints: a line (or table) for people, a JSON value for scripts
//! (`--json`), and the progress spinner of long runs.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget};

/// A command's result, in both forms.
pub struct Report {
    /// For people.
    pub text: String,
    /// For `--json`.
    pub json: serde_json::Value,
}

impl Report {
    /// Prints the form asked for. Not `println!`: it panics when stdout is closed
    /// (`| head -0`), and the command's work is done either way.
    pub fn print(&self, json: bool) {
        let mut stdout = std::io::stdout().lock();
        let _ = if json {
            writeln!(stdout, "{}", self.json)
        } else {
            writeln!(stdout, "{}", self.text.trim_end())
        };
    }
}

/// A spinner on stderr saying `message` and how far the run got, drawn only when stdout is
/// a terminal (a script piping the output sees nothing of it).
pub fn spinner(message: &str) -> ProgressBar {
    let target = if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The first 8 characters of a session id and `…`: enough to tell sessions apart on a
/// screen without printing the credential the cookie holds.
pub fn short_id(id: &str) -> String {
    match id.char_indices().nth(8) {
        Some((end, _)) => format!("{}…", &id[..end]),
        None => id.to_owned(),
    }
}

/// `at` in RFC 3339, UTC, to the second.
pub fn rfc3339(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_shortened_to_eight_characters() {
        assert_eq!(short_id("abcdefghijkl"), "abcdefgh…");
        assert_eq!(short_id("abcdefgh"), "abcdefgh");
        assert_eq!(short_id("ééééééééé"), "éééééééé…");
    }

    #[test]
    fn times_are_rfc3339_to_the_second() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20Z");
    }
}
