//! Flask-Session 0.8 and the Rust example app share one session directory, in both
//! directions: `SESSION_TYPE=filesystem` (with `SESSION_FILE_DIR`) and `SESSION_TYPE=cachelib`
//! with a `FileSystemCache` (SHA-256 names, and MD5 as cachelib <= 0.15 names them).
//!
//! Needs only the Flask venv (`cargo xtask flask-venv`, then export FLASK_PYTHON).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmpv::Value;
use session_cachelib::pickle::ext;
use session_cachelib::{CachelibStore, FileNameHash};
use session_core::{SessionConfig, SessionConfigBuilder, SessionId, SessionManager, SessionStore};
use session_tests::flask::{unique, Interop, Invalidations};
use session_tests::AxumClient;
use tempfile::TempDir;

const LIFETIME: u64 = 31 * 24 * 3600;

/// A Rust app and a Flask app on one directory, and the Rust store for direct reads.
struct Shared {
    interop: Interop,
    store: CachelibStore,
    prefix: String,
    _dir: TempDir,
}

struct Options {
    kind: &'static str,
    hash: FileNameHash,
    threshold: u64,
    lifetime: u64,
    permanent: bool,
}

impl Options {
    fn new(kind: &'static str) -> Options {
        Options {
            kind,
            hash: FileNameHash::Sha256,
            threshold: 500,
            lifetime: LIFETIME,
            permanent: true,
        }
    }
}

fn shared(options: Options) -> Shared {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("flask_session");
    let store = CachelibStore::builder()
        .dir(&path)
        .file_name_hash(options.hash)
        .threshold(options.threshold)
        .build()
        .expect("opening the session directory");
    let prefix = format!("{}:", unique("interop"));
    let config = SessionConfig::builder()
        .key_prefix(&prefix)
        .lifetime(Duration::from_secs(options.lifetime))
        .permanent(options.permanent);
    let hash = match options.hash {
        FileNameHash::Sha256 => "sha256",
        FileNameHash::Md5 => "md5",
    };
    Shared {
        interop: Interop {
            invalidations: Invalidations::of(&store),
            app: app(store.clone(), config),
            env: vec![
                ("SESSION_TYPE", options.kind.into()),
                ("SESSION_FILE_DIR", path.display().to_string()),
                ("SESSION_FILE_HASH", hash.into()),
                ("SESSION_FILE_THRESHOLD", options.threshold.to_string()),
                ("SESSION_KEY_PREFIX", prefix.clone()),
                ("PERMANENT_SESSION_LIFETIME", options.lifetime.to_string()),
                ("SESSION_PERMANENT", options.permanent.to_string()),
            ],
            lifetime: options.lifetime,
        },
        store,
        prefix,
        _dir: dir,
    }
}

fn app(store: CachelibStore, config: SessionConfigBuilder) -> AxumClient {
    let config = config.build().expect("valid config");
    let store: Arc<dyn SessionStore> = Arc::new(store);
    AxumClient::new(session_example::app(SessionManager::from_shared(
        store, config,
    )))
}

impl Shared {
    /// The session `sid` as the Rust store reads it, as a list of entries.
    async fn rust_view(&self, sid: &str) -> Option<Vec<(Value, Value)>> {
        let entry = self
            .store
            .load(&format!("{}{sid}", self.prefix))
            .await
            .expect("reading the directory")?;
        match rmpv::decode::read_value(&mut entry.value.as_slice()).expect("msgpack") {
            Value::Map(entries) => Some(entries),
            other => panic!("not a map: {other:?}"),
        }
    }
}

fn get<'a>(entries: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| *k == Value::from(key))
        .map(|(_, v)| v)
}

/// An ext whose payload is the msgpack array `items` (this crate's datetime types).
fn pack(code: i8, items: Vec<Value>) -> Value {
    let mut payload = Vec::new();
    rmpv::encode::write_value(&mut payload, &Value::Array(items)).unwrap();
    Value::Ext(code, payload)
}

fn ints(values: &[i64]) -> Vec<Value> {
    values.iter().map(|&n| Value::from(n)).collect()
}

/// What interop.py's `login` stores with pickle, as the Rust side reads it (and must write
/// it for Flask to see the same Python values).
fn flask_login_values() -> Vec<(Value, Value)> {
    let mut huge = vec![0; 12];
    huge.push(0x10);
    let mut naive = ints(&[2024, 1, 2, 3, 4, 5, 6]);
    naive.extend([Value::Boolean(false), Value::Nil]);
    let mut offset = ints(&[2024, 1, 2, 3, 4, 5, 0]);
    offset.extend([
        Value::Boolean(false),
        pack(
            ext::TIMEZONE,
            vec![
                pack(ext::TIMEDELTA, ints(&[0, 7200, 0])),
                Value::from("CEST"),
            ],
        ),
    ]);
    let s = Value::from;
    vec![
        (s("_permanent"), Value::Boolean(true)),
        (s("user"), s("ann")),
        // datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc), as msgspec encodes it.
        (
            s("when"),
            Value::Ext(-1, vec![0x1d, 0x6f, 0x28, 0x00, 0x65, 0x93, 0x7d, 0x25]),
        ),
        (s("blob"), Value::Binary(vec![0, 1, 255])),
        (s("big"), Value::from(u64::MAX)),
        (s("ratio"), Value::F64(0.5)),
        (
            s("nested"),
            Value::Map(vec![
                (Value::from(1), s("one")),
                (
                    s("k"),
                    Value::Array(vec![Value::from(1), Value::F64(2.0), Value::Nil]),
                ),
            ]),
        ),
        (s("small"), Value::from(i64::MIN)),
        (s("pair"), ext::tuple(vec![Value::from(1), s("x")])),
        (s("tags"), ext::set(ints(&[1, 2, 3]))),
        (s("frozen"), ext::frozenset(ints(&[4]))),
        (s("day"), pack(ext::DATE, ints(&[2024, 1, 2]))),
        (s("naive"), pack(ext::DATETIME, naive)),
        (s("span"), pack(ext::TIMEDELTA, ints(&[1, 2, 3]))),
        (s("offset"), pack(ext::DATETIME, offset)),
        (s("huge"), Value::Ext(ext::BIGINT, huge)),
        (
            s("keyed"),
            Value::Map(vec![
                (ext::tuple(ints(&[1, 2])), s("tuple key")),
                (Value::from(3), s("int key")),
            ]),
        ),
        (
            s("_flashes"),
            Value::Array(vec![ext::tuple(vec![s("message"), s("Welcome back")])]),
        ),
    ]
}

/// Flask writes every type a session holds; Rust reads each one, changes the session over
/// HTTP, and Flask reads every value back with its Python type; then both keep counting.
async fn flask_to_rust_and_back(shared: Shared) {
    let interop = &shared.interop;
    let login = interop.flask("login", None).await;
    assert_eq!(login.status(), 200);
    let sid = login.sid().expect("Flask set a session cookie");
    interop.assert_stored_like_flask(&sid).await;

    let seen = shared
        .rust_view(&sid)
        .await
        .expect("Rust sees Flask's session");
    for (key, value) in flask_login_values() {
        let key = key.as_str().unwrap().to_owned();
        assert_eq!(get(&seen, &key), Some(&value), "{key}");
    }
    assert_eq!(seen.len(), flask_login_values().len(), "{seen:?}");

    let counted = interop.rust("POST", "/counter", Some(&sid), "").await;
    assert_eq!((counted.status, counted.body.as_str()), (200, "1"));
    assert_eq!(
        counted.sid.as_deref(),
        Some(sid.as_str()),
        "Rust kept Flask's id"
    );
    interop.assert_stored_like_flask(&sid).await;

    let seen = interop.flask("get", Some(&sid)).await;
    assert_eq!(seen.status(), 200);
    let body = seen.body();
    assert_eq!(body["problems"], serde_json::json!([]), "{body}");
    assert_eq!(body["session"]["counter"], 1);
    assert_eq!(body["session"]["user"], "ann");
    assert_eq!(
        body["flashes"],
        serde_json::json!([["message", "Welcome back"]])
    );
    assert_eq!(body["flash_types"], serde_json::json!(["tuple"]));
    assert_eq!(body["permanent"], true);

    assert_eq!(interop.flask("counter", Some(&sid)).await.body(), "2");
    let counted = interop.rust("POST", "/counter", Some(&sid), "").await;
    assert_eq!(counted.body, "3");
}

#[tokio::test]
async fn filesystem_flask_to_rust_and_back() {
    flask_to_rust_and_back(shared(Options::new("filesystem"))).await;
}

#[tokio::test]
async fn cachelib_flask_to_rust_and_back() {
    flask_to_rust_and_back(shared(Options::new("cachelib"))).await;
}

#[tokio::test]
async fn cachelib_md5_flask_to_rust_and_back() {
    flask_to_rust_and_back(shared(Options {
        hash: FileNameHash::Md5,
        ..Options::new("cachelib")
    }))
    .await;
}

#[tokio::test]
async fn filesystem_rust_to_flask() {
    shared(Options::new("filesystem"))
        .interop
        .rust_to_flask()
        .await;
}

#[tokio::test]
async fn cachelib_rust_to_flask() {
    shared(Options::new("cachelib"))
        .interop
        .rust_to_flask()
        .await;
}

/// Every type Rust can hold for Python (tuples, sets, datetimes, big ints, tuple keys,
/// flashes) reaches Flask as the Python value Flask itself would have stored.
#[tokio::test]
async fn rust_writes_every_python_type_flask_reads() {
    let shared = shared(Options::new("cachelib"));
    let sid = SessionId::generate(32).unwrap().to_string();
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &Value::Map(flask_login_values())).unwrap();
    assert!(shared
        .store
        .create(
            &format!("{}{sid}", shared.prefix),
            &bytes,
            Duration::from_secs(LIFETIME)
        )
        .await
        .unwrap());
    shared.interop.assert_stored_like_flask(&sid).await;
    let seen = shared.interop.flask("get", Some(&sid)).await;
    let body = seen.body();
    assert_eq!(seen.sid().as_deref(), Some(sid.as_str()), "{body}");
    assert_eq!(body["problems"], serde_json::json!([]), "{body}");
    assert_eq!(body["session"]["user"], "ann");
    assert_eq!(body["flash_types"], serde_json::json!(["tuple"]));
    assert_eq!(
        body["keys"].as_array().unwrap().len(),
        flask_login_values().len()
    );
}

/// A session ends for both sides when its file's expiry passes, whichever side wrote it.
/// (Waiting reads the file's expiry without Flask-Session: a Flask request would refresh
/// the session it reads.)
#[tokio::test]
async fn expiry_is_shared_both_ways() {
    let shared = shared(Options {
        lifetime: 2,
        ..Options::new("filesystem")
    });
    let interop = &shared.interop;

    let sid = interop
        .flask("login", None)
        .await
        .sid()
        .expect("a Flask session");
    assert!(shared.rust_view(&sid).await.is_some(), "expired at once");
    let deadline = Instant::now() + Duration::from_secs(8);
    while shared.rust_view(&sid).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "Flask's session outlived its lifetime"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A fresh session: Flask's only key is the permanent flag it starts with.
    let after = interop.flask("get", Some(&sid)).await;
    assert_eq!(
        after.body()["keys"],
        serde_json::json!(["_permanent"]),
        "Flask kept it"
    );

    let login = interop.rust("POST", "/login?user=bob", None, "").await;
    let sid = login.sid.expect("a Rust session");
    assert_eq!(
        interop.flask("get", Some(&sid)).await.body()["session"]["user"],
        "bob"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let raw = interop.flask("raw", Some(&sid)).await.0;
        let ttl = raw["ttl"].as_f64().expect("an expiry");
        assert!(ttl <= 3.0, "TTL {ttl} is not the 2 s lifetime");
        if ttl < 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Rust's session outlived its lifetime"
        );
    }
    let after = interop.flask("get", Some(&sid)).await;
    assert_eq!(
        after.body()["keys"],
        serde_json::json!(["_permanent"]),
        "Flask still reads it"
    );
}

/// With SESSION_PERMANENT off on both sides, neither side makes the other's session
/// permanent.
#[tokio::test]
async fn non_permanent_sessions_stay_non_permanent() {
    let shared = shared(Options {
        permanent: false,
        ..Options::new("cachelib")
    });
    let interop = &shared.interop;
    let sid = interop.flask("login", None).await.sid().unwrap();
    let counted = interop.rust("POST", "/counter", Some(&sid), "").await;
    assert_eq!(counted.body, "1");
    let seen = shared.rust_view(&sid).await.unwrap();
    assert_eq!(get(&seen, "_permanent"), None, "Rust added _permanent");
    assert_eq!(
        interop.flask("get", Some(&sid)).await.body()["permanent"],
        false
    );

    let login = interop.rust("POST", "/login?user=bob", None, "").await;
    let sid = login.sid.unwrap();
    let seen = interop.flask("get", Some(&sid)).await;
    assert_eq!(seen.body()["session"]["user"], "bob");
    assert_eq!(seen.body()["permanent"], false);
}

/// Both sides keep cachelib's count file and prune by it: with a threshold of 2 the
/// directory never holds more than 3 sessions, and the count always matches.
#[tokio::test]
async fn one_count_file_and_one_pruning_rule() {
    let shared = shared(Options {
        threshold: 2,
        ..Options::new("filesystem")
    });
    let interop = &shared.interop;
    let mut sids = Vec::new();
    for round in 0..3 {
        sids.push(interop.flask("login", None).await.sid().unwrap());
        let login = interop.rust("POST", "/login?user=bob", None, "").await;
        sids.push(login.sid.unwrap());
        let raw = interop.flask("raw", Some(&sids[0])).await.0;
        assert_eq!(raw["count"], raw["entries"], "round {round}: {raw}");
        assert!(
            raw["entries"].as_u64().unwrap() <= 3,
            "round {round}: pruning let {raw} through"
        );
    }
    assert_eq!(shared.store.count().await.unwrap(), 3);
}

/// Bytes Rust stores that are not a session (never written by session-core) are no session
/// for Flask, not an error.
#[tokio::test]
async fn bytes_that_are_not_a_session_are_no_session_for_flask() {
    let shared = shared(Options::new("cachelib"));
    let sid = SessionId::generate(32).unwrap().to_string();
    shared
        .store
        .create(
            &format!("{}{sid}", shared.prefix),
            b"\xc1 not a session",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let seen = shared.interop.flask("get", Some(&sid)).await;
    assert_eq!(seen.status(), 200);
    // A fresh session: Flask's only key is the permanent flag it starts with.
    assert_eq!(seen.body()["keys"], serde_json::json!(["_permanent"]));
}

/// A session holding a class the Rust reader refuses (a `Markup` flash) is a fresh session
/// for Rust, and Rust never overwrites it: Flask still reads it afterwards.
#[tokio::test]
async fn a_markup_flash_is_a_fresh_session_for_rust_and_stays_flasks() {
    let shared = shared(Options::new("cachelib"));
    let interop = &shared.interop;
    let sid = interop.flask("login_markup", None).await.sid().unwrap();
    assert!(shared.rust_view(&sid).await.is_none());
    let shown = interop.rust("GET", "/", Some(&sid), "").await;
    assert_eq!((shown.status, shown.body.as_str()), (200, "{}"));
    let counted = interop.rust("POST", "/counter", Some(&sid), "").await;
    assert_eq!(counted.body, "1");
    assert_ne!(
        counted.sid.as_deref(),
        Some(sid.as_str()),
        "Rust took Flask's id"
    );
    let seen = interop.flask("get", Some(&sid)).await;
    assert_eq!(seen.body()["session"]["user"], "mark");
    assert_eq!(seen.body()["flashes"].as_array().unwrap().len(), 1);
}

/// The owner index lives in the session directory, in a folder whose name ends in
/// cachelib's transaction suffix: Flask's `FileSystemCache` neither counts it when opened,
/// nor trips over it or deletes it when it prunes or clears. A plain folder in a scratch
/// directory shows what would happen otherwise (counted, and warned about on clear).
#[tokio::test]
async fn flasks_count_prune_and_clear_leave_the_owner_index_alone() {
    let shared = shared(Options {
        threshold: 3,
        ..Options::new("filesystem")
    });
    let config = SessionConfig::builder()
        .key_prefix(&shared.prefix)
        .build()
        .expect("valid config");
    let manager = SessionManager::new(shared.store.clone(), config);
    let owner = unique("owner");
    for _ in 0..2 {
        let session = manager.open(None);
        session.set_owner(&owner).await.expect("set_owner");
        manager.finish(&session).await.expect("finish");
    }
    let index = format!("{}owner:{owner}", shared.prefix);
    assert_eq!(shared.store.index_list(&index).await.unwrap().len(), 2);
    let owners_dir = shared.store.dir().join("owners-v1.__wz_cache");
    assert!(owners_dir.is_dir());

    let reply = shared.interop.flask("prune_clear", None).await.0;
    let (ours, control) = (&reply["shared"], &reply["control"]);
    // The control: a plain folder is counted, and clear() cannot remove it and says so.
    assert_eq!(control["count_on_open"], 1, "{reply}");
    assert_ne!(control["warnings"], serde_json::json!([]), "{reply}");
    // Ours: the two session files only, no warning, and the index is all that is left.
    assert_eq!(ours["count_on_open"], 2, "{reply}");
    assert_eq!(ours["warnings"], serde_json::json!([]), "{reply}");
    assert_eq!(
        ours["left"],
        serde_json::json!(["owners-v1.__wz_cache"]),
        "{reply}"
    );
    // The index survived, its sessions did not: listed entries are kept (recent), no
    // session is reported.
    assert_eq!(shared.store.index_list(&index).await.unwrap().len(), 2);
    assert_eq!(manager.sessions_of(&owner, None).await.unwrap(), vec![]);
}
