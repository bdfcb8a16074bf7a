//! How a store's own timeouts follow `SESSION_STORE_TIMEOUT`.
//!
//! Core cuts every store call off after `SESSION_STORE_TIMEOUT` (503). A driver that keeps
//! waiting past that point holds a pooled connection, and a database keeps the statement
//! running and its row locks held, after the request has already been answered. So each
//! store that can set its own timeouts sets them to [`driver_timeout`]: shorter than core's
//! deadline, so that the driver (or the database) gives up first, reports its own error and
//! frees what it held.

use std::time::Duration;

use crate::config::MAX_LIFETIME;
use crate::ConfigError;

/// The environment name core reads the per-call deadline from.
pub const STORE_TIMEOUT_OPTION: &str = "SESSION_STORE_TIMEOUT";

/// The timeout a driver should use for one store operation (a statement, a lock wait,
/// waiting for a pooled connection) when core's per-call deadline is `store_timeout`:
/// four fifths of it, so the driver gives up a fifth of the deadline before core does.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(
///     session_core::driver_timeout(Duration::from_secs(5)),
///     Duration::from_secs(4)
/// );
/// ```
pub const fn driver_timeout(store_timeout: Duration) -> Duration {
    // In nanoseconds, so that it is exact and usable in constants; never more than the input.
    let nanos = store_timeout.as_nanos() / 5 * 4;
    Duration::new(
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    )
}

/// Reads `SESSION_STORE_TIMEOUT` (seconds, fractions allowed) with the rules of
/// [`SessionConfig`](crate::SessionConfig): unset or blank gives the default
/// ([`DEFAULT_STORE_TIMEOUT`](crate::DEFAULT_STORE_TIMEOUT)). For store builders that are
/// configured from the same environment as core, so that their timeouts follow it.
pub fn store_timeout_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Duration, ConfigError> {
    match lookup(STORE_TIMEOUT_OPTION).filter(|value| !value.trim().is_empty()) {
        None => Ok(crate::DEFAULT_STORE_TIMEOUT),
        Some(text) => {
            let seconds: f64 = text.trim().parse().map_err(|_| {
                ConfigError::new(STORE_TIMEOUT_OPTION, format!("{text:?} is not a number"))
            })?;
            let timeout = Duration::try_from_secs_f64(seconds).map_err(|_| {
                ConfigError::new(
                    STORE_TIMEOUT_OPTION,
                    format!("{seconds} is not a number of seconds"),
                )
            })?;
            check_store_timeout(timeout)?;
            Ok(timeout)
        }
    }
}

/// The range every `SESSION_STORE_TIMEOUT` must be in: more than zero, at most
/// [`MAX_LIFETIME`].
pub(crate) fn check_store_timeout(timeout: Duration) -> Result<(), ConfigError> {
    if timeout.is_zero() || timeout > MAX_LIFETIME {
        return Err(ConfigError::new(
            STORE_TIMEOUT_OPTION,
            "must be more than 0 seconds",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_give_up_before_core() {
        for millis in [1, 10, 250, 2_000, 5_000, 60_000] {
            let store = Duration::from_millis(millis);
            let driver = driver_timeout(store);
            assert!(driver < store, "{driver:?} < {store:?}");
            assert!(driver >= store / 2, "{driver:?} is most of {store:?}");
        }
    }

    #[test]
    fn lookup_follows_the_config_rules() {
        let with = |value: &'static str| {
            move |name: &str| (name == STORE_TIMEOUT_OPTION).then(|| value.to_owned())
        };
        assert_eq!(
            store_timeout_from_lookup(|_| None).unwrap(),
            crate::DEFAULT_STORE_TIMEOUT
        );
        assert_eq!(
            store_timeout_from_lookup(with(" ")).unwrap(),
            crate::DEFAULT_STORE_TIMEOUT
        );
        assert_eq!(
            store_timeout_from_lookup(with("2.5")).unwrap(),
            Duration::from_millis(2_500)
        );
        for bad in ["0", "-1", "soon", "1e30", "NaN"] {
            let error = store_timeout_from_lookup(with(bad)).unwrap_err();
            assert_eq!(error.option, STORE_TIMEOUT_OPTION, "{bad}");
        }
    }
}
