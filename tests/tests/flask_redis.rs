//! Flask-Session 0.8 and the Rust example app share one Redis, in both directions.
//!
//! Needs Redis (`cargo xtask services up redis`) and the Flask venv (`FLASK_PYTHON`, set by
//! `cargo xtask test`).

use session_tests::any_store;
use session_tests::flask::{rust_app, unique, Interop, Invalidations};

async fn interop() -> Interop {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = any_store(
        &[
            ("SESSION_TYPE", "redis".into()),
            ("SESSION_REDIS_URL", url.clone()),
        ],
        "redis",
    )
    .await;
    let prefix = format!("{}:", unique("interop"));
    Interop {
        invalidations: Invalidations::of(&*store),
        app: rust_app(store, &prefix),
        env: vec![
            ("SESSION_TYPE", "redis".into()),
            ("REDIS_URL", url),
            ("SESSION_KEY_PREFIX", prefix),
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
