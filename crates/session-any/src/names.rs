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
/// Flask-SQLAlchemy's database URL, the fallback for [`SESSION_SQL_URL`] (and for
/// [`SESSION_SQLALCHEMY`]). An SQLAlchemy URL: `sqlite:///relative.db` is relative to the
/// working directory, `sqlite:////abs.db` absolute, driver suffixes are dropped.
pub const SQLALCHEMY_DATABASE_URI: &str = "SQLALCHEMY_DATABASE_URI";
/// The session table's database as an SQLAlchemy URL, read when [`SESSION_SQL_URL`] is
/// unset and before the bind or [`SQLALCHEMY_DATABASE_URI`]. Flask-Session's name, which
/// there takes an engine; here it takes that engine's URL.
pub const SESSION_SQLALCHEMY: &str = "SESSION_SQLALCHEMY";
/// The Flask-SQLAlchemy bind holding the session table (Flask-Session's name): its URL is
/// the entry of that name in [`SQLALCHEMY_BINDS`] instead of [`SQLALCHEMY_DATABASE_URI`].
pub const SESSION_SQLALCHEMY_BIND_KEY: &str = "SESSION_SQLALCHEMY_BIND_KEY";
/// Flask-SQLAlchemy's binds: a JSON object (`{"sessions": "postgresql://…"}`, a value may
/// also be `{"url": "…"}`) or `key=url,key=url`. Read only for
/// [`SESSION_SQLALCHEMY_BIND_KEY`].
pub const SQLALCHEMY_BINDS: &str = "SQLALCHEMY_BINDS";
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
/// Another name of [`SESSION_DYNAMODB_TABLE`]: the one Flask-Session's documentation (and
/// so many configurations) uses, though Flask-Session 0.8's code reads the other. Both set
/// to different tables is a start-up error.
pub const SESSION_DYNAMODB_TABLE_NAME: &str = "SESSION_DYNAMODB_TABLE_NAME";
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
    SESSION_SQLALCHEMY,
    SESSION_SQLALCHEMY_BIND_KEY,
    SQLALCHEMY_BINDS,
    SESSION_SQLALCHEMY_TABLE,
    SESSION_SQLALCHEMY_SCHEMA,
    SESSION_SQLALCHEMY_SEQUENCE,
    SESSION_SQLALCHEMY_TABLE_EXISTS,
    SESSION_MONGODB_URL,
    SESSION_MONGODB_DB,
    SESSION_MONGODB_COLLECT,
    SESSION_DYNAMODB_ENDPOINT,
    SESSION_DYNAMODB_TABLE,
    SESSION_DYNAMODB_TABLE_NAME,
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

/// A `SESSION_*` variable that nothing reads, with the known name it most resembles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadVariable {
    /// The variable as set.
    pub name: String,
    /// The closest name that is read, when one is close (a likely typo).
    pub did_you_mean: Option<String>,
}

impl std::fmt::Display for UnreadVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is set but nothing reads it", self.name)?;
        match &self.did_you_mean {
            Some(known) => write!(f, "; did you mean {known}?"),
            None => f.write_str("; see docs/configuration.md for the names read"),
        }
    }
}

/// The `SESSION_*` names among `set` that nothing reads ([`env_names`] is the list of the
/// names read), each with the closest read name when one is close. A typo in a variable's
/// name otherwise runs the program with the default, unknowingly.
///
/// `set` is usually the names of the process environment; names not starting with
/// `SESSION_` are ignored (the environment holds many other programs' variables).
pub fn unread_variables<I, S>(set: I) -> Vec<UnreadVariable>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let known = env_names();
    let mut unread: Vec<UnreadVariable> = set
        .into_iter()
        .filter_map(|name| {
            let name = name.as_ref();
            let rest = name.strip_prefix("SESSION_")?;
            if known.iter().any(|known| known == name) {
                return None;
            }
            // Compared without the common prefix, which would make every name look alike.
            let did_you_mean = known
                .iter()
                .filter_map(|known| {
                    let known_rest = known.strip_prefix("SESSION_")?;
                    let score = strsim::jaro_winkler(rest, known_rest);
                    (score >= 0.85).then_some((score, known))
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, known)| known.clone());
            Some(UnreadVariable {
                name: name.to_owned(),
                did_you_mean,
            })
        })
        .collect();
    unread.sort_by(|a, b| a.name.cmp(&b.name));
    unread.dedup();
    unread
}

/// Logs a warning for each `SESSION_*` variable of the process environment that nothing
/// reads ([`unread_variables`]); [`AnyStoreBuilder::from_env`](crate::AnyStoreBuilder::from_env)
/// calls it, so every application configured from the environment warns at start-up.
/// Returns them.
pub fn warn_unread_variables() -> Vec<UnreadVariable> {
    let unread =
        unread_variables(std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()));
    for variable in &unread {
        tracing::warn!(variable = %variable.name, "{variable}");
    }
    unread
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_session_variables_are_named_with_the_closest_known_name() {
        let unread = unread_variables([
            "SESSION_COOKIE_SECUR",
            "SESSION_TYP",
            "SESSION_REDIS",
            "SESSION_XYZZY_PLUGH",
            "SESSION_TYPE",
            "PATH",
            "SECRET_KEY",
            "SESSION_DYNAMODB_TABLE_NAME",
        ]);
        let pairs: Vec<(&str, Option<&str>)> = unread
            .iter()
            .map(|v| (v.name.as_str(), v.did_you_mean.as_deref()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("SESSION_COOKIE_SECUR", Some("SESSION_COOKIE_SECURE")),
                ("SESSION_REDIS", Some("SESSION_REDIS_URL")),
                ("SESSION_TYP", Some("SESSION_TYPE")),
                ("SESSION_XYZZY_PLUGH", None),
            ]
        );
        assert_eq!(
            unread[0].to_string(),
            "SESSION_COOKIE_SECUR is set but nothing reads it; did you mean SESSION_COOKIE_SECURE?"
        );
        assert!(unread[3].to_string().contains("docs/configuration.md"));
    }

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
