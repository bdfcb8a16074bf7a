//! The table: which database, its names (validated), and Flask-Session's DDL.

use session_core::ConfigError;

/// Flask-Session's default table name (`SESSION_SQLALCHEMY_TABLE`).
pub const DEFAULT_TABLE: &str = "sessions";

/// The longest table, schema or sequence name accepted: PostgreSQL's identifier limit
/// (MySQL allows 64, so every accepted name works on all three databases).
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// Largest value a MySQL/MariaDB `BLOB` column holds (Flask-Session's `data` column there).
pub const MYSQL_BLOB_MAX: usize = 65_535;
/// Largest value a MySQL/MariaDB `MEDIUMBLOB` column holds.
pub const MYSQL_MEDIUMBLOB_MAX: usize = 16_777_215;
/// Largest value a MySQL/MariaDB `LONGBLOB` column holds (the server's
/// `max_allowed_packet` usually limits values well below this).
pub const MYSQL_LONGBLOB_MAX: usize = 4_294_967_295;

/// The longest key (`SESSION_KEY_PREFIX` + session id) the `session_id VARCHAR(255)`
/// column holds, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// The longest owner index name (`SESSION_KEY_PREFIX` + `owner:` + the owner) the owners
/// table's `owner VARCHAR(512)` column holds, in characters.
pub const MAX_OWNER_INDEX_CHARS: usize = 512;

/// The database behind a [`SqlStore`](crate::SqlStore).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// MySQL or MariaDB (`mysql://`, `mariadb://`).
    MySql,
    /// SQLite (`sqlite:`).
    Sqlite,
}

impl Backend {
    /// The database a connection URL names, from its scheme. SQLAlchemy-style driver
    /// suffixes (`postgresql+psycopg://`, `mysql+pymysql://`) are accepted, so a Flask
    /// app's `SQLALCHEMY_DATABASE_URI` for PostgreSQL or MySQL works as is.
    pub fn from_url(url: &str) -> Option<Backend> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        let base = scheme.split('+').next().unwrap_or_default();
        match base {
            "postgres" | "postgresql" => Some(Backend::Postgres),
            "mysql" | "mariadb" => Some(Backend::MySql),
            // sqlx's SQLite URLs (`sqlite://file.db`, `sqlite::memory:`) differ from
            // SQLAlchemy's (`sqlite:///file.db`), so no driver suffix is accepted here.
            "sqlite" if scheme == "sqlite" => Some(Backend::Sqlite),
            _ => None,
        }
    }

    /// The cargo feature of this crate that compiles the driver for this database.
    pub fn cargo_feature(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }

    /// `name` quoted as an identifier. Only called with validated names, which contain
    /// neither quote character.
    pub(crate) fn quote(self, name: &str) -> String {
        match self {
            Backend::MySql => format!("`{name}`"),
            Backend::Postgres | Backend::Sqlite => format!("\"{name}\""),
        }
    }
}

/// Where the sessions live: table, schema and id sequence. The defaults are
/// Flask-Session's: table `sessions`, no schema, no sequence.
///
/// Names must be plain identifiers (`[A-Za-z_][A-Za-z0-9_]*`, at most
/// [`MAX_IDENTIFIER_LEN`] characters); they are checked by [`validate`](Self::validate)
/// and quoted in every statement, so configuration can never inject SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableOptions {
    table: String,
    schema: Option<String>,
    sequence: Option<String>,
    mysql_long_blob: bool,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            table: DEFAULT_TABLE.to_owned(),
            schema: None,
            sequence: None,
            mysql_long_blob: false,
        }
    }
}

impl TableOptions {
    /// Flask-Session's defaults: table `sessions`, no schema, no sequence.
    pub fn new() -> TableOptions {
        TableOptions::default()
    }

    /// The table name (`SESSION_SQLALCHEMY_TABLE`, default `sessions`).
    pub fn table(mut self, name: impl Into<String>) -> TableOptions {
        self.table = name.into();
        self
    }

    /// The schema holding the table (`SESSION_SQLALCHEMY_SCHEMA`, default none: the
    /// connection's default). On MySQL/MariaDB this is the database; on SQLite the name
    /// of an attached database. The schema must already exist.
    pub fn schema(mut self, name: impl Into<String>) -> TableOptions {
        self.schema = Some(name.into());
        self
    }

    /// The sequence that numbers the `id` column (`SESSION_SQLALCHEMY_SEQUENCE`, default
    /// none: `SERIAL`/`AUTO_INCREMENT`). Honoured on PostgreSQL and MariaDB (created when
    /// missing, unqualified like SQLAlchemy's); ignored on MySQL and SQLite, which have no
    /// sequences, as SQLAlchemy does. ([`SqlStore::create_table_sql`](crate::SqlStore::create_table_sql)
    /// cannot tell MySQL from MariaDB: for MySQL, leave the sequence out.)
    pub fn sequence(mut self, name: impl Into<String>) -> TableOptions {
        self.sequence = Some(name.into());
        self
    }

    /// MySQL/MariaDB only: create the `data` column as `LONGBLOB` instead of Flask-Session's
    /// `BLOB`, which holds at most 64 KiB. Only affects tables this crate creates; the
    /// store reads the actual column type at start either way. Default `false`.
    pub fn mysql_long_blob(mut self, long_blob: bool) -> TableOptions {
        self.mysql_long_blob = long_blob;
        self
    }

    /// The same options without a sequence.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) fn without_sequence(mut self) -> TableOptions {
        self.sequence = None;
        self
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The schema, if any.
    pub fn schema_name(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The sequence, if any.
    pub fn sequence_name(&self) -> Option<&str> {
        self.sequence.as_deref()
    }

    /// Whether new MySQL/MariaDB tables get a `LONGBLOB` data column.
    pub fn uses_mysql_long_blob(&self) -> bool {
        self.mysql_long_blob
    }

    /// Checks every name; the error names the Flask-Session option at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_identifier("SESSION_SQLALCHEMY_TABLE", &self.table)?;
        if let Some(schema) = &self.schema {
            validate_identifier("SESSION_SQLALCHEMY_SCHEMA", schema)?;
        }
        if let Some(sequence) = &self.sequence {
            validate_identifier("SESSION_SQLALCHEMY_SEQUENCE", sequence)?;
        }
        Ok(())
    }

    /// The table, schema-qualified when a schema is set, quoted for `backend`.
    pub(crate) fn qualified_table(&self, backend: Backend) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", backend.quote(schema), backend.quote(&self.table)),
            None => backend.quote(&self.table),
        }
    }

    /// The sequence in effect on `backend`, quoted (none on SQLite).
    pub(crate) fn effective_sequence(&self, backend: Backend) -> Option<String> {
        match backend {
            Backend::Sqlite => None,
            Backend::Postgres | Backend::MySql => {
                self.sequence.as_deref().map(|name| backend.quote(name))
            }
        }
    }

    /// The owner index's table beside Flask's (`docs/owners.md`): `<table>_owners`, the
    /// table name cut so that the whole stays within the identifier limit.
    pub fn owners_table_name(&self) -> String {
        let mut name = self.table.clone();
        name.truncate(MAX_IDENTIFIER_LEN - "_owners".len());
        name.push_str("_owners");
        name
    }

    /// The owner index's table, schema-qualified when a schema is set, quoted.
    pub(crate) fn qualified_owners_table(&self, backend: Backend) -> String {
        let owners = backend.quote(&self.owners_table_name());
        match &self.schema {
            Some(schema) => format!("{}.{owners}", backend.quote(schema)),
            None => owners,
        }
    }

    /// Name of the index on `expiry`: `ix_<table>_expiry`, cut to the identifier limit.
    fn expiry_index_name(&self) -> String {
        let mut name = format!("ix_{}", self.table);
        name.truncate(MAX_IDENTIFIER_LEN - "_expiry".len());
        name.push_str("_expiry");
        name
    }

    /// The statements that create the table (see [`SqlStore::create_table_sql`](crate::SqlStore::create_table_sql)).
    pub(crate) fn ddl(&self, backend: Backend) -> Vec<String> {
        let table = self.qualified_table(backend);
        let index = backend.quote(&self.expiry_index_name());
        let sequence = self.effective_sequence(backend);
        let mut statements = Vec::new();
        if let Some(sequence) = &sequence {
            statements.push(format!("CREATE SEQUENCE IF NOT EXISTS {sequence}"));
        }
        match backend {
            Backend::Postgres => {
                let id = if sequence.is_some() {
                    "INTEGER NOT NULL"
                } else {
                    "SERIAL NOT NULL"
                };
                statements.push(format!(
                    "CREATE TABLE IF NOT EXISTS {table} (\n\
                     \tid {id},\n\
                     \tsession_id VARCHAR(255),\n\
                     \tdata BYTEA,\n\
                     \texpiry TIMESTAMP WITHOUT TIME ZONE,\n\
                     \tPRIMARY KEY (id),\n\
                     \tUNIQUE (session_id)\n)"
                ));
                // PostgreSQL puts an index in its table's schema; the name is unqualified.
                statements.push(format!(
                    "CREATE INDEX IF NOT EXISTS {index} ON {table} (expiry)"
                ));
            }
            Backend::MySql => {
                let id = if sequence.is_some() {
                    "INTEGER NOT NULL"
                } else {
                    "INTEGER NOT NULL AUTO_INCREMENT"
                };
                let data = if self.mysql_long_blob {
                    "LONGBLOB"
                } else {
                    "BLOB"
                };
                // utf8mb4_bin: session ids are case-sensitive (base64url); the server's
                // default collation would make `abc` and `ABC` the same key. MySQL 8 has no
                // CREATE INDEX IF NOT EXISTS, so the expiry index is part of the table.
                statements.push(format!(
                    "CREATE TABLE IF NOT EXISTS {table} (\n\
                     \tid {id},\n\
                     \tsession_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,\n\
                     \tdata {data},\n\
                     \texpiry DATETIME,\n\
                     \tPRIMARY KEY (id),\n\
                     \tUNIQUE (session_id),\n\
                     \tINDEX {index} (expiry)\n)"
                ));
            }
            Backend::Sqlite => {
                // `id INTEGER` + `PRIMARY KEY (id)` makes `id` the rowid: it numbers itself.
                statements.push(format!(
                    "CREATE TABLE IF NOT EXISTS {table} (\n\
                     \tid INTEGER NOT NULL,\n\
                     \tsession_id VARCHAR(255),\n\
                     \tdata BLOB,\n\
                     \texpiry DATETIME,\n\
                     \tPRIMARY KEY (id),\n\
                     \tUNIQUE (session_id)\n)"
                ));
                // SQLite qualifies the index name with the schema, not the table name.
                let index = match &self.schema {
                    Some(schema) => format!("{}.{index}", backend.quote(schema)),
                    None => index,
                };
                let bare_table = backend.quote(&self.table);
                statements.push(format!(
                    "CREATE INDEX IF NOT EXISTS {index} ON {bare_table} (expiry)"
                ));
            }
        }
        statements.push(self.owners_ddl(backend));
        statements
    }

    /// The owner index's table: one row per (index name, session key) with its times in
    /// Unix seconds. Flask never reads it; its own table is unchanged.
    fn owners_ddl(&self, backend: Backend) -> String {
        let owners = self.qualified_owners_table(backend);
        // MySQL/MariaDB: binary collation (case-sensitive keys); 512 + 255 characters of
        // utf8mb4 stay within InnoDB's 3072-byte key limit.
        let text = |length: u32| match backend {
            Backend::MySql => {
                format!("VARCHAR({length}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL")
            }
            Backend::Postgres | Backend::Sqlite => format!("VARCHAR({length}) NOT NULL"),
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {owners} (\n\
             \towner {},\n\
             \tsession_id {},\n\
             \tcreated BIGINT NOT NULL,\n\
             \tlast_seen BIGINT NOT NULL,\n\
             \texpires_at BIGINT NOT NULL,\n\
             \tPRIMARY KEY (owner, session_id)\n)",
            text(MAX_OWNER_INDEX_CHARS as u32),
            text(MAX_KEY_CHARS as u32),
        )
    }
}

/// Accepts `[A-Za-z_][A-Za-z0-9_]*` of 1 to [`MAX_IDENTIFIER_LEN`] characters.
fn validate_identifier(option: &'static str, name: &str) -> Result<(), ConfigError> {
    let fail = |message: String| ConfigError { option, message };
    if name.is_empty() {
        return Err(fail("the name is empty".to_owned()));
    }
    if name.len() > MAX_IDENTIFIER_LEN {
        return Err(fail(format!(
            "the name is {} characters long; at most {MAX_IDENTIFIER_LEN} are allowed",
            name.len()
        )));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(fail(format!(
            "{name:?} is not a plain identifier (letters, digits and `_`, not starting with a digit)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_from_urls() {
        let cases = [
            ("postgres://u:p@h/db", Some(Backend::Postgres)),
            ("postgresql://h/db", Some(Backend::Postgres)),
            ("postgresql+psycopg2://h/db", Some(Backend::Postgres)),
            ("mysql://u:p@h:3306/db", Some(Backend::MySql)),
            ("MySQL+pymysql://h/db", Some(Backend::MySql)),
            ("mariadb://h/db", Some(Backend::MySql)),
            ("sqlite::memory:", Some(Backend::Sqlite)),
            ("sqlite://sessions.db?mode=rwc", Some(Backend::Sqlite)),
            ("sqlite+pysqlite:///x.db", None),
            ("redis://127.0.0.1", None),
            ("sessions.db", None),
            ("", None),
        ];
        for (url, expected) in cases {
            assert_eq!(Backend::from_url(url), expected, "{url}");
        }
    }

    #[test]
    fn plain_names_are_accepted() {
        for name in ["sessions", "_s", "Flask_Sessions_2", &"a".repeat(63)] {
            let options = TableOptions::new().table(name).schema(name).sequence(name);
            assert_eq!(options.validate(), Ok(()), "{name}");
        }
    }

    #[test]
    fn bad_names_are_rejected_with_the_option_named() {
        let long = "a".repeat(64);
        for bad in [
            "sessions; DROP TABLE x",
            "",
            long.as_str(),
            "1sessions",
            "ses\"sions",
            "ses`sions",
            "public.sessions",
            "séssions",
            "sessions ",
        ] {
            let error = TableOptions::new().table(bad).validate().unwrap_err();
            assert_eq!(error.option, "SESSION_SQLALCHEMY_TABLE", "{bad:?}");
            let error = TableOptions::new().schema(bad).validate().unwrap_err();
            assert_eq!(error.option, "SESSION_SQLALCHEMY_SCHEMA", "{bad:?}");
            let error = TableOptions::new().sequence(bad).validate().unwrap_err();
            assert_eq!(error.option, "SESSION_SQLALCHEMY_SEQUENCE", "{bad:?}");
        }
        let error = TableOptions::new().table(&long).validate().unwrap_err();
        assert!(error.to_string().contains("at most 63"), "{error}");
        let error = TableOptions::new().table("").validate().unwrap_err();
        assert!(error.to_string().contains("empty"), "{error}");
    }

    #[test]
    fn ddl_matches_flask_session_columns() {
        let pg = TableOptions::new().ddl(Backend::Postgres);
        // Flask's table and its expiry index, then the owner index's table beside it.
        assert_eq!(pg.len(), 3);
        assert!(pg[2].starts_with("CREATE TABLE IF NOT EXISTS \"sessions_owners\" ("));
        assert!(
            pg[2].contains("PRIMARY KEY (owner, session_id)"),
            "{}",
            pg[2]
        );
        assert!(pg[0].starts_with("CREATE TABLE IF NOT EXISTS \"sessions\" ("));
        for column in [
            "id SERIAL NOT NULL",
            "session_id VARCHAR(255)",
            "data BYTEA",
            "expiry TIMESTAMP WITHOUT TIME ZONE",
            "PRIMARY KEY (id)",
            "UNIQUE (session_id)",
        ] {
            assert!(pg[0].contains(column), "{column} missing from {}", pg[0]);
        }
        assert_eq!(
            pg[1],
            "CREATE INDEX IF NOT EXISTS \"ix_sessions_expiry\" ON \"sessions\" (expiry)"
        );

        let mysql = TableOptions::new().schema("app").ddl(Backend::MySql);
        assert_eq!(mysql.len(), 2);
        assert!(mysql[1].starts_with("CREATE TABLE IF NOT EXISTS `app`.`sessions_owners` ("));
        let long_name = "t".repeat(MAX_IDENTIFIER_LEN);
        let owners = TableOptions::new().table(&long_name).owners_table_name();
        assert_eq!(owners.len(), MAX_IDENTIFIER_LEN);
        assert!(owners.ends_with("_owners"));
        assert!(mysql[0].starts_with("CREATE TABLE IF NOT EXISTS `app`.`sessions` ("));
        for column in [
            "id INTEGER NOT NULL AUTO_INCREMENT",
            "data BLOB",
            "expiry DATETIME",
        ] {
            assert!(mysql[0].contains(column), "{column} missing");
        }
        let long = TableOptions::new()
            .mysql_long_blob(true)
            .ddl(Backend::MySql);
        assert!(long[0].contains("data LONGBLOB"));

        let sqlite = TableOptions::new().schema("aux").ddl(Backend::Sqlite);
        assert!(sqlite[0].contains("id INTEGER NOT NULL"));
        assert!(sqlite[0].contains("data BLOB"));
        assert!(sqlite[0].contains("expiry DATETIME"));
        assert_eq!(
            sqlite[1],
            "CREATE INDEX IF NOT EXISTS \"aux\".\"ix_sessions_expiry\" ON \"sessions\" (expiry)"
        );
    }

    #[test]
    fn sequences_replace_autoincrement_except_on_sqlite() {
        let options = TableOptions::new().sequence("session_id_seq");
        let pg = options.ddl(Backend::Postgres);
        assert_eq!(pg[0], "CREATE SEQUENCE IF NOT EXISTS \"session_id_seq\"");
        assert!(pg[1].contains("id INTEGER NOT NULL,"));
        let mysql = options.ddl(Backend::MySql);
        assert_eq!(mysql[0], "CREATE SEQUENCE IF NOT EXISTS `session_id_seq`");
        assert!(mysql[1].contains("id INTEGER NOT NULL,"));
        let sqlite = options.ddl(Backend::Sqlite);
        assert!(sqlite.iter().all(|s| !s.contains("SEQUENCE")));
    }

    #[test]
    fn long_table_names_keep_index_names_within_the_limit() {
        let options = TableOptions::new().table("t".repeat(63));
        let name = options.expiry_index_name();
        assert_eq!(name.len(), MAX_IDENTIFIER_LEN);
        assert!(name.starts_with("ix_t") && name.ends_with("_expiry"));
    }
}
