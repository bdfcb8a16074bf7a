//! A real browser on the example app: headless Chromium (Debian's) driven by playwright-core
//! through the page at `GET /ui` — log in, count three times, reload, log out — on both
//! adapters, asserting what the browser holds at each step. Tools: `cargo xtask
//! browser-tools` (or `cargo xtask test`). See docs/browser.md.

// rustc computes the layout of each test's future (test -> flow -> harness, server, node
// child process) with nested queries; depending on query order that nesting passes the
// default limit of 128 for this binary only, so raise it here rather than box the futures.
#![recursion_limit = "256"]

use serde_json::Value;
use session_core::{SameSite, SessionConfigBuilder};
use session_tests::browser::{drive, Report, Run, Tools};
use session_tests::{Actix, Adapter, Axum, Harness, Memory};

/// The session cookie's name in the `__Host-` configuration.
const HOST_COOKIE: &str = "__Host-session";
/// A name that is not loopback, mapped to 127.0.0.1 inside Chromium only.
const OTHER_NAME: &str = "session-demo.test";

fn plain(builder: SessionConfigBuilder) -> SessionConfigBuilder {
    builder
}

/// The strictest cookie a browser can be asked to keep: `__Host-` prefix (Secure, Path=/,
/// no Domain), Partitioned (CHIPS), SameSite=None.
fn host_partitioned(builder: SessionConfigBuilder) -> SessionConfigBuilder {
    builder
        .cookie_name(HOST_COOKIE)
        .cookie_secure(true)
        .cookie_same_site(SameSite::None)
        .cookie_partitioned(true)
}

/// Runs the browser flow against adapter `A` configured by `configure`, opened at `host`
/// (`127.0.0.1`, `localhost`, or a mapped name).
async fn browse<A: Adapter>(
    configure: fn(SessionConfigBuilder) -> SessionConfigBuilder,
    host: &str,
) -> (Report, String) {
    let tools = Tools::find();
    let harness = Harness::<A>::start::<Memory>(configure).await;
    let cookie = harness.config().cookie_name().to_owned();
    let server = harness.serve().await;
    let port = server
        .base_url()
        .rsplit(':')
        .next()
        .expect("a base URL with a port")
        .to_owned();
    let host_rules = (host == OTHER_NAME).then(|| format!("MAP {OTHER_NAME} 127.0.0.1"));
    let report = drive(
        &tools,
        &Run {
            url: format!("http://{host}:{port}"),
            cookie: cookie.clone(),
            host_rules,
        },
    )
    .await;
    eprintln!("browser run on {host}: {:?}", report.took);
    (report, cookie)
}

/// The page itself: served with the policy, and the policy enforced (an injected inline
/// script does not run); no other error in the console.
fn assert_page(report: &Report) {
    let json = &report.json;
    assert_eq!(json["ui"]["status"], 200, "{json:#}");
    assert_eq!(
        json["ui"]["csp"],
        session_example_ui::CONTENT_SECURITY_POLICY,
        "{json:#}"
    );
    assert_eq!(json["inlineScriptRan"], false, "CSP let inline code run");
    assert!(json["violations"].as_u64() >= Some(1), "{json:#}");
    let errors: Vec<&str> = json["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        errors.len() == 1 && errors[0].contains("Content Security Policy"),
        "expected only the blocked inline script in the console, got {errors:#?}"
    );
}

/// Each step's session, cookie jar and `document.cookie` for a configuration the browser
/// accepts.
fn assert_flow(report: &Report, cookie: &str) {
    assert_page(report);
    let start = report.step("start");
    assert_eq!(start["session"], serde_json::json!({}), "{start:#}");
    assert!(report.cookies("start").is_empty(), "{start:#}");

    let login = report.step("login");
    assert_eq!(login["session"]["user"], "alice", "{login:#}");
    for (name, counter) in [
        ("login", None),
        ("count1", Some(1)),
        ("count2", Some(2)),
        ("count3", Some(3)),
        ("reload", Some(3)),
    ] {
        let step = report.step(name);
        assert_eq!(step["session"]["user"], "alice", "{name}: {step:#}");
        assert_eq!(
            step["session"]["counter"].as_i64(),
            counter,
            "{name}: {step:#}"
        );
        // Exactly one cookie in the whole jar, the session's; scripts cannot see it.
        assert_eq!(
            step["allCookieNames"],
            serde_json::json!([cookie]),
            "{name}: {step:#}"
        );
        assert_eq!(step["documentCookie"], "", "{name}: document.cookie");
        let cookies = report.cookies(name);
        assert_eq!(cookies.len(), 1, "{name}: {cookies:#?}");
        assert_eq!(cookies[0]["httpOnly"], true, "{name}: {cookies:#?}");
        assert_eq!(cookies[0]["path"], "/", "{name}: {cookies:#?}");
    }
    // The counts and the reload kept the id that login issued.
    let login_value = &report.cookies("login")[0]["value"];
    assert_eq!(&report.cookies("reload")[0]["value"], login_value);

    let logout = report.step("logout");
    assert_eq!(logout["session"], serde_json::json!({}), "{logout:#}");
    assert_eq!(
        logout["allCookieNames"],
        serde_json::json!([]),
        "{logout:#}"
    );

    // Every response that carried session data told caches not to keep it.
    let responses = report.json["sessionResponses"]
        .as_array()
        .expect("responses");
    assert!(responses.len() >= 8, "{responses:#?}");
    for response in responses {
        assert_eq!(response["status"], 200, "{response:#}");
        assert_eq!(response["cacheControl"], "no-store", "{response:#}");
    }
}

/// The `__Host-` cookie as the browser keeps it: Secure, SameSite=None, partitioned by the
/// top-level site, host-only.
fn assert_host_cookie(report: &Report, host: &str) {
    for name in ["login", "count3", "reload"] {
        let cookie = &report.cookies(name)[0];
        assert_eq!(cookie["secure"], true, "{cookie:#}");
        assert_eq!(cookie["sameSite"], "None", "{cookie:#}");
        assert_eq!(cookie["domain"], host, "host-only: {cookie:#}");
        assert_eq!(
            cookie["partitionKey"],
            format!("http://{host}"),
            "partitioned by the top-level site: {cookie:#}"
        );
    }
}

async fn plain_cookie<A: Adapter>() {
    let (report, cookie) = browse::<A>(plain, "127.0.0.1").await;
    assert_flow(&report, &cookie);
    assert_eq!(report.cookies("login")[0]["secure"], false);
}

async fn host_prefixed_partitioned<A: Adapter>(host: &str) {
    let (report, cookie) = browse::<A>(host_partitioned, host).await;
    assert_eq!(cookie, HOST_COOKIE);
    assert_flow(&report, &cookie);
    assert_host_cookie(&report, host);
}

/// On a name that is not loopback, plain HTTP is not a secure context: Chromium drops the
/// Secure `__Host-` cookie, so every request starts a new session (the counter stays at 1).
/// The same name with a non-Secure cookie keeps its session, so the mapping itself works.
async fn secure_cookie_dropped_off_loopback<A: Adapter>() {
    let (report, _) = browse::<A>(host_partitioned, OTHER_NAME).await;
    assert_page(&report);
    assert_eq!(report.step("login")["status"], "logged in as alice");
    for name in ["login", "count1", "count2", "count3", "reload", "logout"] {
        let step = report.step(name);
        assert_eq!(
            step["allCookieNames"],
            serde_json::json!([]),
            "{name}: {step:#}"
        );
        assert_eq!(step["session"], serde_json::json!({}), "{name}: {step:#}");
    }
    for name in ["count1", "count2", "count3"] {
        assert_eq!(
            report.step(name)["status"],
            "1",
            "{name}: a fresh session each time"
        );
    }

    let (control, cookie) = browse::<A>(plain, OTHER_NAME).await;
    assert_flow(&control, &cookie);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_plain_cookie() {
    plain_cookie::<Axum>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_plain_cookie() {
    plain_cookie::<Actix>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_host_prefixed_partitioned_on_127_0_0_1() {
    host_prefixed_partitioned::<Axum>("127.0.0.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_host_prefixed_partitioned_on_127_0_0_1() {
    host_prefixed_partitioned::<Actix>("127.0.0.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_host_prefixed_partitioned_on_localhost() {
    host_prefixed_partitioned::<Axum>("localhost").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_host_prefixed_partitioned_on_localhost() {
    host_prefixed_partitioned::<Actix>("localhost").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_secure_cookie_dropped_off_loopback() {
    secure_cookie_dropped_off_loopback::<Axum>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_secure_cookie_dropped_off_loopback() {
    secure_cookie_dropped_off_loopback::<Actix>().await;
}
