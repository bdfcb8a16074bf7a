//! `sessions --owner` and `revoke --owner [--keep]`, with and without `--json`, run as the
//! built binary against the owner index of Redis and PostgreSQL (REDIS_URL, POSTGRES_URL;
//! `cargo xtask services up redis postgres`), on sessions an application's manager wrote;
//! plus memcached's one-line refusal (it keeps no owner index).

mod common;

use common::{fails, ok, ok_json};
use serde_json::json;
use session_any::AnyStore;
use session_core::{SessionConfig, SessionId, SessionManager};

/// The application's manager on the store and options `vars` configure, without its
/// session cache: the CLI ends sessions from another process, and this test checks the
/// store's state at once rather than waiting for Redis's invalidation to reach a cache.
async fn app_manager(vars: &[(&'static str, String)]) -> SessionManager {
    let lookup = |name: &str| {
        if name == "SESSION_CACHE" {
            return Some("false".to_owned());
        }
        vars.iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.clone())
    };
    let store = AnyStore::from_lookup(lookup)
        .await
        .expect("the store to seed");
    let config = SessionConfig::from_lookup(lookup).expect("a valid configuration");
    SessionManager::new(store, config)
}

/// A session of `owner` written as the application writes one: its cookie value and
/// handle.
async fn login(manager: &SessionManager, owner: &str) -> (String, String) {
    let session = manager.open(None);
    session.insert("n", &1).await.unwrap();
    session.set_owner(owner).await.unwrap();
    let outcome = manager.finish(&session).await.unwrap();
    let set_cookie = outcome.set_cookie.expect("a new session's cookie");
    let cookie = set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_owned())
        .expect("a cookie pair");
    let handle = session.handle().await.unwrap().expect("a stored session");
    (cookie, handle)
}

/// Whether the session behind `cookie` is still there.
async fn alive(manager: &SessionManager, cookie: &str) -> bool {
    !manager.open(Some(cookie)).is_empty().await.unwrap()
}

/// An owner name no other test run uses (the index of a shared server is per owner).
fn unique(label: &str) -> String {
    let id = SessionId::generate(8).expect("an id").to_string();
    format!("{label}-{}", id.replace(['-', '_'], "x"))
}

/// Both commands on the store `vars` configure: three sessions of one owner and one of
/// another, listed (handles, never ids; the ones the application computes), one revoked
/// with `--keep`, then the rest; an unknown handle and a bad owner are refused before
/// anything ends.
async fn exercise(mut vars: Vec<(&'static str, String)>) {
    vars.push(("SECRET_KEY", "cli-owner-secret".into()));
    let manager = app_manager(&vars).await;
    let (ann, bob) = (unique("ann"), unique("bob"));
    let mut anns = Vec::new();
    for _ in 0..3 {
        anns.push(login(&manager, &ann).await);
    }
    let bobs = login(&manager, &bob).await;

    // sessions: a table for people, whole handles; never an id.
    let text = ok(&vars, &["sessions", "--owner", &ann]);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("HANDLE"), "{text}");
    assert!(
        lines[4].starts_with(&format!("3 sessions of {ann} in ")),
        "{text}"
    );
    for (cookie, handle) in &anns {
        assert!(text.contains(handle.as_str()), "{handle} not in {text}");
        assert!(!text.contains(&cookie[..20]), "an id on screen: {text}");
    }
    assert!(!text.contains(bobs.1.as_str()), "{text}");

    let listed = ok_json(&vars, &["sessions", "--owner", &ann]);
    let rows = listed.as_array().expect("an array");
    let mut handles: Vec<&str> = rows
        .iter()
        .map(|row| row["handle"].as_str().expect("a handle"))
        .collect();
    handles.sort_unstable();
    let mut expected: Vec<&str> = anns.iter().map(|(_, handle)| handle.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(handles, expected, "{listed}");
    for row in rows {
        for field in ["created", "last_seen", "expires"] {
            assert!(
                row[field].as_str().is_some_and(|at| at.ends_with('Z')),
                "{field}: {row}"
            );
        }
        let row = row.to_string();
        for (cookie, _) in anns.iter().chain([&bobs]) {
            assert!(!row.contains(&cookie[..20]), "an id in {row}");
        }
    }

    // Refusals end nothing.
    let error = fails(
        &vars,
        &["revoke", "--owner", &ann, "--keep", "no-such-handle"],
    );
    assert!(error.contains("--keep"), "{error}");
    assert!(error.contains("nothing revoked"), "{error}");
    let error = fails(&vars, &["revoke", "--owner", &ann, "--keep", &bobs.1]);
    assert!(error.contains("--keep"), "{error}");
    let error = fails(&vars, &["sessions", "--owner", ""]);
    assert!(error.contains("--owner"), "{error}");
    let error = fails(&vars, &["revoke", "--owner", &"x".repeat(300)]);
    assert!(error.contains("--owner"), "{error}");
    for (cookie, _) in &anns {
        assert!(alive(&manager, cookie).await);
    }

    // revoke --keep: the others end, the kept one and the other owner's stay.
    let (kept_cookie, kept) = &anns[1];
    let text = ok(&vars, &["revoke", "--owner", &ann, "--keep", kept]);
    assert!(
        text.starts_with(&format!("revoked 2 sessions of {ann} in ")),
        "{text}"
    );
    assert!(text.trim_end().ends_with(&format!("kept {kept}")), "{text}");
    assert!(alive(&manager, kept_cookie).await);
    assert!(!alive(&manager, &anns[0].0).await);
    assert!(!alive(&manager, &anns[2].0).await);
    assert!(alive(&manager, &bobs.0).await);
    let left = ok_json(&vars, &["sessions", "--owner", &ann]);
    assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");
    assert_eq!(
        ok_json(&vars, &["sessions", "--owner", &ann])[0]["handle"],
        kept.as_str()
    );

    // revoke without --keep: all of them, then nothing left.
    assert_eq!(
        ok_json(&vars, &["revoke", "--owner", &ann]),
        json!({"revoked": 1})
    );
    assert!(!alive(&manager, kept_cookie).await);
    assert_eq!(ok_json(&vars, &["sessions", "--owner", &ann]), json!([]));
    let text = ok(&vars, &["sessions", "--owner", &ann]);
    assert!(
        text.trim_end()
            .ends_with(&format!("0 sessions of {ann} in {}", location(&vars))),
        "{text}"
    );
    assert_eq!(
        ok_json(&vars, &["revoke", "--owner", &bob]),
        json!({"revoked": 1})
    );
    assert!(!alive(&manager, &bobs.0).await);
}

/// What the reports call the store's location.
fn location(vars: &[(&'static str, String)]) -> String {
    match vars
        .iter()
        .find(|(name, _)| *name == "SESSION_SQLALCHEMY_TABLE")
    {
        Some((_, table)) => table.clone(),
        None => "the redis store".to_owned(),
    }
}

fn unique_prefix() -> String {
    format!("cli-owner-{}:", &unique("p")[2..12])
}

#[tokio::test]
async fn redis() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    exercise(vec![
        ("SESSION_TYPE", "redis".into()),
        ("SESSION_REDIS_URL", url),
        ("SESSION_KEY_PREFIX", unique_prefix()),
    ])
    .await;
}

#[tokio::test]
async fn postgres() {
    let url = std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://sessions:sessions@127.0.0.1:5432/sessions".into());
    exercise(vec![
        ("SESSION_TYPE", "sqlalchemy".into()),
        ("SESSION_SQL_URL", url),
        ("SESSION_SQLALCHEMY_TABLE", "cli_owner_sessions".into()),
        ("SESSION_KEY_PREFIX", unique_prefix()),
    ])
    .await;
}

#[tokio::test]
async fn memcached_keeps_no_owner_index_and_says_so_in_one_line() {
    let servers = std::env::var("MEMCACHED_SERVERS").unwrap_or_else(|_| "127.0.0.1:11211".into());
    let vars = vec![
        ("SESSION_TYPE", "memcached".to_owned()),
        ("SESSION_MEMCACHED_SERVERS", servers),
    ];
    for command in [
        &["sessions", "--owner", "ann"][..],
        &["sessions", "--owner", "ann", "--json"][..],
        &["revoke", "--owner", "ann"][..],
    ] {
        let error = fails(&vars, command);
        assert!(error.contains("memcached store cannot"), "{error}");
        assert!(error.contains("owner index"), "{error}");
    }
}
