//! The migration demo against the real Redis and the real Flask-Session 0.8: a login made on
//! either side is valid on the other, a counter incremented alternately by Flask and Rust
//! counts 1, 2, 3, 4, and the Rust app's session cache (on by default on Redis) sees Flask's
//! writes and deletes through Redis client tracking.
//!
//! Needs `REDIS_URL` (default redis://127.0.0.1:6379; `cargo xtask services up redis`) and
//! `FLASK_PYTHON` (`cargo xtask flask-venv`); `cargo xtask test` sets both.

use std::time::{Duration, Instant};

use flask_migration::{Demo, Settings, SERVED_BY};
use serde_json::{json, Value};

/// How long the Rust side may take to see a Flask write (an invalidation's trip through
/// Redis, measured in microseconds on loopback) before the test fails.
const DEADLINE: Duration = Duration::from_secs(5);

/// What Flask shows for a session it does not find: a new, empty one, which Flask-Session
/// marks permanent at once (the Rust side shows `{}` until something is stored).
static FLASK_FRESH: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({"_permanent": true}));

/// A session as Flask shows it after a Rust login as `user`, without the two keys that
/// login adds for the owner index (`docs/owners.md`): `_user_id` (Flask-Login's key, the
/// owner) must be `user` and `_session_created` a Unix time; Flask ignores both.
fn without_owner_keys(mut session: Value, user: &str) -> Value {
    let map = session.as_object_mut().expect("a JSON object");
    assert_eq!(map.remove("_user_id"), Some(json!(user)), "{map:?}");
    let created = map.remove("_session_created");
    assert!(
        created.as_ref().and_then(Value::as_u64).is_some(),
        "no _session_created time: {created:?}"
    );
    session
}

async fn start() -> Demo {
    let flask_python = std::env::var("FLASK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "FLASK_PYTHON is not set: build the venv with `cargo xtask flask-venv` and export \
             the path it prints, or run `cargo xtask test`"
        )
    });
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let settings = Settings {
        redis_url: redis_url.clone(),
        flask_python: flask_python.into(),
        listen: "127.0.0.1:0".parse().expect("an address"),
        secret_key: "demo-test-secret".to_owned(),
        show_flask_log: false,
    };
    flask_migration::start(&settings)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot start the demo ({error:#}); is Redis up at {redis_url}? \
             (`cargo xtask services up redis`)"
            )
        })
}

/// One answer through the entry point.
struct Answer {
    side: String,
    status: u16,
    body: String,
    /// The session cookie's new value, when the response set one ("" when it deleted it).
    cookie: Option<String>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON from {}: {:?}: {e}", self.side, self.body))
    }
}

/// A browser-like client holding the session cookie.
struct Client {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Client {
    fn new(demo: &Demo) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: demo.url.clone(),
            cookie: None,
        }
    }

    async fn send(&mut self, method: reqwest::Method, path: &str) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("session={cookie}"));
        }
        let response = request.send().await.expect("the entry point answers");
        let side = response
            .headers()
            .get(SERVED_BY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next()?.strip_prefix("session="))
            .map(str::to_owned)
            .next();
        let status = response.status().as_u16();
        let body = response.text().await.expect("a body");
        if let Some(value) = &cookie {
            self.cookie = (!value.is_empty()).then(|| value.clone());
        }
        Answer {
            side,
            status,
            body,
            cookie,
        }
    }

    async fn post(&mut self, path: &str) -> Answer {
        self.send(reqwest::Method::POST, path).await
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path).await
    }

    /// `GET path` until its JSON is `expected`; returns how long that took.
    async fn wait_for(&mut self, path: &str, expected: &Value) -> Duration {
        let started = Instant::now();
        loop {
            let answer = self.get(path).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            if &answer.json() == expected {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{path} still shows {} instead of {expected} after {DEADLINE:?}",
                answer.body
            );
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_go_where_the_table_says() {
    let demo = start().await;
    let mut client = Client::new(&demo);
    let login = client.post("/login?user=ann").await;
    assert_eq!((login.side.as_str(), login.status), ("flask", 200));
    assert_eq!(login.body, "logged in as ann");
    for (method, path, side) in [
        (reqwest::Method::GET, "/", "rust"),
        (reqwest::Method::POST, "/counter", "rust"),
        (reqwest::Method::GET, "/ui", "rust"),
        (reqwest::Method::GET, "/flask/", "flask"),
        (reqwest::Method::GET, "/rust/", "rust"),
        (reqwest::Method::POST, "/logout", "flask"),
    ] {
        let answer = client.send(method.clone(), path).await;
        assert_eq!(answer.side, side, "{method} {path}");
        assert_eq!(answer.status, 200, "{method} {path}: {}", answer.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_and_a_counter_cross_between_flask_and_rust() {
    let demo = start().await;
    // The Rust side caches sessions, kept coherent by Redis's invalidations.
    assert!(
        demo.manager.caches(),
        "the cache tier should be on on Redis"
    );
    assert!(demo.manager.store().invalidations().is_some());

    // Flask logs in; Rust sees the user.
    let mut client = Client::new(&demo);
    let login = client.post("/flask/login?user=ann").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let first_id = login.cookie.clone().expect("Flask set the cookie");
    let seen = client.get("/rust/").await;
    assert_eq!(seen.json(), json!({"_permanent": true, "user": "ann"}));

    // Alternate writers: every increment sees the other side's.
    for (round, side) in ["flask", "rust", "flask", "rust"].iter().enumerate() {
        let answer = client.post(&format!("/{side}/counter")).await;
        assert_eq!(answer.side, *side);
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body, (round + 1).to_string(), "{side}'s increment");
    }

    // Rust has the session cached (it just wrote it); Flask writes; Rust's next read sees
    // Flask's write once Redis's invalidation arrives.
    client.post("/flask/counter").await;
    let took = client
        .wait_for(
            "/rust/",
            &json!({"_permanent": true, "user": "ann", "counter": 5}),
        )
        .await;
    eprintln!("Rust saw Flask's write after {took:?}");

    // Rust logs in as someone else: a new id, the data kept, readable by Flask; the old id
    // is gone for both.
    let relogin = client.post("/rust/login?user=bob").await;
    assert_eq!(relogin.status, 200, "{}", relogin.body);
    let second_id = relogin.cookie.clone().expect("Rust set a new cookie");
    assert_ne!(second_id, first_id, "login gives a new id");
    let flask_view = client.get("/flask/").await;
    assert_eq!(
        without_owner_keys(flask_view.json(), "bob"),
        json!({"_permanent": true, "user": "bob", "counter": 5})
    );
    let mut stale = Client::new(&demo);
    stale.cookie = Some(first_id);
    assert_eq!(stale.get("/flask/").await.json(), FLASK_FRESH.clone());
    assert_eq!(stale.get("/rust/").await.json(), json!({}));

    // Flask logs out (deletes the key); Rust, which had the session cached, sees it gone.
    let mut rust_reader = Client::new(&demo);
    rust_reader.cookie = Some(second_id);
    assert_eq!(rust_reader.get("/rust/").await.json()["user"], "bob");
    let logout = client.post("/logout").await;
    assert_eq!((logout.side.as_str(), logout.status), ("flask", 200));
    assert_eq!(
        logout.cookie.as_deref(),
        Some(""),
        "Flask deletes the cookie"
    );
    let took = rust_reader.wait_for("/rust/", &json!({})).await;
    eprintln!("Rust saw Flask's logout after {took:?}");

    // And back: Rust logs in and out, Flask follows.
    let mut other = Client::new(&demo);
    other.post("/rust/login?user=cy").await;
    assert_eq!(
        without_owner_keys(other.get("/flask/").await.json(), "cy"),
        json!({"_permanent": true, "user": "cy"})
    );
    let id = other.cookie.clone();
    other.post("/rust/logout").await;
    other.cookie = id;
    assert_eq!(other.get("/flask/").await.json(), FLASK_FRESH.clone());
}
