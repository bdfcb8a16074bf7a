//! `count`, `list`, `show`, `delete` and `cleanup`, with and without `--json`, run as the
//! built binary against the filesystem store, SQLite, PostgreSQL and Redis (REDIS_URL,
//! POSTGRES_URL; start them with `cargo xtask services up redis postgres`), plus the
//! one-line refusals of the stores that cannot list (memcached, cachelib).

mod common;

use std::time::{Duration, Instant};

use common::{fails, ok, ok_json};
use serde_json::{json, Value};
use session_any::AnyStore;
use session_core::{SessionId, SessionStore as _};

/// `{"_user_id": owner, "n": 1}` in msgpack, as Flask-Session writes it.
fn session_bytes(owner: &str) -> Vec<u8> {
    let mut bytes = vec![0x82, 0xa8];
    bytes.extend_from_slice(b"_user_id");
    bytes.push(0xa0 | owner.len() as u8);
    bytes.extend_from_slice(owner.as_bytes());
    bytes.extend_from_slice(&[0xa1, b'n', 0x01]);
    bytes
}

fn new_id() -> String {
    SessionId::generate(32).expect("an id").to_string()
}

/// Every command on the store `vars` configure, seeded with two sessions (owners ann and
/// bob) and one whose bytes do not decode; `expired_removed` is whether cleanup removes
/// an expired entry (stores without native expiry).
async fn exercise(vars: Vec<(&'static str, String)>, expired_removed: bool) {
    let lookup = vars.clone();
    let store = AnyStore::from_lookup(move |name| {
        lookup
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.clone())
    })
    .await
    .expect("the store to seed");
    let prefix = vars
        .iter()
        .find(|(name, _)| *name == "SESSION_KEY_PREFIX")
        .map_or("session:".to_owned(), |(_, prefix)| prefix.clone());
    let (ann, bob, junk) = (new_id(), new_id(), new_id());
    let ttl = Duration::from_secs(3600);
    for (id, bytes) in [
        (&ann, session_bytes("ann")),
        (&bob, session_bytes("bob")),
        (&junk, b"\xc1not a session".to_vec()),
    ] {
        assert!(store
            .create(&format!("{prefix}{id}"), &bytes, ttl)
            .await
            .unwrap());
    }

    // count
    let text = ok(&vars, &["count"]);
    assert!(text.starts_with("3 sessions in "), "{text}");
    assert_eq!(ok_json(&vars, &["count"])["count"], 3);

    // list: short ids for people, whole ones for scripts; owners; undecodable data.
    let text = ok(&vars, &["list"]);
    let ann_line = text
        .lines()
        .find(|line| line.starts_with(&format!("{}…", &ann[..8])))
        .unwrap_or_else(|| panic!("no line for ann's session in {text}"));
    assert!(ann_line.ends_with(" ann"), "{ann_line}");
    assert!(
        ann_line.contains(&format!(" {} ", session_bytes("ann").len())),
        "{ann_line}"
    );
    assert!(!text.contains(&ann), "a whole id on screen: {text}");
    assert!(text.contains("(data does not decode)"), "{text}");
    let last = text.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("3 sessions in "), "{text}");
    let listed = ok_json(&vars, &["list"]);
    let rows = listed.as_array().expect("an array");
    assert_eq!(rows.len(), 3, "{listed}");
    let ann_row = rows
        .iter()
        .find(|row| row["id"] == ann.as_str())
        .expect("ann");
    assert_eq!(ann_row["owner"], "ann");
    assert_eq!(ann_row["bytes"], session_bytes("ann").len());
    assert!(
        ann_row["expires"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z')),
        "{ann_row}"
    );
    let junk_row = rows
        .iter()
        .find(|row| row["id"] == junk.as_str())
        .expect("junk");
    assert_eq!(junk_row["decodes"], false);
    assert_eq!(
        ok_json(&vars, &["list", "--limit", "2"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // show
    let text = ok(&vars, &["show", &bob]);
    let shown: Value = serde_json::from_str(&text).expect("show prints JSON");
    assert_eq!(shown, json!({"_user_id": "bob", "n": 1}));
    let shown = ok_json(&vars, &["show", &bob]);
    assert_eq!(shown["data"]["_user_id"], "bob");
    assert_eq!(shown["bytes"], session_bytes("bob").len());
    let missing = new_id();
    let error = fails(&vars, &["show", &missing]);
    assert!(
        error.contains(&format!("no session {}…", &missing[..8])),
        "{error}"
    );
    assert!(!error.contains(&missing), "{error}");
    assert!(fails(&vars, &["show", "not an id!"]).contains("not a session id"));
    assert!(fails(&vars, &["show", &junk]).contains("neither msgpack nor JSON"));

    // delete
    let text = ok(&vars, &["delete", &bob]);
    assert_eq!(text.trim_end(), format!("deleted session {}…", &bob[..8]));
    assert!(store
        .load(&format!("{prefix}{bob}"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(ok_json(&vars, &["delete", &bob]), json!({"deleted": false}));
    assert!(ok(&vars, &["delete", &bob]).contains("nothing deleted"));
    assert_eq!(ok_json(&vars, &["delete", &junk]), json!({"deleted": true}));
    assert_eq!(ok_json(&vars, &["count"])["count"], 1);

    // cleanup: an entry that has expired goes where the store does not expire entries.
    let short = format!("{prefix}{}", new_id());
    assert!(store
        .create(&short, &session_bytes("eve"), Duration::from_secs(1))
        .await
        .unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.load(&short).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the entry never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cleaned = ok_json(&vars, &["cleanup"]);
    assert_eq!(cleaned["removed"], u64::from(expired_removed), "{cleaned}");
    let text = ok(&vars, &["cleanup"]);
    assert!(
        text.starts_with("removed 0 expired sessions from "),
        "{text}"
    );
    assert_eq!(ok_json(&vars, &["count"])["count"], 1);
    store.delete(&format!("{prefix}{ann}")).await.unwrap();
}

#[tokio::test]
async fn filesystem() {
    let dir = tempfile::tempdir().unwrap();
    // A folder the store creates itself (0700): it refuses tempdir's 0755.
    let sessions = dir.path().join("sessions");
    exercise(
        vec![
            ("SESSION_TYPE", "filesystem".into()),
            ("SESSION_FILE_DIR", sessions.display().to_string()),
        ],
        true,
    )
    .await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exercise(
        vec![
            ("SESSION_TYPE", "sqlalchemy".into()),
            (
                "SQLALCHEMY_DATABASE_URI",
                format!("sqlite:///{}", dir.path().join("s.db").display()),
            ),
        ],
        true,
    )
    .await;
}

fn unique_prefix() -> String {
    format!("cli-{}:", &new_id()[..10])
}

#[tokio::test]
async fn postgres() {
    let url = std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://sessions:sessions@127.0.0.1:5432/sessions".into());
    exercise(
        vec![
            ("SESSION_TYPE", "sqlalchemy".into()),
            ("SESSION_SQL_URL", url),
            ("SESSION_SQLALCHEMY_TABLE", "cli_sessions".into()),
            ("SESSION_KEY_PREFIX", unique_prefix()),
        ],
        true,
    )
    .await;
}

#[tokio::test]
async fn redis() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    exercise(
        vec![
            ("SESSION_TYPE", "redis".into()),
            ("SESSION_REDIS_URL", url),
            ("SESSION_KEY_PREFIX", unique_prefix()),
        ],
        false,
    )
    .await;
}

#[tokio::test]
async fn memcached_cannot_list_and_says_so_in_one_line() {
    let servers = std::env::var("MEMCACHED_SERVERS").unwrap_or_else(|_| "127.0.0.1:11211".into());
    let vars = vec![
        ("SESSION_TYPE", "memcached".to_owned()),
        ("SESSION_MEMCACHED_SERVERS", servers),
    ];
    for command in [&["list"][..], &["count"][..], &["list", "--json"][..]] {
        let error = fails(&vars, command);
        assert!(error.contains("memcached store cannot"), "{error}");
    }
}

#[tokio::test]
async fn cachelib_counts_but_cannot_list() {
    let dir = tempfile::tempdir().unwrap();
    let vars = vec![
        ("SESSION_TYPE", "cachelib".to_owned()),
        ("SESSION_FILE_DIR", dir.path().display().to_string()),
    ];
    let lookup = vars.clone();
    let store = AnyStore::from_lookup(move |name| {
        lookup
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.clone())
    })
    .await
    .expect("a cachelib store");
    let id = new_id();
    let key = format!("session:{id}");
    assert!(store
        .create(&key, &session_bytes("ann"), Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(ok_json(&vars, &["count"])["count"], 1);
    assert!(ok(&vars, &["count"]).contains("every cachelib entry"));
    let error = fails(&vars, &["list"]);
    assert!(error.contains("hash of the session id"), "{error}");
    // show and delete reach a session by its id, which cachelib can hash.
    assert_eq!(ok_json(&vars, &["show", &id])["data"]["_user_id"], "ann");
    assert_eq!(ok_json(&vars, &["delete", &id]), json!({"deleted": true}));
}
