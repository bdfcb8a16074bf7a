//! Flask-Session 0.8 + Flask-SQLAlchemy and the Rust example app share one table, in both
//! directions, on SQLite, PostgreSQL and MariaDB. Each test uses a table of its own, created
//! by whichever side comes first (their DDL is compatible).
//!
//! Needs PostgreSQL and MariaDB (`cargo xtask services up postgres mariadb`) and the Flask venv.

use session_tests::any_store;
use session_tests::flask::{rust_app, rust_app_from_vars, unique, Interop, Invalidations};

async fn interop(rust_url: String, flask_url: String) -> Interop {
    let table = unique("sessions_");
    let store = any_store(
        &[
            ("SESSION_TYPE", "sqlalchemy".into()),
            ("SESSION_SQL_URL", rust_url),
            ("SESSION_SQLALCHEMY_TABLE", table.clone()),
        ],
        "postgres mariadb",
    )
    .await;
    Interop {
        invalidations: Invalidations::of(&*store),
        app: rust_app(store, "session:"),
        env: vec![
            ("SESSION_TYPE", "sqlalchemy".into()),
            ("SQL_URL", flask_url),
            ("SESSION_SQLALCHEMY_TABLE", table),
        ],
        lifetime: 31 * 24 * 3600,
    }
}

fn sqlite() -> (String, String) {
    let path = std::env::temp_dir().join(format!("{}.db", unique("flask-interop-")));
    (
        format!("sqlite://{}?mode=rwc", path.display()),
        format!("sqlite:///{}", path.display()),
    )
}

fn postgres() -> (String, String) {
    let url = std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://sessions:sessions@127.0.0.1:5432/sessions".into());
    let flask = url.replacen("postgres://", "postgresql+psycopg2://", 1);
    (url, flask)
}

fn mariadb() -> (String, String) {
    let url = std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://sessions:sessions@127.0.0.1:3306/sessions".into());
    let flask = url.replacen("mysql://", "mysql+pymysql://", 1);
    (url, flask)
}

#[tokio::test]
async fn sqlite_flask_to_rust_and_back() {
    let (rust, flask) = sqlite();
    interop(rust, flask).await.flask_to_rust_and_back().await;
}

#[tokio::test]
async fn sqlite_rust_to_flask() {
    let (rust, flask) = sqlite();
    interop(rust, flask).await.rust_to_flask().await;
}

#[tokio::test]
async fn postgres_flask_to_rust_and_back() {
    let (rust, flask) = postgres();
    interop(rust, flask).await.flask_to_rust_and_back().await;
}

#[tokio::test]
async fn postgres_rust_to_flask() {
    let (rust, flask) = postgres();
    interop(rust, flask).await.rust_to_flask().await;
}

#[tokio::test]
async fn mariadb_flask_to_rust_and_back() {
    let (rust, flask) = mariadb();
    interop(rust, flask).await.flask_to_rust_and_back().await;
}

#[tokio::test]
async fn mariadb_rust_to_flask() {
    let (rust, flask) = mariadb();
    interop(rust, flask).await.rust_to_flask().await;
}

/// Both apps read the same SQLAlchemy URL (the Rust one as `SQLALCHEMY_DATABASE_URI`, as a
/// Flask app's environment sets it) and write signed cookies and JSON.
async fn signed_json_interop(flask_url: String) -> Interop {
    let table = unique("sessions_");
    let store = any_store(
        &[
            ("SESSION_TYPE", "sqlalchemy".into()),
            ("SQLALCHEMY_DATABASE_URI", flask_url.clone()),
            ("SESSION_SQLALCHEMY_TABLE", table.clone()),
        ],
        "postgres",
    )
    .await;
    let options = vec![
        ("SESSION_USE_SIGNER", "true".to_owned()),
        ("SESSION_SERIALIZATION_FORMAT", "json".to_owned()),
    ];
    let mut env = vec![
        ("SESSION_TYPE", "sqlalchemy".into()),
        ("SQL_URL", flask_url),
        ("SESSION_SQLALCHEMY_TABLE", table),
    ];
    env.extend(options.iter().cloned());
    Interop {
        invalidations: Invalidations::of(&*store),
        app: rust_app_from_vars(store, &options),
        env,
        lifetime: 31 * 24 * 3600,
    }
}

#[tokio::test]
async fn sqlite_signed_json_sessions_on_one_sqlalchemy_url() {
    let (_, flask) = sqlite();
    signed_json_interop(flask)
        .await
        .signed_cookies_both_ways()
        .await;
}

#[tokio::test]
async fn postgres_signed_json_sessions_on_one_sqlalchemy_url() {
    let (_, flask) = postgres();
    signed_json_interop(flask)
        .await
        .signed_cookies_both_ways()
        .await;
}
