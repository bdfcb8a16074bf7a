//! Drives a real Flask app with Flask-Session 0.8 (`tests/flask/interop.py`) from the interop
//! tests, through the Python venv that `cargo xtask flask-venv` builds.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// What one step of `interop.py` printed.
#[derive(Debug, Clone)]
pub struct FlaskReply(pub Value);

impl FlaskReply {
    /// The HTTP status of the Flask response.
    pub fn status(&self) -> u64 {
        self.0["status"].as_u64().unwrap_or(0)
    }
    /// The session id in Flask's cookie after the request.
    pub fn sid(&self) -> Option<String> {
        self.0["sid"].as_str().map(str::to_owned)
    }
    /// The response body (JSON, or text as a JSON string).
    pub fn body(&self) -> &Value {
        &self.0["body"]
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flask/interop.py")
}

/// The venv's python: `FLASK_PYTHON`, set by `cargo xtask test`.
fn python() -> String {
    std::env::var("FLASK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "FLASK_PYTHON is not set: run the suite with `cargo xtask test`, or build the venv \
             with `cargo xtask flask-venv` and export the path it prints"
        )
    })
}

/// Runs `interop.py STEP [SID]` with the given environment (backend settings).
pub fn run(step: &str, sid: Option<&str>, env: &[(&str, String)]) -> FlaskReply {
    let mut command = Command::new(python());
    command.arg(script()).arg(step);
    if let Some(sid) = sid {
        command.arg(sid);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run the Flask interop script: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop.py {step} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    FlaskReply(
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("interop.py {step} printed {line:?}: {e}\n{stderr}")),
    )
}

/// One Rust app and one Flask app sharing a store, for the two interop scenarios.
pub struct Interop {
    /// The Rust example app on the shared store.
    pub app: crate::AxumClient,
    /// The environment that points `interop.py` at the same store.
    pub env: Vec<(&'static str, String)>,
    /// Flask-Session's lifetime in seconds, to check the TTL the store reports.
    pub lifetime: u64,
    /// How the Rust app learns of Flask's writes when it caches sessions.
    pub invalidations: Invalidations,
}

/// The Rust app's cache learns of another process's write through the store's
/// invalidation (Redis client tracking): "seen once the invalidation arrives". Flask runs
/// in another process, so after a Flask step that writes a session the Rust side tracks,
/// the scenarios wait for that invalidation before reading, instead of racing it.
pub struct Invalidations {
    watch: Option<std::sync::Mutex<tokio::sync::watch::Receiver<u64>>>,
    /// The Rust app read or wrote the session since the last invalidation: Redis tracks it
    /// and will report Flask's next write.
    tracked: std::sync::atomic::AtomicBool,
}

impl Invalidations {
    /// For the Rust app on `store`: nothing to wait for unless the store reports changes.
    pub fn of(store: &dyn session_core::SessionStore) -> Invalidations {
        Invalidations {
            watch: store
                .invalidations()
                .map(|feed| std::sync::Mutex::new(feed.watch())),
            tracked: Default::default(),
        }
    }
}

/// What the Rust app answered.
pub struct RustReply {
    /// HTTP status.
    pub status: u16,
    /// Body as text.
    pub body: String,
    /// The session id of a `Set-Cookie`, if one was sent.
    pub sid: Option<String>,
}

impl RustReply {
    /// The body parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", self.body))
    }
}

impl Interop {
    /// The value of `name` in the environment given to Flask.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.as_str())
    }

    /// Both apps write JSON (`SESSION_SERIALIZATION_FORMAT=json`): the sessions hold only
    /// JSON's types.
    fn json(&self) -> bool {
        self.option("SESSION_SERIALIZATION_FORMAT") == Some("json")
    }

    /// Sends one request to the Rust app.
    pub async fn rust(&self, method: &str, path: &str, sid: Option<&str>, body: &str) -> RustReply {
        use crate::TestClient;
        let mut request = http::Request::builder().method(method).uri(path);
        if let Some(sid) = sid {
            request = request.header("cookie", format!("session={sid}"));
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        let response = self
            .app
            .send(request.body(bytes::Bytes::from(body.to_owned())).unwrap())
            .await;
        self.invalidations
            .tracked
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let sid = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .and_then(|pair| pair.strip_prefix("session="))
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        RustReply {
            status: response.status().as_u16(),
            body: String::from_utf8_lossy(response.body()).into_owned(),
            sid,
        }
    }

    /// Runs one step of the Flask app. After a step that writes (every one but `raw`)
    /// while the Rust app caches the session, waits for the store's invalidation.
    pub async fn flask(&self, step: &str, sid: Option<&str>) -> FlaskReply {
        let Some(watch) = &self.invalidations.watch else {
            return run(step, sid, &self.env);
        };
        let mut watch = watch.lock().unwrap().clone();
        watch.borrow_and_update();
        let reply = run(step, sid, &self.env);
        let tracked = &self.invalidations.tracked;
        if step != "raw" && tracked.swap(false, std::sync::atomic::Ordering::SeqCst) {
            tokio::time::timeout(std::time::Duration::from_secs(10), watch.changed())
                .await
                .unwrap_or_else(|_| panic!("no invalidation after Flask's {step}"))
                .expect("the invalidation feed closed");
        }
        reply
    }

    /// The stored value of `sid` is a msgpack map byte-identical to what msgspec writes,
    /// and its TTL (where the store reports one) is Flask-Session's lifetime.
    ///
    /// For the pickle types (filesystem, cachelib) the file must hold a dict as a protocol 5
    /// pickle with the configured mode (`SESSION_FILE_MODE`, default 0o600), no temporary
    /// file may be left, and cachelib's count file must count every entry.
    pub async fn assert_stored_like_flask(&self, sid: &str) {
        let raw = self.flask("raw", Some(sid)).await.0;
        assert_eq!(raw["found"], true, "{raw}");
        if raw["format"] == "pickle" {
            assert_eq!(raw["is_dict"], true, "{raw}");
            assert_eq!(raw["protocol"], 5, "{raw}");
            let mode = self
                .env
                .iter()
                .find(|(name, _)| *name == "SESSION_FILE_MODE")
                .map_or(0o600, |(_, mode)| mode.parse().expect("a decimal mode"));
            assert_eq!(raw["mode"], mode, "{raw}");
            assert_eq!(raw["temp_files"], 0, "{raw}");
            assert_eq!(
                raw["count"], raw["entries"],
                "cachelib's count is off: {raw}"
            );
            let ttl = raw["ttl"].as_f64().expect("an expiry");
            let lifetime = self.lifetime as f64;
            assert!(
                ttl > lifetime - 120.0 && ttl <= lifetime + 1.0,
                "TTL {ttl} is not Flask-Session's {lifetime}"
            );
            return;
        }
        if self.json() {
            assert_eq!(raw["format"], "json", "{raw}");
            assert_eq!(raw["is_json_object"], true, "{raw}");
        } else {
            assert_eq!(raw["is_msgpack_map"], true, "{raw}");
        }
        assert_eq!(
            raw["same_as_msgspec"], true,
            "stored bytes differ from msgspec's: {raw}"
        );
        if let Some(ttl) = raw["ttl"].as_f64() {
            let lifetime = self.lifetime as f64;
            assert!(
                ttl > lifetime - 120.0 && ttl <= lifetime + 1.0,
                "TTL {ttl} is not Flask-Session's {lifetime}"
            );
        }
    }

    /// A session Flask wrote (with datetime, bytes, u64, int-keyed maps and flashes) is read
    /// and changed by Rust, and Flask reads the change with every value's type intact;
    /// then Flask changes it again and Rust sees that.
    pub async fn flask_to_rust_and_back(&self) {
        let login = self.flask("login", None).await;
        assert_eq!(login.status(), 200);
        let sid = login.sid().expect("Flask set a session cookie");

        let shown = self.rust("GET", "/", Some(&sid), "").await;
        assert_eq!(shown.status, 200, "{}", shown.body);
        let data = shown.json();
        assert_eq!(data["user"], "ann");
        assert_eq!(data["_permanent"], true);
        assert_eq!(data["big"], serde_json::json!(18446744073709551615u64));
        if !self.json() {
            // JSON has no datetime: Flask's json sessions hold none.
            assert_eq!(data["when"], "2024-01-02T03:04:05.123456Z");
        }

        let counted = self.rust("POST", "/counter", Some(&sid), "").await;
        assert_eq!((counted.status, counted.body.as_str()), (200, "1"));
        assert_eq!(
            counted.sid.as_deref(),
            Some(sid.as_str()),
            "Rust kept Flask's session id"
        );
        self.assert_stored_like_flask(&sid).await;

        let seen = self.flask("get", Some(&sid)).await;
        assert_eq!(seen.status(), 200);
        let body = seen.body();
        assert_eq!(
            body["problems"],
            serde_json::json!([]),
            "Flask-typed values changed: {body}"
        );
        assert_eq!(body["session"]["counter"], 1);
        assert_eq!(body["session"]["user"], "ann");
        assert_eq!(
            body["flashes"],
            serde_json::json!([["message", "Welcome back"]])
        );
        assert_eq!(body["permanent"], true);

        assert_eq!(self.flask("counter", Some(&sid)).await.body(), "2");
        let shown = self.rust("GET", "/", Some(&sid), "").await;
        assert_eq!(shown.json()["counter"], 2);
    }

    /// A session Rust created is read and changed by Flask, which keeps its id, and Rust
    /// reads Flask's change.
    pub async fn rust_to_flask(&self) {
        let login = self.rust("POST", "/login?user=bob", None, "").await;
        assert_eq!(login.status, 200);
        let sid = login.sid.expect("Rust set a session cookie");
        let put = self
            .rust(
                "PUT",
                "/data/prefs",
                Some(&sid),
                r#"{"theme":"dark","sizes":[1,2.5]}"#,
            )
            .await;
        assert_eq!(put.status, 200, "{}", put.body);
        self.assert_stored_like_flask(&sid).await;

        let seen = self.flask("get", Some(&sid)).await;
        assert_eq!(seen.status(), 200);
        assert_eq!(seen.body()["session"]["user"], "bob");
        assert_eq!(seen.body()["permanent"], true);
        assert!(seen.body()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "prefs"));
        let counted = self.flask("counter", Some(&sid)).await;
        assert_eq!(counted.sid().as_deref(), Some(sid.as_str()));
        let shown = self.rust("GET", "/", Some(&sid), "").await.json();
        assert_eq!(shown["counter"], 1);
        assert_eq!(shown["prefs"]["theme"], "dark");
        assert_eq!(shown["prefs"]["sizes"], serde_json::json!([1, 2.5]));
    }
}

/// `SESSION_USE_SIGNER=true`: each app accepts the cookie the other signed (the value is
/// `sid.signature` and both compute the same signature), and neither accepts a cookie
/// whose signature was changed; then the two scenarios above run on signed cookies.
impl Interop {
    /// The signed-cookie checks, then [`Self::flask_to_rust_and_back`] and
    /// [`Self::rust_to_flask`].
    pub async fn signed_cookies_both_ways(&self) {
        assert_eq!(self.option("SESSION_USE_SIGNER"), Some("true"));
        let flask_cookie = self
            .flask("login", None)
            .await
            .sid()
            .expect("Flask set a session cookie");
        let (id, signature) = flask_cookie
            .split_once('.')
            .unwrap_or_else(|| panic!("Flask's cookie {flask_cookie:?} is not signed"));
        assert!(!signature.is_empty());
        let shown = self.rust("GET", "/", Some(&flask_cookie), "").await;
        assert_eq!(shown.json()["user"], "ann", "{}", shown.body);
        // The bare id, or a changed signature, is a new, empty session here and there.
        let forged = format!("{id}.{}", "A".repeat(signature.len()));
        for cookie in [id, forged.as_str()] {
            let shown = self.rust("GET", "/", Some(cookie), "").await;
            assert!(
                shown.json().get("user").is_none(),
                "{cookie}: {}",
                shown.body
            );
            // Flask writes nothing for a refused cookie: no invalidation to wait for.
            let seen = run("get", Some(cookie), &self.env);
            assert!(
                seen.body()["session"].get("user").is_none(),
                "{cookie}: {}",
                seen.body()
            );
        }
        let rust_cookie = self
            .rust("POST", "/login?user=bob", None, "")
            .await
            .sid
            .expect("Rust set a session cookie");
        assert!(rust_cookie.contains('.'), "{rust_cookie} is not signed");
        let seen = self.flask("get", Some(&rust_cookie)).await;
        assert_eq!(seen.body()["session"]["user"], "bob", "{}", seen.body());

        self.flask_to_rust_and_back().await;
        self.rust_to_flask().await;
    }
}

/// The Rust example app on `store`, configured by Flask-Session's names in `vars` (as the
/// example binary reads them from its environment) plus interop.py's `SECRET_KEY`.
pub fn rust_app_from_vars(
    store: std::sync::Arc<dyn session_core::SessionStore>,
    vars: &[(&str, String)],
) -> crate::AxumClient {
    let config = session_core::SessionConfig::from_lookup(|name| {
        vars.iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.clone())
            .or_else(|| (name == "SECRET_KEY").then(|| "interop-secret".to_owned()))
    })
    .expect("valid config");
    crate::AxumClient::new(session_example::app(
        session_core::SessionManager::from_shared(store, config),
    ))
}

/// A random suffix for names (key prefixes, tables, databases) private to one test.
pub fn unique(label: &str) -> String {
    let id = session_core::SessionId::generate(6).expect("random id");
    let clean: String = id
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                'x'
            }
        })
        .collect();
    format!("{label}{clean}")
}

/// The Rust example app on `store` with the default configuration and `prefix`.
pub fn rust_app(
    store: std::sync::Arc<dyn session_core::SessionStore>,
    prefix: &str,
) -> crate::AxumClient {
    let config = session_core::SessionConfig::builder()
        .key_prefix(prefix)
        .build()
        .expect("valid config");
    crate::AxumClient::new(session_example::app(
        session_core::SessionManager::from_shared(store, config),
    ))
}
