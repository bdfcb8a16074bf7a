//! Flask-Session 0.8 and the Rust example app share one Redis, in both directions.
//!
//! Needs Redis (`cargo xtask services up redis`) and the Flask venv (`FLASK_PYTHON`, set by
//! `cargo xtask test`).

use std::sync::Arc;

use session_core::{SessionStore, Signer};
use session_tests::any_store;
use session_tests::flask::{run, rust_app, rust_app_from_vars, unique, Interop, Invalidations};

/// The test Redis's URL (REDIS_URL) and the store the Rust app uses on it.
async fn redis_store() -> (String, Arc<dyn SessionStore>) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = any_store(
        &[
            ("SESSION_TYPE", "redis".into()),
            ("SESSION_REDIS_URL", url.clone()),
        ],
        "redis",
    )
    .await;
    (url, store)
}

async fn interop() -> Interop {
    let (url, store) = redis_store().await;
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
    let (url, store) = redis_store().await;
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

/// The signature part of a signed cookie value (`sid.signature`).
fn signature(cookie: &str) -> &str {
    cookie
        .rsplit_once('.')
        .unwrap_or_else(|| panic!("{cookie:?} is not signed"))
        .1
}

/// Key rotation with Flask 3.1's `SECRET_KEY_FALLBACKS` (`SESSION_USE_SIGNER=true`): Flask
/// signs a session cookie with key A; the Rust app on key B with fallback A accepts it and,
/// when it writes, answers with the same id signed by B, which Flask on key B (fallback A)
/// accepts. Flask-Session 0.8 signs with `SECRET_KEY` alone and ignores the fallbacks, so
/// Flask on key B refuses the A-signed cookie: during a rotation the Rust side must be the
/// one that re-signs (`docs/backends.md`). A cookie signed with a key in neither list is a
/// fresh, empty session on both sides.
#[tokio::test]
async fn a_cookie_signed_with_a_fallback_key_is_accepted_and_re_signed_with_the_new_key() {
    const OLD: &str = "rotation-old-key-A";
    const NEW: &str = "rotation-new-key-B";
    const OTHER: &str = "rotation-unknown-key-C";
    let (url, store) = redis_store().await;
    let prefix = format!("{}:", unique("rotation"));
    let flask_with = |key: &str, fallbacks: &str| {
        vec![
            ("SESSION_TYPE", "redis".to_owned()),
            ("REDIS_URL", url.clone()),
            ("SESSION_KEY_PREFIX", prefix.clone()),
            ("SESSION_USE_SIGNER", "true".to_owned()),
            ("SECRET_KEY", key.to_owned()),
            ("SECRET_KEY_FALLBACKS", fallbacks.to_owned()),
        ]
    };
    let rust_vars = [
        ("SESSION_KEY_PREFIX", prefix.clone()),
        ("SESSION_USE_SIGNER", "true".to_owned()),
        ("SECRET_KEY", NEW.to_owned()),
        ("SECRET_KEY_FALLBACKS", OLD.to_owned()),
    ];
    let rotated = Interop {
        invalidations: Invalidations::of(&*store),
        app: rust_app_from_vars(store, &rust_vars),
        env: flask_with(NEW, OLD),
        lifetime: 31 * 24 * 3600,
    };

    // Flask, before the rotation, signs with A.
    let login = run("login", None, &flask_with(OLD, ""));
    assert_eq!(login.status(), 200);
    let signed_old = login.sid().expect("Flask set a session cookie");
    let (sid, _) = signed_old.split_once('.').expect("a signed cookie");
    assert_eq!(
        Signer::new(OLD).unsign(&signed_old),
        Some(sid),
        "Flask signed with A"
    );

    // Rust, on B with fallback A, accepts it and re-signs with B when it writes.
    let shown = rotated.rust("GET", "/", Some(&signed_old), "").await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.json()["user"], "ann", "{}", shown.body);
    let counted = rotated
        .rust("POST", "/counter", Some(&signed_old), "")
        .await;
    assert_eq!((counted.status, counted.body.as_str()), (200, "1"));
    let signed_new = counted.sid.expect("the write sent a cookie");
    assert_eq!(
        signed_new,
        Signer::new(NEW).sign(sid),
        "same id, signed by B"
    );
    assert_ne!(signature(&signed_new), signature(&signed_old));

    // Flask on B (fallback A) accepts the B-signed cookie and sees Rust's write.
    let seen = rotated.flask("get", Some(&signed_new)).await;
    assert_eq!(seen.status(), 200);
    assert_eq!(seen.body()["session"]["user"], "ann", "{}", seen.body());
    assert_eq!(seen.body()["session"]["counter"], 1, "{}", seen.body());
    // Flask-Session 0.8 ignores SECRET_KEY_FALLBACKS: the A-signed cookie is refused there
    // (no write, so no invalidation to wait for).
    let refused = run("get", Some(&signed_old), &flask_with(NEW, OLD));
    assert!(
        refused.body()["session"].get("user").is_none(),
        "Flask-Session now honours SECRET_KEY_FALLBACKS: update docs/backends.md ({})",
        refused.body()
    );

    // A key in neither list: a fresh, empty session on both sides.
    let foreign = run("login", None, &flask_with(OTHER, ""))
        .sid()
        .expect("Flask set a session cookie");
    let shown = rotated.rust("GET", "/", Some(&foreign), "").await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.json(), serde_json::json!({}), "{}", shown.body);
    let counted = rotated.rust("POST", "/counter", Some(&foreign), "").await;
    assert_eq!((counted.status, counted.body.as_str()), (200, "1"));
    let fresh = counted.sid.expect("a new session's cookie");
    assert_ne!(
        fresh.split('.').next(),
        foreign.split('.').next(),
        "the foreign id was adopted"
    );
    let seen = run("get", Some(&foreign), &flask_with(NEW, OLD));
    assert!(
        seen.body()["session"].get("user").is_none(),
        "{}",
        seen.body()
    );
}
