//! SQLAlchemy database URLs (what a Flask app's `SQLALCHEMY_DATABASE_URI` holds) turned
//! into the URLs this crate's driver (sqlx) reads.

/// The sqlx URL for an SQLAlchemy URL, so that a Flask app's `SQLALCHEMY_DATABASE_URI`
/// means here what it means to SQLAlchemy:
///
/// | SQLAlchemy | sqlx | meaning |
/// |---|---|---|
/// | `sqlite:///app.db` | `sqlite://app.db?mode=rwc` | `app.db` relative to the working directory |
/// | `sqlite:////var/app.db` | `sqlite:///var/app.db?mode=rwc` | the absolute path `/var/app.db` |
/// | `sqlite://`, `sqlite:///:memory:` | `sqlite::memory:` | an in-memory database |
/// | `postgresql+psycopg2://u:p@h/db` | `postgres://u:p@h/db` | the driver suffix dropped |
/// | `mysql+pymysql://u:p@h/db` | `mysql://u:p@h/db` | the same for MySQL and MariaDB |
///
/// SQLite files are created when missing, as SQLAlchemy's driver does (`mode=rwc`); the
/// query parameters of an SQLite URL are options of Python's driver and are not carried
/// over. PostgreSQL and MySQL URLs keep theirs (`sslmode`, `charset`, …). Any other
/// dialect is an error naming it; the error never repeats the URL, which may hold a
/// password.
pub fn url_from_sqlalchemy(url: &str) -> Result<String, String> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("is not an SQLAlchemy URL (dialect[+driver]://…)".to_owned());
    };
    let scheme = scheme.to_ascii_lowercase();
    let dialect = scheme.split('+').next().unwrap_or_default();
    match dialect {
        "postgres" | "postgresql" => Ok(format!("postgres://{rest}")),
        "mysql" | "mariadb" => Ok(format!("{dialect}://{rest}")),
        "sqlite" => {
            let path = rest.split('?').next().unwrap_or_default();
            // `sqlite://` + `/path`: SQLAlchemy's database is what follows that slash.
            let database = match path {
                "" => return Ok("sqlite::memory:".to_owned()),
                _ => path.strip_prefix('/').ok_or_else(|| {
                    "an SQLite URL has no host: write sqlite:///relative.db or \
                     sqlite:////absolute.db"
                        .to_owned()
                })?,
            };
            if database.is_empty() || database == ":memory:" {
                return Ok("sqlite::memory:".to_owned());
            }
            Ok(format!("sqlite://{database}?mode=rwc"))
        }
        other => Err(format!(
            "the SQLAlchemy dialect {other:?} is not supported (postgresql, mysql, mariadb, \
             sqlite)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_mean_what_they_mean_to_sqlalchemy() {
        for (sqlalchemy, sqlx) in [
            ("sqlite:///app.db", "sqlite://app.db?mode=rwc"),
            (
                "sqlite:///instance/app.db",
                "sqlite://instance/app.db?mode=rwc",
            ),
            (
                "sqlite:////var/lib/app.db",
                "sqlite:///var/lib/app.db?mode=rwc",
            ),
            (
                "sqlite+pysqlite:///app.db?timeout=5",
                "sqlite://app.db?mode=rwc",
            ),
            ("sqlite://", "sqlite::memory:"),
            ("sqlite:///:memory:", "sqlite::memory:"),
            ("postgresql+psycopg2://u:p@h:5/db", "postgres://u:p@h:5/db"),
            (
                "postgresql://u:p@h/db?sslmode=require",
                "postgres://u:p@h/db?sslmode=require",
            ),
            ("postgres://h/db", "postgres://h/db"),
            (
                "mysql+pymysql://u:p@h/db?charset=utf8mb4",
                "mysql://u:p@h/db?charset=utf8mb4",
            ),
            ("MariaDB+mariadbconnector://u@h/db", "mariadb://u@h/db"),
        ] {
            assert_eq!(
                url_from_sqlalchemy(sqlalchemy).as_deref(),
                Ok(sqlx),
                "{sqlalchemy}"
            );
        }
    }

    #[test]
    fn other_urls_are_errors_without_the_password() {
        for url in [
            "oracle://u:hunter2@h/db",
            "sqlite://host/db",
            "no url hunter2",
        ] {
            let error = url_from_sqlalchemy(url).expect_err(url);
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
