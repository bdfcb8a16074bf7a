//! [`SessionType`]: the values of `SESSION_TYPE`, and which cargo feature builds each.

use std::fmt;
use std::str::FromStr;

use session_core::ConfigError;

use crate::names::SESSION_TYPE;

/// A kind of store, as `SESSION_TYPE` names it (case-insensitive, surrounding spaces
/// ignored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionType {
    /// `filesystem` (the default): `session_filesystem::FileStore`, feature `filesystem`.
    #[default]
    Filesystem,
    /// `memory`: `session_core::MemoryStore`, in the process, lost when it exits. Always
    /// available.
    Memory,
    /// `redis`: `session_redis::RedisStore`, feature `redis`.
    Redis,
    /// `memcached`: `session_memcached::MemcachedStore`, feature `memcached`.
    Memcached,
    /// `sqlalchemy` (alias `sql`): `session_sql::SqlStore`, feature `sql` (or one of
    /// `postgres`, `mysql`, `sqlite`).
    Sql,
    /// `mongodb`: `session_mongodb::MongoStore`, feature `mongodb`.
    MongoDb,
    /// `dynamodb`: `session_dynamo::DynamoStore`, feature `dynamodb`.
    DynamoDb,
    /// `cachelib`: `session_cachelib::CachelibStore`, Flask-Session's own filesystem layout
    /// (cachelib's `FileSystemCache`), feature `cachelib`.
    Cachelib,
}

/// The values accepted, for error messages.
const SUPPORTED: &str =
    "filesystem, cachelib, memory, redis, memcached, sqlalchemy (or sql), mongodb, dynamodb";

impl SessionType {
    /// Every type, in the order of the documentation.
    pub const ALL: &'static [SessionType] = &[
        SessionType::Filesystem,
        SessionType::Cachelib,
        SessionType::Memory,
        SessionType::Redis,
        SessionType::Memcached,
        SessionType::Sql,
        SessionType::MongoDb,
        SessionType::DynamoDb,
    ];

    /// The `SESSION_TYPE` value, as Flask-Session spells it (`sqlalchemy` for
    /// [`Sql`](Self::Sql)).
    pub fn name(self) -> &'static str {
        match self {
            SessionType::Filesystem => "filesystem",
            SessionType::Memory => "memory",
            SessionType::Redis => "redis",
            SessionType::Memcached => "memcached",
            SessionType::Sql => "sqlalchemy",
            SessionType::MongoDb => "mongodb",
            SessionType::DynamoDb => "dynamodb",
            SessionType::Cachelib => "cachelib",
        }
    }

    /// The cargo feature of session-any that builds this type; `None` for `memory`, which
    /// is always there.
    pub fn cargo_feature(self) -> Option<&'static str> {
        match self {
            SessionType::Filesystem => Some("filesystem"),
            SessionType::Memory => None,
            SessionType::Redis => Some("redis"),
            SessionType::Memcached => Some("memcached"),
            SessionType::Sql => Some("sql"),
            SessionType::MongoDb => Some("mongodb"),
            SessionType::DynamoDb => Some("dynamodb"),
            SessionType::Cachelib => Some("cachelib"),
        }
    }

    /// Whether this build of session-any can build this type (its feature is on).
    pub fn is_built(self) -> bool {
        match self {
            SessionType::Filesystem => cfg!(feature = "filesystem"),
            SessionType::Memory => true,
            SessionType::Redis => cfg!(feature = "redis"),
            SessionType::Memcached => cfg!(feature = "memcached"),
            SessionType::Sql => {
                cfg!(any(
                    feature = "postgres",
                    feature = "mysql",
                    feature = "sqlite"
                ))
            }
            SessionType::MongoDb => cfg!(feature = "mongodb"),
            SessionType::DynamoDb => cfg!(feature = "dynamodb"),
            SessionType::Cachelib => cfg!(feature = "cachelib"),
        }
    }

    /// The error for a type this build cannot make: names `SESSION_TYPE` and the feature.
    pub(crate) fn not_built(self) -> ConfigError {
        ConfigError::new(
            SESSION_TYPE,
            format!(
                "{} needs the cargo feature {:?} of session-any, which this program was \
                 built without",
                self.name(),
                self.cargo_feature().unwrap_or_default()
            ),
        )
    }
}

impl fmt::Display for SessionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SessionType {
    type Err = ConfigError;

    /// Reads a `SESSION_TYPE` value; anything else is an error naming `SESSION_TYPE`.
    fn from_str(value: &str) -> Result<SessionType, ConfigError> {
        let value = value.trim().to_ascii_lowercase();
        Ok(match value.as_str() {
            "filesystem" => SessionType::Filesystem,
            "memory" => SessionType::Memory,
            "redis" => SessionType::Redis,
            "memcached" => SessionType::Memcached,
            "sqlalchemy" | "sql" => SessionType::Sql,
            "mongodb" => SessionType::MongoDb,
            "dynamodb" => SessionType::DynamoDb,
            "cachelib" => SessionType::Cachelib,
            _ => {
                return Err(ConfigError::new(
                    SESSION_TYPE,
                    format!("{value:?} is not a session type (supported: {SUPPORTED})"),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back() {
        for session_type in SessionType::ALL {
            assert_eq!(
                session_type.name().parse::<SessionType>(),
                Ok(*session_type)
            );
            assert_eq!(session_type.to_string(), session_type.name());
        }
        assert_eq!(" SQL ".parse::<SessionType>(), Ok(SessionType::Sql));
        assert_eq!("Redis".parse::<SessionType>(), Ok(SessionType::Redis));
        assert_eq!(SessionType::default(), SessionType::Filesystem);
    }

    #[test]
    fn unknown_types_name_session_type_and_the_value() {
        for value in ["bogus", "pickle", "null", ""] {
            let error = value.parse::<SessionType>().expect_err(value);
            assert_eq!(error.option, "SESSION_TYPE");
            assert!(error.message.contains(value), "{error}");
            assert!(error.message.contains("sqlalchemy (or sql)"), "{error}");
        }
    }

    #[test]
    fn only_memory_has_no_feature() {
        for session_type in SessionType::ALL {
            assert_eq!(
                session_type.cargo_feature().is_none(),
                *session_type == SessionType::Memory
            );
        }
        assert!(SessionType::Memory.is_built());
        let error = SessionType::Redis.not_built();
        assert_eq!(error.option, "SESSION_TYPE");
        assert!(error.message.contains("\"redis\""), "{error}");
    }
}
