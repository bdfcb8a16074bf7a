//! Flask-Session 0.8 (pymemcache) and the Rust example app share one memcached, in both
//! directions, with the default 31-day lifetime (sent as an absolute time by both sides).
//!
//! Needs memcached (`cargo xtask services up memcached`) and the Flask venv.

use session_tests::any_store;
use session_tests::flask::{rust_app, unique, Interop, Invalidations};

async fn interop() -> Interop {
    let servers = std::env::var("MEMCACHED_SERVERS").unwrap_or_else(|_| "127.0.0.1:11211".into());
    let store = any_store(
        &[
            ("SESSION_TYPE", "memcached".into()),
            ("SESSION_MEMCACHED_SERVERS", servers.clone()),
        ],
        "memcached",
    )
    .await;
    let prefix = format!("{}:", unique("interop"));
    Interop {
        invalidations: Invalidations::of(&*store),
        app: rust_app(store, &prefix),
        env: vec![
            ("SESSION_TYPE", "memcached".into()),
            ("MEMCACHED_SERVERS", servers),
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
