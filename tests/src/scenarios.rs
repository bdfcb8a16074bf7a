//! The scenarios. Each is generic over the adapter `A` and the store backend `B`, starts
//! its own app on a fresh store and asserts exact outcomes.

use std::time::Duration;

use bytes::Bytes;
use cookie::Cookie;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rmpv::Value;
use serde_json::json;
use session_core::{SameSite, SessionId, Signer, DEFAULT_LIFETIME};

use crate::adapter::Adapter;
use crate::backend::Backend;
use crate::harness::{send_request, Calls, Harness};

/// The attributes of a `Set-Cookie` header (everything after the first `;`), trimmed.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|attribute| attribute.trim().to_owned())
        .collect()
}

/// Whether the `Set-Cookie` header has attribute `name` (with or without a value).
fn has_attribute(set_cookie: &str, name: &str) -> bool {
    attributes(set_cookie).iter().any(|attribute| {
        let attribute_name = attribute.split('=').next().unwrap_or_default();
        attribute_name.eq_ignore_ascii_case(name)
    })
}

/// The value of attribute `name`, when present with a value.
fn attribute_value(set_cookie: &str, name: &str) -> Option<String> {
    attributes(set_cookie).into_iter().find_map(|attribute| {
        let (key, value) = attribute.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// Asserts that the cookie expires `lifetime` from now, give or take a few seconds.
fn assert_expires_in(cookie: &Cookie<'_>, lifetime: Duration) {
    let expires = cookie
        .expires_datetime()
        .unwrap_or_else(|| panic!("no Expires on {cookie}"));
    let expected = time::OffsetDateTime::now_utc() + lifetime;
    let off_by = (expires - expected).abs();
    assert!(
        off_by <= time::Duration::seconds(5),
        "Expires {expires} is {off_by} away from now + {lifetime:?}"
    );
}

/// A session id as issued: 43 characters of base64url (32 random bytes).
fn assert_fresh_id_shape(id: &str) {
    assert_eq!(id.len(), 43, "unexpected id {id:?}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "unexpected id {id:?}"
    );
}

/// An id that is well formed but names no stored session.
fn unknown_id() -> String {
    SessionId::generate(32)
        .expect("a random id")
        .as_str()
        .to_owned()
}

/// The session id inside a cookie value (the part before the signature, if signed).
fn id_part(cookie_value: &str) -> &str {
    cookie_value.split('.').next().unwrap_or(cookie_value)
}

/// `Set-Cookie` for a written session: `HttpOnly`, `Path=/`, no `Secure`, `SameSite`,
/// `Domain`, `Partitioned` or `Max-Age`, and `Expires` = now + the lifetime because new
/// sessions are permanent by default.
pub async fn cookie_defaults<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let reply = h.put_json("/data/name", None, &json!("ann")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let header = h.session_set_cookie(&reply);
    let cookie = h
        .session_cookie(&reply)
        .expect("a session cookie after a write");
    assert_eq!(cookie.name(), "session");
    assert_fresh_id_shape(cookie.value());
    assert!(has_attribute(&header, "HttpOnly"), "{header}");
    assert_eq!(
        attribute_value(&header, "Path").as_deref(),
        Some("/"),
        "{header}"
    );
    for absent in ["Secure", "SameSite", "Domain", "Partitioned", "Max-Age"] {
        assert!(!has_attribute(&header, absent), "{absent} in {header}");
    }
    assert_expires_in(&cookie, DEFAULT_LIFETIME);
    assert!(
        h.stored(cookie.value()).await.is_some(),
        "the cookie names the stored session"
    );
}

/// `Secure`, `SameSite` (each value), `Domain`, `Partitioned`, the cookie name, `HttpOnly`
/// off and a custom lifetime all reach the `Set-Cookie` header, and the renamed cookie is
/// read back.
pub async fn cookie_attributes_when_configured<A: Adapter, B: Backend>() {
    let lifetime = Duration::from_secs(3600);
    for (same_site, expected, http_only) in [
        (SameSite::Strict, "Strict", true),
        (SameSite::Lax, "Lax", true),
        (SameSite::None, "None", false),
    ] {
        let h = Harness::<A>::start::<B>(|config| {
            config
                .cookie_name("sid")
                .cookie_secure(true)
                .cookie_same_site(same_site)
                .cookie_domain("example.com")
                .cookie_partitioned(true)
                .cookie_http_only(http_only)
                .lifetime(lifetime)
        })
        .await;
        let reply = h.put_json("/data/name", None, &json!("ann")).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let header = h.session_set_cookie(&reply);
        assert!(header.starts_with("sid="), "{header}");
        assert!(has_attribute(&header, "Secure"), "{header}");
        assert!(has_attribute(&header, "Partitioned"), "{header}");
        assert_eq!(has_attribute(&header, "HttpOnly"), http_only, "{header}");
        assert_eq!(
            attribute_value(&header, "SameSite").as_deref(),
            Some(expected),
            "{header}"
        );
        assert_eq!(
            attribute_value(&header, "Domain").as_deref(),
            Some("example.com"),
            "{header}"
        );
        assert_eq!(
            attribute_value(&header, "Path").as_deref(),
            Some("/"),
            "{header}"
        );
        let cookie = h.session_cookie(&reply).expect("the sid cookie");
        assert_expires_in(&cookie, lifetime);
        let data = h
            .session_json(Some(&format!("session=wrong; sid={}", cookie.value())))
            .await;
        assert_eq!(data["name"], "ann", "the renamed cookie is read back");
    }
}

/// With `SESSION_PERMANENT=false` the cookie has neither `Expires` nor `Max-Age` (it ends
/// with the browser session), and the stored data has no `_permanent: true`.
pub async fn non_permanent_cookie_has_no_expiry<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config.permanent(false)).await;
    let reply = h.put_json("/data/name", None, &json!("ann")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let header = h.session_set_cookie(&reply);
    assert!(!has_attribute(&header, "Expires"), "{header}");
    assert!(!has_attribute(&header, "Max-Age"), "{header}");
    assert!(has_attribute(&header, "HttpOnly"), "{header}");
    let value = h.new_cookie_value(&reply);
    let data = h.session_json(Some(&h.cookie(&value))).await;
    assert_eq!(data["name"], "ann");
    assert_ne!(data.get("_permanent"), Some(&json!(true)));
}

/// A request whose handler never uses the session (a route without it, a 404) sends no
/// `Set-Cookie`, no `Vary` and makes no store call, with or without a session cookie.
pub async fn untouched_session_costs_nothing<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let existing = h.cookie(&h.new_session().await);
    let before = h.calls();
    for (path, cookie, status) in [
        ("/health", None, StatusCode::OK),
        ("/health", Some(existing.as_str()), StatusCode::OK),
        ("/health", Some("session=%%garbage%%"), StatusCode::OK),
        (
            "/no-such-page",
            Some(existing.as_str()),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let reply = h.get(path, cookie).await;
        assert_eq!(reply.status, status, "GET {path}: {reply:?}");
        assert!(reply.set_cookies().is_empty(), "GET {path}: {reply:?}");
        assert!(reply.vary().is_empty(), "GET {path}: {reply:?}");
    }
    assert_eq!(h.calls() - before, Calls::default());
}

/// Reading an existing session right after it was written: one load, no rewrite, no
/// expiry extension (most of the lifetime remains), no `Set-Cookie`, and `Vary: Cookie`.
pub async fn read_only_request_does_not_rewrite<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let cookie = h.cookie(&h.new_session().await);
    let before = h.calls();
    let reply = h.get("/", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["seed"], 1);
    assert_eq!(reply.vary(), ["Accept", "Cookie"]);
    assert!(reply.set_cookies().is_empty(), "{reply:?}");
    let calls = h.calls() - before;
    // A session this process just wrote is in its cache, where the store keeps it coherent.
    let loads = u64::from(!h.manager.caches());
    assert_eq!(
        calls,
        Calls {
            reads: loads,
            writes: 0,
            touches: 0,
            total: loads
        }
    );
}

/// With `refresh_threshold(1.0)` every read extends the expiry with a `touch` and never
/// rewrites the data; a permanent session's cookie is re-sent (same id, new `Expires`), a
/// non-permanent one's is not.
pub async fn refresh_threshold_touches_and_resends_permanent_cookie<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config.refresh_threshold(1.0)).await;
    let id = h.new_session().await;
    let before = h.calls();
    let reply = h.get("/", Some(&h.cookie(&id))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let calls = h.calls() - before;
    assert_eq!((calls.touches, calls.writes), (1, 0), "{calls:?}");
    let cookie = h
        .session_cookie(&reply)
        .expect("a permanent session's cookie is re-sent on refresh");
    assert_eq!(cookie.value(), id, "the refresh keeps the id");
    assert_expires_in(&cookie, DEFAULT_LIFETIME);

    let h = Harness::<A>::start::<B>(|config| config.refresh_threshold(1.0).permanent(false)).await;
    let id = h.new_session().await;
    let before = h.calls();
    let reply = h.get("/", Some(&h.cookie(&id))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let calls = h.calls() - before;
    assert_eq!((calls.touches, calls.writes), (1, 0), "{calls:?}");
    assert!(
        reply.set_cookies().is_empty(),
        "a non-permanent session's cookie is not re-sent: {reply:?}"
    );
    assert_eq!(reply.vary(), ["Accept", "Cookie"]);
}

/// With `SESSION_REFRESH_EACH_REQUEST=false` a read neither writes nor touches, even with
/// a threshold that would otherwise touch on every request.
pub async fn no_refresh_each_request_writes_nothing<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| {
        config.refresh_each_request(false).refresh_threshold(1.0)
    })
    .await;
    let id = h.new_session().await;
    let before = h.calls();
    let reply = h.get("/", Some(&h.cookie(&id))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["seed"], 1);
    assert!(reply.set_cookies().is_empty(), "{reply:?}");
    let calls = h.calls() - before;
    let loads = u64::from(!h.manager.caches());
    assert_eq!(
        (calls.reads, calls.writes, calls.touches),
        (loads, 0, 0),
        "{calls:?}"
    );
}

/// The deletion cookie carries the session cookie's attributes: browsers only replace a
/// `__Host-`, `Secure` or `Partitioned` cookie with one that has them too.
pub async fn logout_cookie_keeps_the_cookies_attributes<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| {
        config
            .cookie_name("__Host-sid")
            .cookie_secure(true)
            .cookie_partitioned(true)
            .cookie_same_site(SameSite::None)
    })
    .await;
    let cookie = h.cookie(&h.new_session().await);
    let reply = h.post("/logout", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let header = h.session_set_cookie(&reply);
    assert!(header.starts_with("__Host-sid=;"), "{header}");
    for attribute in ["Secure", "Partitioned", "HttpOnly"] {
        assert!(has_attribute(&header, attribute), "{attribute}: {header}");
    }
    for (attribute, value) in [("Path", "/"), ("SameSite", "None"), ("Max-Age", "0")] {
        assert_eq!(
            attribute_value(&header, attribute).as_deref(),
            Some(value),
            "{header}"
        );
    }
    assert!(!has_attribute(&header, "Domain"), "{header}");
}

/// `POST /logout` deletes the stored session and sends Werkzeug's deletion cookie; the
/// old cookie then reads as an empty session.
pub async fn logout_deletes_the_session<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let id = h.new_session().await;
    let cookie = h.cookie(&id);
    assert!(h.stored(&id).await.is_some());
    let reply = h.post("/logout", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.vary(), ["Cookie"]);
    let header = h.session_set_cookie(&reply);
    assert!(header.starts_with("session=;"), "{header}");
    assert_eq!(
        attribute_value(&header, "Max-Age").as_deref(),
        Some("0"),
        "{header}"
    );
    assert_eq!(
        attribute_value(&header, "Expires").as_deref(),
        Some("Thu, 01 Jan 1970 00:00:00 GMT"),
        "{header}"
    );
    assert_eq!(
        attribute_value(&header, "Path").as_deref(),
        Some("/"),
        "{header}"
    );
    assert_eq!(
        h.stored(&id).await,
        None,
        "the stored session survived logout"
    );
    let reply = h.get("/", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({}));
    assert!(reply.set_cookies().is_empty(), "{reply:?}");
}

/// `POST /login` gives the session a new id: the new cookie differs, the old id reads as
/// empty and its entry is gone, the data moved to the new id.
pub async fn login_regenerates_the_id<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let old = h.new_session().await;
    let reply = h
        .put_json("/data/cart", Some(&h.cookie(&old)), &json!([1, 2]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");

    let reply = h.post("/login?user=ann", Some(&h.cookie(&old))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let new = h.new_cookie_value(&reply);
    assert_fresh_id_shape(&new);
    assert_ne!(new, old, "login kept the old id");
    assert_eq!(h.stored(&old).await, None, "the old entry survived login");
    assert_eq!(h.session_json(Some(&h.cookie(&old))).await, json!({}));
    let data = h.session_json(Some(&h.cookie(&new))).await;
    assert_eq!(data["user"], "ann");
    assert_eq!(data["seed"], 1);
    assert_eq!(data["cart"], json!([1, 2]));

    // Logging in without a session starts one.
    let reply = h.post("/login?user=bob", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let fresh = h.new_cookie_value(&reply);
    assert_eq!(h.session_json(Some(&h.cookie(&fresh))).await["user"], "bob");
}

/// Every response whose handler used the session carries `Vary: Cookie` exactly once,
/// whatever the outcome (new, read, written, regenerated, deleted); others carry none.
pub async fn vary_cookie_whenever_accessed<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    // `GET /` negotiates its format, so it varies on Accept too.
    let expected = |path: &str| -> Vec<&str> {
        if path == "/" {
            vec!["Accept", "Cookie"]
        } else {
            vec!["Cookie"]
        }
    };
    let reply = h.get("/", None).await;
    assert_eq!(reply.vary(), expected("/"), "GET / without a session");
    let mut cookie = h.cookie(&h.new_session().await);
    let steps: [(Method, &str, &str); 6] = [
        (Method::GET, "/", ""),
        (Method::PUT, "/data/x", "1"),
        (Method::POST, "/counter", ""),
        (Method::DELETE, "/data/x", ""),
        (Method::POST, "/login?user=ann", ""),
        (Method::POST, "/logout", ""),
    ];
    for (method, path, body) in steps {
        let reply = h
            .send(method.clone(), path, Some(&cookie), body.to_owned())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{method} {path}: {reply:?}");
        assert_eq!(reply.vary(), expected(path), "{method} {path}");
        if let Some(new) = h.session_cookie(&reply) {
            cookie = h.cookie(new.value());
        }
    }
    let reply = h.get("/health", Some(&cookie)).await;
    assert!(reply.vary().is_empty(), "{reply:?}");
}

/// The handler's own `Vary` is kept and merged with `Cookie` into one header, `Cookie`
/// listed once.
pub async fn vary_merges_with_the_handlers_header<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let cookie = h.cookie(&h.new_session().await);
    let mut headers = HeaderMap::new();
    headers.insert(http::header::ACCEPT, HeaderValue::from_static("text/plain"));
    headers.insert(COOKIE, HeaderValue::from_str(&cookie).unwrap());
    let reply = h.send_with(Method::GET, "/", headers, Bytes::new()).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.text(),
        "_permanent=true\nseed=1\n",
        "the text form of GET /"
    );
    let vary: Vec<_> = reply.headers.get_all(http::header::VARY).iter().collect();
    assert_eq!(vary, ["Accept, Cookie"], "one merged Vary header");
}

/// A well-formed id the store does not know reads as empty and is never adopted: the
/// first write gets a new id.
pub async fn unknown_id_gets_a_fresh_id<A: Adapter, B: Backend>() {
    for unknown in [unknown_id(), "A".repeat(250)] {
        unknown_id_gets_a_fresh_id_with::<A, B>(unknown).await;
    }
}

/// A well-formed id the store does not know, however long (250 characters exceed what
/// some stores accept as a key), is a fresh session, never an error.
async fn unknown_id_gets_a_fresh_id_with<A: Adapter, B: Backend>(unknown: String) {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let cookie = h.cookie(&unknown);
    let reply = h.get("/", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({}));
    assert!(reply.set_cookies().is_empty(), "{reply:?}");
    let reply = h.put_json("/data/name", Some(&cookie), &json!("eve")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let new = h.new_cookie_value(&reply);
    assert_fresh_id_shape(&new);
    assert_ne!(new, unknown, "the client's id was adopted");
    if unknown.len() < 100 {
        assert_eq!(h.stored(&unknown).await, None);
    }
    assert!(h.stored(&new).await.is_some());
}

/// Cookie values that cannot be a session id (non-base64 characters, 10 KB long, empty,
/// a bare `session=;`, signed-looking without the signer, non-UTF-8 bytes, path
/// tricks) read as an empty session without any store call, and a write gets a new id.
pub async fn malformed_cookies_get_a_fresh_id_without_store_calls<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let real = h.new_session().await;
    let long = "A".repeat(10 * 1024);
    let mut headers: Vec<Vec<u8>> = vec![
        b"session=not!base64$chars(here)".to_vec(),
        b"session=a b c d e f g h i j k l m n o p q r s t u".to_vec(),
        format!("session={long}").into_bytes(),
        b"session=".to_vec(),
        b"session=;".to_vec(),
        b"session=\"\"".to_vec(),
        b"session=../../../../etc/passwd".to_vec(),
        b"session=AAAAA".to_vec(),
        format!("session={real}.-CU4y57lSf7hbP4joRoay155OlE").into_bytes(),
        b"session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.-CU4y57lSf7hbP4joRoay155OlE".to_vec(),
        b"session=\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8".to_vec(),
        b"session=%41%41%41%41%41%41%41%41".to_vec(),
        b"session=\"unterminated".to_vec(),
        b"session".to_vec(),
        b";;;===;;;".to_vec(),
    ];
    headers.push(format!("session={real}{real}{real}{real}{real}{real}{real}").into_bytes());
    for raw in headers {
        let shown = String::from_utf8_lossy(&raw);
        let shown = &shown[..shown.len().min(80)];
        let mut cookie = HeaderMap::new();
        cookie.insert(
            COOKIE,
            HeaderValue::from_bytes(&raw).expect("a valid header"),
        );
        let before = h.calls();
        let reply = h
            .send_with(Method::GET, "/", cookie.clone(), Bytes::new())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{shown}: {reply:?}");
        assert_eq!(reply.json(), json!({}), "{shown}");
        assert!(reply.set_cookies().is_empty(), "{shown}: {reply:?}");
        assert_eq!(h.calls() - before, Calls::default(), "{shown}");

        let before = h.calls();
        let reply = h
            .send_with(Method::PUT, "/data/name", cookie, "\"mallory\"")
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{shown}: {reply:?}");
        let new = h.new_cookie_value(&reply);
        assert_fresh_id_shape(&new);
        assert_ne!(new, real, "{shown}");
        let calls = h.calls() - before;
        assert_eq!(
            calls.reads, 0,
            "{shown}: the malformed id reached the store"
        );
    }
    assert_eq!(
        h.session_json(Some(&h.cookie(&real))).await["seed"],
        1,
        "the real session is untouched"
    );
}

/// With several session cookies the first one counts (as in Werkzeug), whether in one
/// header or several; an unknown or malformed first cookie gives a new id, never the
/// client's, and never someone else's session.
pub async fn duplicated_cookies_first_wins_and_never_adopts<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let real = h.new_session().await;
    let unknown = unknown_id();

    let data = h
        .session_json(Some(&format!("session={real}; session={unknown}")))
        .await;
    assert_eq!(data["seed"], 1, "the first of two cookies counts");

    let two_cookies = format!("session={unknown}; session={real}");
    assert_eq!(h.session_json(Some(&two_cookies)).await, json!({}));
    let reply = h
        .put_json("/data/name", Some(&two_cookies), &json!("eve"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let new = h.new_cookie_value(&reply);
    assert!(new != real && new != unknown, "an id was adopted");

    let mut two_headers = HeaderMap::new();
    two_headers.append(COOKIE, HeaderValue::from_static("theme=dark; session=%%"));
    two_headers.append(
        COOKIE,
        HeaderValue::from_str(&h.cookie(&real)).expect("a header"),
    );
    let before = h.calls();
    let reply = h
        .send_with(Method::PUT, "/data/name", two_headers, "\"eve\"")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let new = h.new_cookie_value(&reply);
    assert_ne!(new, real);
    assert_eq!((h.calls() - before).reads, 0);

    let data = h.session_json(Some(&h.cookie(&real))).await;
    assert_eq!(data["seed"], 1);
    assert_eq!(data.get("name"), None, "the real session was written to");
}

/// With `SESSION_USE_SIGNER` a correctly signed cookie works; an unsigned id, a wrong or
/// tampered signature, or one made with another key reads as empty without a store call,
/// and a write gets a new id.
pub async fn bad_signatures_get_a_fresh_id<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| {
        config
            .use_signer(true)
            .secret_key("correct horse battery staple")
    })
    .await;
    let signed = h.new_session().await;
    let id = id_part(&signed).to_owned();
    assert_fresh_id_shape(&id);
    assert!(
        signed.len() > id.len() + 1,
        "the cookie is not signed: {signed}"
    );
    assert_eq!(h.session_json(Some(&h.cookie(&signed))).await["seed"], 1);

    let signature = &signed[id.len() + 1..];
    let mut tampered_signature = signature.as_bytes().to_vec();
    tampered_signature[0] = if tampered_signature[0] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let tampered_signature = String::from_utf8(tampered_signature).expect("ascii");
    let forged = [
        id.clone(),
        format!("{id}."),
        format!("{id}.{tampered_signature}"),
        format!("{id}.AAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Signer::new("another secret").sign(&id),
        format!("{}.{signature}", unknown_id()),
        format!("{signed}.{signature}"),
    ];
    for value in forged {
        let cookie = h.cookie(&value);
        let before = h.calls();
        let reply = h.get("/", Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::OK, "{value}: {reply:?}");
        assert_eq!(reply.json(), json!({}), "{value}");
        assert_eq!(h.calls() - before, Calls::default(), "{value}");
        let reply = h.put_json("/data/name", Some(&cookie), &json!("eve")).await;
        assert_eq!(reply.status, StatusCode::OK, "{value}: {reply:?}");
        let new = h.new_cookie_value(&reply);
        assert_ne!(
            id_part(&new),
            id,
            "{value}: the signed session's id was reused"
        );
        assert_ne!(
            id_part(&new),
            id_part(&value),
            "{value}: the client's id was adopted"
        );
    }
    let data = h.session_json(Some(&h.cookie(&signed))).await;
    assert_eq!(
        data.get("name"),
        None,
        "a forged cookie wrote to the real session"
    );
}

/// Bytes in the store that are not a session (garbage, a msgpack or JSON array, empty)
/// read as an empty session with `200`, and a write gets a new id.
pub async fn corrupt_stored_bytes_give_a_fresh_session<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let corrupt: [&[u8]; 6] = [
        b"\xc1\xc1\xc1 neither msgpack nor json",
        b"\x93\x01\x02\x03",
        b"[1, 2, 3]",
        b"\x81\xa1a",
        b"{\"truncated\": ",
        b"",
    ];
    for bytes in corrupt {
        let id = unknown_id();
        h.put_stored(&id, bytes).await;
        let cookie = h.cookie(&id);
        let reply = h.get("/", Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::OK, "{bytes:?}: {reply:?}");
        assert_eq!(reply.json(), json!({}), "{bytes:?}");
        let reply = h.put_json("/data/name", Some(&cookie), &json!("ann")).await;
        assert_eq!(reply.status, StatusCode::OK, "{bytes:?}: {reply:?}");
        let new = h.new_cookie_value(&reply);
        assert_fresh_id_shape(&new);
        assert_ne!(new, id, "{bytes:?}");
        assert_eq!(
            h.session_json(Some(&h.cookie(&new))).await["name"],
            "ann",
            "{bytes:?}"
        );
    }
}

/// While the store is down every request that needs the session answers an empty `503`
/// with no internal detail and no cookie; once it is back, everything works and nothing
/// was lost.
pub async fn store_outage_is_a_bare_503_and_recovers<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let cookie = h.cookie(&h.new_session().await);
    h.store.set_down(true);
    let requests: [(Method, &str, Option<&str>, &str); 6] = [
        (Method::GET, "/", Some(&cookie), ""),
        (Method::POST, "/counter", Some(&cookie), ""),
        (Method::PUT, "/data/name", Some(&cookie), "\"ann\""),
        (Method::PUT, "/data/name", None, "\"ann\""),
        (Method::POST, "/login?user=ann", None, ""),
        (Method::POST, "/logout", Some(&cookie), ""),
    ];
    for (method, path, cookie, body) in requests {
        let reply = h.send(method.clone(), path, cookie, body.to_owned()).await;
        let what = format!("{method} {path} (cookie: {})", cookie.is_some());
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {reply:?}"
        );
        assert!(reply.body.is_empty(), "{what}: body {:?}", reply.text());
        assert!(reply.set_cookies().is_empty(), "{what}: {reply:?}");
        for (name, value) in &reply.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase();
            for leak in ["store", "refused", "switched", "error"] {
                assert!(!value.contains(leak), "{what}: header {name}: {value}");
            }
        }
    }
    // The health check does not need the store.
    assert_eq!(h.get("/health", Some(&cookie)).await.status, StatusCode::OK);

    h.store.set_down(false);
    let data = h.session_json(Some(&cookie)).await;
    assert_eq!(data["seed"], 1);
    assert_eq!(data.get("counter"), None);
    assert_eq!(data.get("name"), None);
    let reply = h.post("/counter", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.text(), "1");
}

/// 64 concurrent `POST /counter` on one session over real HTTP connections: every
/// increment survives, and each response reports a distinct stored value.
pub async fn concurrent_counter_loses_no_increment<A: Adapter, B: Backend>() {
    const REQUESTS: i64 = 64;
    let h = Harness::<A>::start::<B>(|config| config).await;
    let server = h.serve().await;
    let client = server.client();
    let mut headers = HeaderMap::new();
    let reply = send_request(
        &client,
        Method::PUT,
        "/data/seed",
        HeaderMap::new(),
        Bytes::from_static(b"1"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let id = h.new_cookie_value(&reply);
    headers.insert(
        COOKIE,
        HeaderValue::from_str(&h.cookie(&id)).expect("a header"),
    );

    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (client, headers) = (client.clone(), headers.clone());
            tokio::spawn(async move {
                send_request(&client, Method::POST, "/counter", headers, Bytes::new()).await
            })
        })
        .collect();
    let mut values = Vec::new();
    for task in tasks {
        let reply = task.await.expect("a request task");
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        values.push(
            reply
                .text()
                .parse::<i64>()
                .expect("the counter value as text"),
        );
    }
    values.sort_unstable();
    assert_eq!(values, (1..=REQUESTS).collect::<Vec<_>>());

    let reply = send_request(&client, Method::GET, "/", headers, Bytes::new()).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let data = reply.json();
    assert_eq!(data["counter"], REQUESTS);
    assert_eq!(data["seed"], 1);
}

/// `PUT /data/{key}` stores nested JSON that `GET /` returns unchanged; `DELETE` removes
/// only that key, and a second `DELETE` is a `404`.
pub async fn data_round_trip_with_nested_json<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let document = json!({
        "name": "Zoë",
        "tags": ["a", "b", ""],
        "profile": {
            "age": 42,
            "score": 1.5,
            "address": {"city": "Zürich", "zip": null, "lines": [[], [{}]]},
            "flags": [true, false]
        },
        "big": u64::MAX,
        "negative": -9_007_199_254_740_993_i64,
        "empty": {},
        "list": []
    });
    let reply = h.put_json("/data/doc", None, &document).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let cookie = h.cookie(&h.new_cookie_value(&reply));
    let reply = h.put_json("/data/other", Some(&cookie), &json!(7)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");

    let data = h.session_json(Some(&cookie)).await;
    assert_eq!(data["doc"], document);
    assert_eq!(data["other"], 7);

    let reply = h.delete("/data/doc", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let data = h.session_json(Some(&cookie)).await;
    assert_eq!(data.get("doc"), None);
    assert_eq!(data["other"], 7);
    let reply = h.delete("/data/doc", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reply:?}");
}

/// Values a Python app wrote as msgpack (u64, f32 vs f64, binary, a timestamp extension,
/// maps with integer keys, nested arrays) keep their exact types and order when a Rust
/// request changes another key (32-bit floats become 64-bit on stores without them).
pub async fn msgpack_values_survive_a_rust_write<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let id = h.new_session().await;
    let entries: Vec<(Value, Value)> = vec![
        (Value::from("_permanent"), Value::Boolean(true)),
        (Value::from("u64"), Value::from(u64::MAX)),
        (Value::from("i64"), Value::from(i64::MIN)),
        (Value::from("f32"), Value::F32(1.5)),
        (Value::from("f64"), Value::F64(0.1)),
        (Value::from("bin"), Value::Binary(vec![0, 255, 1, 2])),
        (
            Value::from("ts"),
            Value::Ext(-1, vec![0x65, 0x00, 0x00, 0x01]),
        ),
        (
            Value::from("int_keys"),
            Value::Map(vec![
                (Value::from(1), Value::from("one")),
                (Value::from(-2), Value::from("minus two")),
            ]),
        ),
        (
            Value::from("nested"),
            Value::Array(vec![
                Value::Nil,
                Value::Boolean(false),
                Value::Map(vec![(Value::from("x"), Value::Array(vec![]))]),
            ]),
        ),
        (Value::from("text"), Value::from("ünïcødé")),
    ];
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &Value::Map(entries.clone())).expect("encoding");
    h.put_stored(&id, &bytes).await;
    let entries: Vec<(Value, Value)> = entries
        .into_iter()
        .map(|(key, value)| match value {
            Value::F32(f) if !B::KEEPS_F32 => (key, Value::F64(f64::from(f))),
            other => (key, other),
        })
        .collect();

    let reply = h
        .put_json("/data/added", Some(&h.cookie(&id)), &json!("by rust"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let stored = h.stored(&id).await.expect("the session is still stored");
    let decoded = rmpv::decode::read_value(&mut stored.as_slice()).expect("msgpack");
    let Value::Map(decoded) = decoded else {
        panic!("not a map: {decoded:?}");
    };
    assert_eq!(
        decoded[..entries.len()],
        entries[..],
        "values or their order changed"
    );
    assert_eq!(
        decoded[entries.len()..],
        [(Value::from("added"), Value::from("by rust"))]
    );

    let data = h.session_json(Some(&h.cookie(&id))).await;
    assert_eq!(data["u64"], u64::MAX);
    assert_eq!(data["f32"], 1.5);
    assert_eq!(data["added"], "by rust");
}

/// Invalid input is a `400` with a reason, never a `500`: a body that is not JSON, a
/// missing, empty or too long user, a reserved key, a counter that is not an integer.
pub async fn invalid_input_is_400<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    let cookie = h.cookie(&h.new_session().await);
    let bad: [(Method, &str, &str); 7] = [
        (Method::PUT, "/data/name", "{not json"),
        (Method::PUT, "/data/name", ""),
        (Method::PUT, "/data/_permanent", "false"),
        (Method::DELETE, "/data/_permanent", ""),
        (Method::POST, "/login", ""),
        (Method::POST, "/login?user=", ""),
        (Method::POST, "/login?user", ""),
    ];
    for (method, path, body) in bad {
        let reply = h
            .send(method.clone(), path, Some(&cookie), body.to_owned())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body:?}: {reply:?}"
        );
        assert!(!reply.body.is_empty(), "{method} {path}: no reason given");
    }
    // A user name longer than an owner may be (256 bytes).
    let path = format!("/login?user={}", "u".repeat(257));
    let reply = h.post(&path, Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
    assert!(reply.text().contains("256"), "{}", reply.text());
    let reply = h
        .put_json("/data/counter", Some(&cookie), &json!("not a number"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let reply = h.post("/counter", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");

    let data = h.session_json(Some(&cookie)).await;
    assert_eq!(data["counter"], "not a number");
    assert_eq!(data["seed"], 1);
    assert_eq!(data.get("user"), None);
    assert_eq!(data.get("name"), None);
}

/// Logs in as `user` from a new cookie jar and returns the `Cookie` header of that jar.
async fn login_jar<A: Adapter>(h: &Harness<A>, user: &str) -> String {
    let reply = h.post(&format!("/login?user={user}"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "login as {user}: {reply:?}");
    h.cookie(&h.new_cookie_value(&reply))
}

/// The suite's decision (`Backend::OWNER_INDEX`) agrees with the store's own
/// (`SessionStore::owner_index`).
fn assert_owner_index_decision<A: Adapter, B: Backend>(h: &Harness<A>) {
    use session_core::SessionStore as _;
    assert_eq!(
        h.store.inner().owner_index(),
        B::OWNER_INDEX,
        "the store and tests/src/backend.rs disagree on whether {} keeps an owner index: \
         set OWNER_INDEX in its `impl Backend` to what the store says",
        std::any::type_name::<B>()
    );
}

/// A store without an owner index: both owner routes answer `501` with the store's
/// explanation as `{"error": …}`, and the session that asked is untouched.
async fn assert_owner_routes_unsupported<A: Adapter>(h: &Harness<A>, cookie: &str, user: &str) {
    for (method, path) in [
        (Method::GET, "/sessions"),
        (Method::POST, "/logout-everywhere"),
    ] {
        let reply = h.send(method.clone(), path, Some(cookie), "").await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_IMPLEMENTED,
            "{method} {path}: {reply:?}"
        );
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            error.contains("owner index"),
            "{method} {path}: unclear error {error:?}"
        );
    }
    assert_eq!(h.session_json(Some(cookie)).await["user"], user);
}

/// Every cookie value, and the id inside it, of `cookies` (`Cookie` headers).
fn secrets(cookies: &[&str]) -> Vec<String> {
    cookies
        .iter()
        .flat_map(|cookie| {
            let value = cookie.split_once('=').map_or("", |(_, value)| value);
            [value.to_owned(), id_part(value).to_owned()]
        })
        .collect()
}

/// Two users of the owner scenarios: ann logged in from three cookie jars, bob from one.
/// Their names are unique to the test, since a shared server keeps one index per owner.
struct Users {
    ann: String,
    jars: [String; 3],
    bob: String,
    bobs: String,
}

impl Users {
    async fn log_in<A: Adapter>(h: &Harness<A>) -> Users {
        let ann = crate::flask::unique("ann");
        let bob = crate::flask::unique("bob");
        let jars = [
            login_jar(h, &ann).await,
            login_jar(h, &ann).await,
            login_jar(h, &ann).await,
        ];
        let bobs = login_jar(h, &bob).await;
        Users {
            ann,
            jars,
            bob,
            bobs,
        }
    }
}

/// `GET /sessions` from `cookie`: `200`, `Cache-Control: no-store`, the listed sessions.
async fn list_sessions<A: Adapter>(h: &Harness<A>, cookie: &str) -> Vec<serde_json::Value> {
    let reply = h.get("/sessions", Some(cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "GET /sessions: {reply:?}");
    assert_eq!(
        reply
            .headers
            .get(http::header::CACHE_CONTROL)
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "{reply:?}"
    );
    reply.json()["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions array in {}", reply.text()))
        .clone()
}

/// `GET /sessions` lists the logged-in user's sessions (three cookie jars of one user),
/// each by an opaque handle with its times, exactly one marked `current` (the caller's, a
/// different one from each jar); no field holds a cookie value or a session id; another
/// user's session is not listed. Without a logged-in user both owner routes answer `401`.
/// On a store without an owner index they answer `501` with the store's explanation.
pub async fn sessions_lists_the_users_sessions<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    assert_owner_index_decision::<A, B>(&h);
    let anonymous = h.cookie(&h.new_session().await);
    for (method, path) in [
        (Method::GET, "/sessions"),
        (Method::POST, "/logout-everywhere"),
    ] {
        for cookie in [None, Some(anonymous.as_str())] {
            let reply = h.send(method.clone(), path, cookie, "").await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {reply:?}"
            );
            assert!(reply.json()["error"].is_string(), "{reply:?}");
        }
    }

    let Users {
        ann, jars, bobs, ..
    } = Users::log_in(&h).await;
    if !B::OWNER_INDEX {
        assert_owner_routes_unsupported(&h, &jars[0], &ann).await;
        return;
    }
    let mut all: Vec<&str> = jars.iter().map(String::as_str).collect();
    all.extend([bobs.as_str(), anonymous.as_str()]);
    let secrets = secrets(&all);

    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let mut handles = Vec::new();
    let mut currents = Vec::new();
    for jar in &jars {
        let listed = list_sessions(&h, jar).await;
        assert_eq!(listed.len(), 3, "{listed:?}");
        let current: Vec<_> = listed
            .iter()
            .filter(|session| session["current"] == json!(true))
            .collect();
        assert_eq!(current.len(), 1, "exactly one current: {listed:?}");
        currents.push(current[0]["handle"].clone());
        let mut these: Vec<String> = Vec::new();
        for session in &listed {
            let handle = session["handle"].as_str().expect("a handle").to_owned();
            assert_eq!(handle.len(), 22, "{session}");
            assert!(session["current"].is_boolean(), "{session}");
            let created = session["created"].as_u64().expect("created");
            let last_seen = session["last_seen"].as_u64().expect("last_seen");
            let expires_at = session["expires_at"].as_u64().expect("expires_at");
            assert!(created <= last_seen && last_seen <= now + 5, "{session}");
            assert!(expires_at > now + 3600, "{session}");
            for (field, value) in session.as_object().expect("an object") {
                let value = value.to_string();
                for secret in &secrets {
                    assert!(
                        !value.contains(secret.as_str()),
                        "{field} holds a cookie value or id: {session}"
                    );
                }
            }
            these.push(handle);
        }
        these.sort();
        if handles.is_empty() {
            handles = these;
        } else {
            assert_eq!(these, handles, "every jar lists the same sessions");
        }
    }
    currents.sort_by_key(|handle| handle.to_string());
    currents.dedup();
    assert_eq!(currents.len(), 3, "each jar is current in its own listing");

    let bob_listed = list_sessions(&h, &bobs).await;
    assert_eq!(bob_listed.len(), 1, "{bob_listed:?}");
    assert_eq!(bob_listed[0]["current"], true);
    let bob_handle = bob_listed[0]["handle"].as_str().unwrap_or_default();
    assert!(!handles.iter().any(|handle| handle == bob_handle));
}

/// `POST /logout-everywhere` from one of a user's three cookie jars ends the other two
/// (their next request is logged out, their listing `401`), keeps the caller's (still
/// logged in, the only one listed) and another user's, and answers how many it ended; a
/// second call ends none. On a store without an owner index: `501`, nothing ended.
pub async fn logout_everywhere_ends_the_other_sessions<A: Adapter, B: Backend>() {
    let h = Harness::<A>::start::<B>(|config| config).await;
    assert_owner_index_decision::<A, B>(&h);
    let Users {
        ann,
        jars,
        bob,
        bobs,
    } = Users::log_in(&h).await;
    if !B::OWNER_INDEX {
        assert_owner_routes_unsupported(&h, &jars[1], &ann).await;
        for jar in &jars {
            assert_eq!(h.session_json(Some(jar)).await["user"], ann.as_str());
        }
        return;
    }
    let reply = h.post("/logout-everywhere", Some(&jars[1])).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json(), json!({"ended": 2}));

    for ended in [&jars[0], &jars[2]] {
        let data = h.session_json(Some(ended)).await;
        assert_eq!(
            data.get("user"),
            None,
            "a revoked jar is still logged in: {data}"
        );
        assert_eq!(data.get("_user_id"), None, "{data}");
        let reply = h.get("/sessions", Some(ended)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    }
    assert_eq!(h.session_json(Some(&jars[1])).await["user"], ann.as_str());
    let listed = list_sessions(&h, &jars[1]).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["current"], true);
    assert_eq!(h.session_json(Some(&bobs)).await["user"], bob.as_str());
    assert_eq!(list_sessions(&h, &bobs).await.len(), 1);

    let reply = h.post("/logout-everywhere", Some(&jars[1])).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json(), json!({"ended": 0}));
    assert_eq!(h.session_json(Some(&jars[1])).await["user"], ann.as_str());
}

/// `POST /login?user=…&remember=SECONDS` gives the session its own lifetime: the cookie
/// expires in SECONDS (not the default 31 days, which a login without `remember` gets),
/// so does the stored entry where the store reports its expiry, and a later write keeps
/// it. A `remember` that is not a whole number of seconds from 1 to 100 years is a `400`
/// with a reason, before anything is stored.
pub async fn remember_sets_the_sessions_lifetime<A: Adapter, B: Backend>() {
    use session_core::SessionStore as _;
    let h = Harness::<A>::start::<B>(|config| config).await;
    let remember = Duration::from_secs(3600);
    let reply = h.post("/login?user=ann&remember=3600", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let header = h.session_set_cookie(&reply);
    let cookie = h.session_cookie(&reply).expect("a session cookie");
    assert_expires_in(&cookie, remember);
    if let Some(max_age) = attribute_value(&header, "Max-Age") {
        assert_eq!(max_age, "3600", "{header}");
    }
    let id = id_part(cookie.value()).to_owned();
    let stored = h
        .store
        .inner()
        .load(&h.key(&id))
        .await
        .expect("reading the store directly")
        .expect("the session is stored");
    if let Some(expires_at) = stored.expires_at {
        let left = expires_at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        assert!(
            left > remember - Duration::from_secs(10) && left <= remember + Duration::from_secs(2),
            "the store keeps it for {left:?}, not {remember:?}"
        );
    }
    let jar = h.cookie(cookie.value());
    let reply = h.put_json("/data/theme", Some(&jar), &json!("dark")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    if let Some(rewritten) = h.session_cookie(&reply) {
        assert_expires_in(&rewritten, remember);
    }
    assert_eq!(h.session_json(Some(&jar)).await["user"], "ann");

    let reply = h.post("/login?user=ann", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let cookie = h.session_cookie(&reply).expect("a session cookie");
    assert_expires_in(&cookie, DEFAULT_LIFETIME);

    for bad in [
        "",
        "abc",
        "0",
        "-5",
        "1.5",
        "3600s",
        "99999999999999999999",
        "3153600001",
    ] {
        let path = format!("/login?user=ann&remember={bad}");
        let reply = h.post(&path, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {reply:?}");
        assert!(
            reply.text().contains("remember"),
            "{path}: {}",
            reply.text()
        );
        assert!(h.session_cookie(&reply).is_none(), "{path}: {reply:?}");
    }
}
