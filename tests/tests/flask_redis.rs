//! Flask-Session 0.8 and the Rust example app share one Redis, in both directions.
//!
//! Needs Redis (`cargo xtask services up redis`) and the Flask venv (`FLASK_PYTHON`, set by
//! `cargo xtask test`).

use session_tests::any_store;
use session_tests::flask::{rust_app, rust_app_from_vars, unique, Interop, Invalidations};

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

/// Both apps configured by the same Flask-Session options (`options`, e.g.
/// `SESSION_SERIALIZATION_FORMAT=json`), the Rust one through `SessionConfig::from_lookup`.
async fn interop_with(options: &[(&'static str, &str)]) -> Interop {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = any_store(
        &[
            ("SESSION_TYPE", "redis".into()),
            ("SESSION_REDIS_URL", url.clone()),
        ],
        "redis",
    )
    .await;
    let mut shared = vec![("SESSION_KEY_PREFIX", format!("{}:", unique("interop")))];
    shared.extend(
        options
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned())),
    );
    let mut env = vec![("SESSION_TYPE", "redis".into()), ("REDIS_URL", url)];
    env.extend(shared.iter().cloned());
    Interop {
        invalidations: Invalidations::of(&*store),
        app: rust_app_from_vars(store, &shared),
        env,
        lifetime: 31 * 24 * 3600,
    }
}

#[tokio::test]
async fn json_sessions_are_shared_both_ways() {
    let interop = interop_with(&[("SESSION_SERIALIZATION_FORMAT", "json")]).await;
    interop.flask_to_rust_and_back().await;
    interop.rust_to_flask().await;
}

#[tokio::test]
async fn signed_cookies_are_accepted_both_ways() {
    interop_with(&[("SESSION_USE_SIGNER", "true")])
        .await
        .signed_cookies_both_ways()
        .await;
}

#[tokio::test]
async fn signed_json_sessions_are_shared_both_ways() {
    interop_with(&[
        ("SESSION_USE_SIGNER", "true"),
        ("SESSION_SERIALIZATION_FORMAT", "json"),
    ])
    .await
    .signed_cookies_both_ways()
    .await;
}
