//! The statements, built once per store from the validated table options.
//!
//! Parameter order is the same on every database (PostgreSQL numbers them, the others
//! bind `?` in order); each field documents it.

use crate::schema::{Backend, TableOptions};

#[derive(Debug)]
pub(crate) struct Queries {
    /// (key, now) → rows of (data, expiry).
    pub load: String,
    /// PostgreSQL/SQLite (key, data, expiry, now): insert, or replace an expired row;
    /// one row affected when written. MySQL (key, data, expiry): plain insert.
    pub create: String,
    /// (key, now): remove the row under key when it has expired (MySQL's create).
    pub delete_expired_key: String,
    /// (data, expiry, key, expected, now): one row affected when written.
    pub compare_and_set: String,
    /// (expiry, key, now): one row affected when extended.
    pub touch: String,
    /// (key).
    pub delete: String,
    /// (key, expected, now): removes the live row holding `expected`.
    pub delete_if_matches: String,
    /// (now, batch size): removes up to one batch of expired rows.
    pub cleanup: String,
    /// (): fails when the table or one of its columns is missing.
    pub probe: String,
    /// (LIKE pattern with `!` as escape, after key, now, limit): live keys in order.
    pub scan: String,

    /// (owner, key, created, last_seen, expires_at): insert or replace the index entry.
    pub index_put: String,
    /// (owner, key).
    pub index_remove: String,
    /// (owner, now): removes the owner's entries that expired before now.
    pub index_prune: String,
    /// (owner) → rows of (key, created, last_seen, expires_at).
    pub index_list: String,
    /// (): fails when the owners table is missing.
    pub index_probe: String,
    /// MySQL (schema or NULL, table): the `data` column's capacity in bytes.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub data_column_type: String,
}

impl Queries {
    pub(crate) fn new(backend: Backend, options: &TableOptions) -> Queries {
        let table = options.qualified_table(backend);
        let sequence = options.effective_sequence(backend);
        // With a sequence, `id` has no default: the writer draws the next value itself,
        // as SQLAlchemy does.
        let (id_column, id_value) = match (&sequence, backend) {
            (Some(sequence), Backend::Postgres) => ("id, ", format!("nextval('{sequence}'), ")),
            (Some(sequence), _) => ("id, ", format!("NEXTVAL({sequence}), ")),
            (None, _) => ("", String::new()),
        };
        let insert_as = |alias: &str, p: [&str; 3]| {
            format!(
                "INSERT INTO {table}{alias} ({id_column}session_id, data, expiry) \
                 VALUES ({id_value}{}, {}, {})",
                p[0], p[1], p[2]
            )
        };
        let insert = |p: [&str; 3]| insert_as("", p);
        let dead = "expiry IS NULL OR expiry <=";
        let owners = options.qualified_owners_table(backend);
        let index_columns = "(owner, session_id, created, last_seen, expires_at)";
        let index_probe = format!(
            "SELECT owner, session_id, created, last_seen, expires_at FROM {owners} WHERE 1 = 0"
        );
        match backend {
            Backend::Postgres => Queries {
                load: format!(
                    "SELECT data, expiry FROM {table} WHERE session_id = $1 AND expiry > $2"
                ),
                // The alias names the existing row in the WHERE (EXCLUDED is the new one).
                create: format!(
                    "{} ON CONFLICT (session_id) DO UPDATE \
                     SET data = EXCLUDED.data, expiry = EXCLUDED.expiry \
                     WHERE existing.expiry IS NULL OR existing.expiry <= $4",
                    insert_as(" AS existing", ["$1", "$2", "$3"])
                ),
                delete_expired_key: format!(
                    "DELETE FROM {table} WHERE session_id = $1 AND ({dead} $2)"
                ),
                compare_and_set: format!(
                    "UPDATE {table} SET data = $1, expiry = $2 \
                     WHERE session_id = $3 AND data = $4 AND expiry > $5"
                ),
                touch: format!(
                    "UPDATE {table} SET expiry = $1 WHERE session_id = $2 AND expiry > $3"
                ),
                delete: format!("DELETE FROM {table} WHERE session_id = $1"),
                delete_if_matches: format!(
                    "DELETE FROM {table} WHERE session_id = $1 AND data = $2 AND expiry > $3"
                ),
                cleanup: format!(
                    "DELETE FROM {table} WHERE id IN \
                     (SELECT id FROM {table} WHERE {dead} $1 LIMIT $2)"
                ),
                probe: format!("SELECT id, session_id, data, expiry FROM {table} WHERE 1 = 0"),
                scan: format!(
                    "SELECT session_id FROM {table} WHERE session_id LIKE $1 ESCAPE '!' \
                     AND session_id > $2 AND expiry > $3 ORDER BY session_id LIMIT $4"
                ),
                index_put: format!(
                    "INSERT INTO {owners} {index_columns} VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (owner, session_id) DO UPDATE SET created = EXCLUDED.created, \
                     last_seen = EXCLUDED.last_seen, expires_at = EXCLUDED.expires_at"
                ),
                index_remove: format!("DELETE FROM {owners} WHERE owner = $1 AND session_id = $2"),
                index_prune: format!("DELETE FROM {owners} WHERE owner = $1 AND expires_at < $2"),
                index_list: format!(
                    "SELECT session_id, created, last_seen, expires_at FROM {owners} WHERE owner = $1"
                ),
                index_probe,
                data_column_type: String::new(),
            },
            Backend::MySql => Queries {
                load: format!(
                    "SELECT data, expiry FROM {table} WHERE session_id = ? AND expiry > ?"
                ),
                create: insert(["?", "?", "?"]),
                delete_expired_key: format!(
                    "DELETE FROM {table} WHERE session_id = ? AND ({dead} ?)"
                ),
                // sqlx connects with CLIENT_FOUND_ROWS, so "rows affected" counts matched
                // rows even when the new values equal the old ones.
                compare_and_set: format!(
                    "UPDATE {table} SET data = ?, expiry = ? \
                     WHERE session_id = ? AND data = ? AND expiry > ?"
                ),
                touch: format!("UPDATE {table} SET expiry = ? WHERE session_id = ? AND expiry > ?"),
                delete: format!("DELETE FROM {table} WHERE session_id = ?"),
                delete_if_matches: format!(
                    "DELETE FROM {table} WHERE session_id = ? AND data = ? AND expiry > ?"
                ),
                // MySQL allows LIMIT on a single-table DELETE, not in an IN subquery.
                cleanup: format!("DELETE FROM {table} WHERE {dead} ? LIMIT ?"),
                probe: format!("SELECT id, session_id, data, expiry FROM {table} WHERE 1 = 0"),
                scan: format!(
                    // session_id may be VARBINARY (a binary collation): read it as text.
                    "SELECT CAST(session_id AS CHAR) FROM {table} \
                     WHERE session_id LIKE ? ESCAPE '!' \
                     AND session_id > ? AND expiry > ? ORDER BY session_id LIMIT ?"
                ),
                index_put: format!(
                    "INSERT INTO {owners} {index_columns} VALUES (?, ?, ?, ?, ?) \
                     ON DUPLICATE KEY UPDATE created = VALUES(created), \
                     last_seen = VALUES(last_seen), expires_at = VALUES(expires_at)"
                ),
                index_remove: format!("DELETE FROM {owners} WHERE owner = ? AND session_id = ?"),
                index_prune: format!("DELETE FROM {owners} WHERE owner = ? AND expires_at < ?"),
                index_list: format!(
                    "SELECT session_id, created, last_seen, expires_at FROM {owners} WHERE owner = ?"
                ),
                index_probe,
                data_column_type: "SELECT CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) \
                     FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
                     AND COLUMN_NAME = 'data'"
                    .to_owned(),
            },
            Backend::Sqlite => Queries {
                load: format!(
                    "SELECT data, expiry FROM {table} WHERE session_id = ?1 AND expiry > ?2"
                ),
                // In SQLite's DO UPDATE, bare column names are the existing row's.
                create: format!(
                    "{} ON CONFLICT (session_id) DO UPDATE \
                     SET data = excluded.data, expiry = excluded.expiry \
                     WHERE {dead} ?4",
                    insert(["?1", "?2", "?3"])
                ),
                delete_expired_key: format!(
                    "DELETE FROM {table} WHERE session_id = ?1 AND ({dead} ?2)"
                ),
                compare_and_set: format!(
                    "UPDATE {table} SET data = ?1, expiry = ?2 \
                     WHERE session_id = ?3 AND data = ?4 AND expiry > ?5"
                ),
                touch: format!(
                    "UPDATE {table} SET expiry = ?1 WHERE session_id = ?2 AND expiry > ?3"
                ),
                delete: format!("DELETE FROM {table} WHERE session_id = ?1"),
                delete_if_matches: format!(
                    "DELETE FROM {table} WHERE session_id = ?1 AND data = ?2 AND expiry > ?3"
                ),
                cleanup: format!(
                    "DELETE FROM {table} WHERE id IN \
                     (SELECT id FROM {table} WHERE {dead} ?1 LIMIT ?2)"
                ),
                probe: format!("SELECT id, session_id, data, expiry FROM {table} WHERE 1 = 0"),
                scan: format!(
                    "SELECT session_id FROM {table} WHERE session_id LIKE ?1 ESCAPE '!' \
                     AND session_id > ?2 AND expiry > ?3 ORDER BY session_id LIMIT ?4"
                ),
                index_put: format!(
                    "INSERT INTO {owners} {index_columns} VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (owner, session_id) DO UPDATE SET created = excluded.created, \
                     last_seen = excluded.last_seen, expires_at = excluded.expires_at"
                ),
                index_remove: format!("DELETE FROM {owners} WHERE owner = ?1 AND session_id = ?2"),
                index_prune: format!("DELETE FROM {owners} WHERE owner = ?1 AND expires_at < ?2"),
                index_list: format!(
                    "SELECT session_id, created, last_seen, expires_at FROM {owners} WHERE owner = ?1"
                ),
                index_probe,
                data_column_type: String::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_the_configured_names() {
        let options = TableOptions::new().schema("app").table("web_sessions");
        let pg = Queries::new(Backend::Postgres, &options);
        assert_eq!(
            pg.load,
            "SELECT data, expiry FROM \"app\".\"web_sessions\" WHERE session_id = $1 AND expiry > $2"
        );
        let mysql = Queries::new(Backend::MySql, &options);
        assert!(mysql
            .create
            .starts_with("INSERT INTO `app`.`web_sessions` (session_id"));
        let sqlite = Queries::new(Backend::Sqlite, &TableOptions::new());
        assert!(sqlite
            .cleanup
            .starts_with("DELETE FROM \"sessions\" WHERE id IN"));
    }

    #[test]
    fn sequences_fill_the_id_where_supported() {
        let options = TableOptions::new().sequence("sid_seq");
        let pg = Queries::new(Backend::Postgres, &options);
        assert!(pg
            .create
            .contains("(id, session_id, data, expiry) VALUES (nextval('\"sid_seq\"'), $1"));
        let mysql = Queries::new(Backend::MySql, &options);
        assert!(mysql.create.contains("VALUES (NEXTVAL(`sid_seq`), ?"));
        let sqlite = Queries::new(Backend::Sqlite, &options);
        assert!(sqlite.create.contains("(session_id, data, expiry)"));
    }
}
