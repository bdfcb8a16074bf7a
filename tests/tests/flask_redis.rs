//! Flask-Session 0.8 and the Rust example app share one Redis, in both directions.
//!
//! Needs Redis (`cargo xtask services up redis`) and the Flask venv (`FLASK_PYTHON`, set by
//! `cargo xtask test`).

use std::sync::Arc;

use bytes::Bytes;
use session_core::{SessionConfig, SessionManager};
use session_tests::flask;
use session_tests::{AxumClient, TestClient};

const LIFETIME: u64 = 31 * 24 * 3600;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn flask_env(prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SESSION_TYPE", "redis".into()),
        ("REDIS_URL", redis_url()),
        ("SESSION_KEY_PREFIX", prefix.into()),
    ]
}

async fn rust_app(prefix: &str) -> AxumClient {
    let store = session_redis::RedisStore::from_url(&redis_url())
        .await
        .unwrap_or_else(|e| {
            panic!("Redis is not reachable ({e}); run `cargo xtask services up redis`")
        });
    let config = SessionConfig::builder().key_prefix(prefix).build().unwrap();
    let manager = SessionManager::from_shared(Arc::new(store), config);
    AxumClient::new(session_example::app(manager))
}

async fn send(
    client: &AxumClient,
    method: &str,
    path: &str,
    sid: Option<&str>,
    body: &str,
) -> (u16, String, Option<String>) {
    let mut request = http::Request::builder().method(method).uri(path);
    if let Some(sid) = sid {
        request = request.header("cookie", format!("session={sid}"));
    }
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = client
        .send(request.body(Bytes::from(body.to_owned())).unwrap())
        .await;
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .and_then(|pair| pair.strip_prefix("session="))
        .map(str::to_owned);
    (
        response.status().as_u16(),
        String::from_utf8_lossy(response.body()).into_owned(),
        cookie,
    )
}

fn assert_stored_like_flask(reply: &flask::FlaskReply) {
    let raw = &reply.0;
    assert_eq!(raw["found"], true, "{raw}");
    assert_eq!(raw["is_msgpack_map"], true, "{raw}");
    assert_eq!(
        raw["same_as_msgspec"], true,
        "stored bytes differ from msgspec's: {raw}"
    );
    let ttl = raw["ttl"].as_f64().expect("ttl");
    assert!(
        ttl > (LIFETIME - 120) as f64 && ttl <= LIFETIME as f64,
        "TTL {ttl} is not Flask-Session's {LIFETIME}"
    );
}

#[tokio::test]
async fn a_flask_session_is_read_and_changed_by_rust_and_flask_sees_the_change() {
    let prefix = format!("interop-{}:", session_core::SessionId::generate(6).unwrap());
    let env = flask_env(&prefix);
    let login = flask::run("login", None, &env);
    assert_eq!(login.status(), 200);
    let sid = login.sid().expect("Flask set a session cookie");

    let app = rust_app(&prefix).await;
    let (status, body, _) = send(&app, "GET", "/", Some(&sid), "").await;
    assert_eq!(status, 200, "{body}");
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(data["user"], "ann");
    assert_eq!(data["_permanent"], true);
    assert_eq!(data["big"], serde_json::json!(18446744073709551615u64));
    assert_eq!(data["when"], "2024-01-02T03:04:05.123456Z");

    let (status, body, cookie) = send(&app, "POST", "/counter", Some(&sid), "").await;
    assert_eq!((status, body.as_str()), (200, "1"));
    assert_eq!(
        cookie.as_deref(),
        Some(sid.as_str()),
        "Rust kept Flask's session id"
    );
    assert_stored_like_flask(&flask::run("raw", Some(&sid), &env));

    let seen = flask::run("get", Some(&sid), &env);
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

    // Flask changes it again; Rust sees that.
    assert_eq!(flask::run("counter", Some(&sid), &env).body(), "2");
    let (_, body, _) = send(&app, "GET", "/", Some(&sid), "").await;
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(data["counter"], 2);
}

#[tokio::test]
async fn a_rust_session_is_read_by_flask() {
    let prefix = format!("interop-{}:", session_core::SessionId::generate(6).unwrap());
    let env = flask_env(&prefix);
    let app = rust_app(&prefix).await;
    let (status, _, cookie) = send(&app, "POST", "/login?user=bob", None, "").await;
    assert_eq!(status, 200);
    let sid = cookie.expect("Rust set a session cookie");
    let (status, _, _) = send(
        &app,
        "PUT",
        "/data/prefs",
        Some(&sid),
        r#"{"theme":"dark","sizes":[1,2.5]}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_stored_like_flask(&flask::run("raw", Some(&sid), &env));

    let seen = flask::run("get", Some(&sid), &env);
    assert_eq!(seen.status(), 200);
    assert_eq!(seen.body()["session"]["user"], "bob");
    assert_eq!(seen.body()["permanent"], true);
    assert!(seen.body()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == "prefs"));
    // Flask's own write keeps the Rust session id.
    let counted = flask::run("counter", Some(&sid), &env);
    assert_eq!(counted.sid().as_deref(), Some(sid.as_str()));
    let (_, body, _) = send(&app, "GET", "/", Some(&sid), "").await;
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(data["counter"], 1);
    assert_eq!(data["prefs"]["theme"], "dark");
}
