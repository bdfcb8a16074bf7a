//! The environment names session-any reads: Flask-Session's where it has one, ours where it
//! has none. `docs/configuration.md` lists each with its default; a test keeps the two in
//! step.

use session_core::SessionConfig;

/// Which store: `filesystem` (default), `memory`, `redis`, `memcached`, `sqlalchemy`
/// (alias `sql`), `mongodb`, `dynamodb`. Flask-Session's name.
pub const SESSION_TYPE: &str = "SESSION_TYPE";
/// The filesystem store's directory (default `flask_session` under the working
/// directory). Flask-Session's name.
pub const SESSION_FILE_DIR: &str = "SESSION_FILE_DIR";
/// The most entries of the `cachelib` store before cachelib's pruning (default 500; 0: no
/// limit). Flask-Session's name.
pub const SESSION_FILE_THRESHOLD: &str = "SESSION_FILE_THRESHOLD";
/// The mode of the `cachelib` store's files (default `384`, i.e. `0o600`). Flask-Session's
/// name.
pub const SESSION_FILE_MODE: &str = "SESSION_FILE_MODE";
/// The Redis URL (default `redis://127.0.0.1:6379`). Ours: Flask-Session takes a client
/// (`SESSION_REDIS`).
pub const SESSION_REDIS_URL: &str = "SESSION_REDIS_URL";
/// Comma-separated memcached servers (default `127.0.0.1:11211`). Ours: Flask-Session
/// takes a client (`SESSION_MEMCACHED`).
pub const SESSION_MEMCACHED_SERVERS: &str = "SESSION_MEMCACHED_SERVERS";
/// The SQL database URL (required for `sqlalchemy`). Ours; when unset,
/// [`SQLALCHEMY_DATABASE_URI`] is read.
pub const SESSION_SQL_URL: &str = "SESSION_SQL_URL";
/// Flask-SQLAlchemy's database URL, the fallback for [`SESSION_SQL_URL`].
pub const SQLALCHEMY_DATABASE_URI: &str = "SQLALCHEMY_DATABASE_URI";
/// The SQL table (default `sessions`). Flask-Session's name.
pub const SESSION_SQLALCHEMY_TABLE: &str = "SESSION_SQLALCHEMY_TABLE";
/// The SQL schema (default none). Flask-Session's name.
pub const SESSION_SQLALCHEMY_SCHEMA: &str = "SESSION_SQLALCHEMY_SCHEMA";
/// The SQL id sequence (default none). Flask-Session's name.
pub const SESSION_SQLALCHEMY_SEQUENCE: &str = "SESSION_SQLALCHEMY_SEQUENCE";
/// `true`: the SQL table exists, create nothing (default `false`). Flask-Session's name.
pub const SESSION_SQLALCHEMY_TABLE_EXISTS: &str = "SESSION_SQLALCHEMY_TABLE_EXISTS";
/// The MongoDB URL (default `mongodb://127.0.0.1:27017`). Ours: Flask-Session takes a
/// client (`SESSION_MONGODB`).
pub const SESSION_MONGODB_URL: &str = "SESSION_MONGODB_URL";
/// The MongoDB database (default `flask_session`). Flask-Session's name.
pub const SESSION_MONGODB_DB: &str = "SESSION_MONGODB_DB";
/// The MongoDB collection (default `sessions`). Flask-Session's name.
pub const SESSION_MONGODB_COLLECT: &str = "SESSION_MONGODB_COLLECT";
/// The DynamoDB endpoint URL, or `aws` for the SDK's own (default
/// `http://localhost:8000`, Flask-Session's). Ours: Flask-Session takes a resource
/// (`SESSION_DYNAMODB`).
pub const SESSION_DYNAMODB_ENDPOINT: &str = "SESSION_DYNAMODB_ENDPOINT";
/// The DynamoDB table (default `Sessions`). Flask-Session's name.
pub const SESSION_DYNAMODB_TABLE: &str = "SESSION_DYNAMODB_TABLE";
/// `true`: the DynamoDB table exists, create nothing (default `false`). Flask-Session's
/// name.
pub const SESSION_DYNAMODB_TABLE_EXISTS: &str = "SESSION_DYNAMODB_TABLE_EXISTS";
/// The AWS region for DynamoDB (default: the AWS chain, else `us-west-2`). The AWS SDK's
/// name; read here too so that a lookup other than the process environment can set it.
pub const AWS_REGION: &str = "AWS_REGION";

/// Every name session-any reads to choose and build the store, whatever cargo features are
/// on. [`env_names`] adds `SessionConfig`'s names.
pub const STORE_ENV_NAMES: &[&str] = &[
    SESSION_TYPE,
    SESSION_FILE_DIR,
    SESSION_FILE_THRESHOLD,
    SESSION_FILE_MODE,
    SESSION_REDIS_URL,
    SESSION_MEMCACHED_SERVERS,
    SESSION_SQL_URL,
    SQLALCHEMY_DATABASE_URI,
    SESSION_SQLALCHEMY_TABLE,
    SESSION_SQLALCHEMY_SCHEMA,
    SESSION_SQLALCHEMY_SEQUENCE,
    SESSION_SQLALCHEMY_TABLE_EXISTS,
    SESSION_MONGODB_URL,
    SESSION_MONGODB_DB,
    SESSION_MONGODB_COLLECT,
    SESSION_DYNAMODB_ENDPOINT,
    SESSION_DYNAMODB_TABLE,
    SESSION_DYNAMODB_TABLE_EXISTS,
    AWS_REGION,
];

/// Every environment name an application configured by
/// [`SessionConfig::from_env`](session_core::SessionConfig::from_env) and
/// [`AnyStore::from_env`](crate::AnyStore::from_env) reads: `SessionConfig`'s names first,
/// then [`STORE_ENV_NAMES`]. For documentation checks, and for warning about a `SESSION_*`
/// variable that nothing reads (a typo).
///
/// `SessionConfig`'s names are session-core's [`SessionConfig::ENV_NAMES`], which its own
/// test keeps equal to what `from_lookup` reads.
pub fn env_names() -> Vec<String> {
    let mut names: Vec<String> = SessionConfig::ENV_NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    for name in STORE_ENV_NAMES {
        if !names.iter().any(|known| known == name) {
            names.push((*name).to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_listed_once() {
        let names = env_names();
        for name in &names {
            assert_eq!(
                names.iter().filter(|other| *other == name).count(),
                1,
                "{name}"
            );
        }
        for store_name in STORE_ENV_NAMES {
            assert!(names.iter().any(|name| name == store_name), "{store_name}");
        }
        // A few of SessionConfig's, recorded from session-core itself.
        for config_name in [
            "SESSION_COOKIE_NAME",
            "PERMANENT_SESSION_LIFETIME",
            "SESSION_KEY_PREFIX",
            "SECRET_KEY",
        ] {
            assert!(
                names.iter().any(|name| name == config_name),
                "{config_name}"
            );
        }
    }
}
