//! Flask-Session 0.8 (pymongo) and the Rust example app share one collection, in both
//! directions. The server is mongoeco, a MongoDB-compatible emulator (no mongod can be
//! installed on the CI machines); set MONGODB_URL to run the same test against a real server.
//!
//! Needs the MongoDB-compatible server (`cargo xtask services up mongodb`) and the Flask venv.

use session_tests::any_store;
use session_tests::flask::{rust_app, unique, Interop, Invalidations};

async fn interop() -> Interop {
    let url = std::env::var("MONGODB_URL")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".into());
    let database = unique("interop_");
    let store = any_store(
        &[
            ("SESSION_TYPE", "mongodb".into()),
            ("SESSION_MONGODB_URL", url.clone()),
            ("SESSION_MONGODB_DB", database.clone()),
        ],
        "mongodb",
    )
    .await;
    Interop {
        invalidations: Invalidations::of(&*store),
        app: rust_app(store, "session:"),
        env: vec![
            ("SESSION_TYPE", "mongodb".into()),
            ("MONGODB_URL", url),
            ("SESSION_MONGODB_DB", database),
        ],
        lifetime: 31 * 24 * 3600,
    }
}

#[tokio::test]
async fn a_flask_session_is_read_and_changed_by_rust_and_flask_sees_the_change() {
    interop().await.flask_to_rust_and_back().await;
}

#[tokio::test]
async fn a_rust_session_is_read_and_changed_by_flask() {
    interop().await.rust_to_flask().await;
}
