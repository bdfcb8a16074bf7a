//! `SESSION_FILE_MODE` and the directory rule of the file-based stores.
//!
//! A session file, and an index file naming `session:<id>`, holds a bearer token: whoever
//! reads it can use the session. So the stores that keep sessions in files write them with
//! `SESSION_FILE_MODE` (default `0o600`) whatever the umask, create their directories with
//! no more access than that mode gives ([`dir_mode`], `0o700` by default), and refuse to
//! start on an existing directory that is open to group or others beyond it
//! ([`check_private_dir`]).

use std::path::Path;

use crate::ConfigError;

/// The environment name of the file mode.
pub const FILE_MODE_OPTION: &str = "SESSION_FILE_MODE";

/// The environment name of the directory, named by [`check_private_dir`].
pub const FILE_DIR_OPTION: &str = "SESSION_FILE_DIR";

/// Flask-Session's default `SESSION_FILE_MODE` (and cachelib's): `0o600`.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

/// Reads a `SESSION_FILE_MODE` value: decimal as in Flask's config (`384`) or octal with a
/// `0o` prefix (`0o600`); a leading zero alone (`0600`) is refused as ambiguous. The mode
/// is then checked with [`check_file_mode`].
pub fn parse_file_mode(text: &str) -> Result<u32, ConfigError> {
    let text = text.trim();
    let parsed = match text.strip_prefix("0o").or_else(|| text.strip_prefix("0O")) {
        Some(octal) => u32::from_str_radix(octal, 8).ok(),
        None if text.len() > 1 && text.starts_with('0') => None,
        None => text.parse().ok(),
    };
    let mode = parsed.ok_or_else(|| {
        ConfigError::new(
            FILE_MODE_OPTION,
            format!("{text:?} is not a mode: write 384 (decimal, as Flask's config) or 0o600"),
        )
    })?;
    check_file_mode(mode)?;
    Ok(mode)
}

/// A file mode must be permission bits (at most `0o777`) that let the owner read and
/// write (the store rewrites its own files).
pub fn check_file_mode(mode: u32) -> Result<(), ConfigError> {
    if mode > 0o777 || mode & 0o600 != 0o600 {
        return Err(ConfigError::new(
            FILE_MODE_OPTION,
            format!(
                "{mode:#o} is not a file mode the owner can read and write (for example 0o600)"
            ),
        ));
    }
    Ok(())
}

/// The mode of the directories a store creates for files of `file_mode`: the owner may do
/// everything, and group and others may list and enter only when `file_mode` lets them
/// read. `0o600` gives `0o700`, `0o640` gives `0o750`.
pub const fn dir_mode(file_mode: u32) -> u32 {
    let mut mode = 0o700;
    if file_mode & 0o040 != 0 {
        mode |= 0o050;
    }
    if file_mode & 0o004 != 0 {
        mode |= 0o005;
    }
    mode
}

/// Refuses an existing directory whose permission bits give group or others more than
/// [`dir_mode`] of `file_mode` does (a session directory readable by everyone, say), with a
/// one-line message naming `SESSION_FILE_DIR` and `SESSION_FILE_MODE`. Nothing is checked
/// outside Unix.
pub fn check_private_dir(dir: &Path, file_mode: u32) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::metadata(dir).map_err(|error| {
            ConfigError::new(
                FILE_DIR_OPTION,
                format!("cannot read the permissions of {}: {error}", dir.display()),
            )
        })?;
        let actual = metadata.permissions().mode() & 0o777;
        let too_open = actual & 0o077 & !dir_mode(file_mode);
        if too_open != 0 {
            return Err(ConfigError::new(
                FILE_DIR_OPTION,
                format!(
                    "{} has mode {actual:#o}, open to group or others beyond \
                     SESSION_FILE_MODE={file_mode:#o}; run `chmod {:o} {}` or choose another \
                     SESSION_FILE_DIR",
                    dir.display(),
                    actual & !too_open,
                    dir.display()
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, file_mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_flask_writes_them() {
        assert_eq!(parse_file_mode("384").unwrap(), 0o600);
        assert_eq!(parse_file_mode(" 0o640 ").unwrap(), 0o640);
        for bad in ["0600", "rw", "0o9", "0o7777", "0o400", "0o200", "-1", ""] {
            let error = parse_file_mode(bad).unwrap_err();
            assert_eq!(error.option, FILE_MODE_OPTION, "{bad}");
        }
    }

    #[test]
    fn directories_open_no_more_than_the_files() {
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o640), 0o750);
        assert_eq!(dir_mode(0o644), 0o755);
        assert_eq!(dir_mode(0o660), 0o750);
    }
}
