//! The request lifecycle on MemoryStore: Flask-Session's rules plus lazy loading, skipped
//! rewrites and conflict-free saves.

use session_core::testkit::SeedExt as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use session_core::testkit::TestStore;
use session_core::{
    MemoryStore, SerializationFormat, Session, SessionConfig, SessionError, SessionManager,
    SessionStore, Signer, Value, CREATED_KEY,
};

type Store = Arc<TestStore<MemoryStore>>;

fn manager_with(config: SessionConfig) -> (SessionManager, Store) {
    let store = Arc::new(TestStore::new(MemoryStore::new()));
    (SessionManager::from_shared(store.clone(), config), store)
}

fn manager() -> (SessionManager, Store) {
    manager_with(SessionConfig::default())
}

/// The id inside a Set-Cookie value.
fn cookie_id(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
        .expect("cookie pair")
}

/// Runs one "request": opens from `cookie`, lets `handler` use the session, finishes.
async fn request<F, Fut>(
    manager: &SessionManager,
    cookie: Option<&str>,
    handler: F,
) -> Result<session_core::FinishOutcome, SessionError>
where
    F: FnOnce(Session) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let session = manager.open(cookie);
    handler(session.clone()).await;
    manager.finish(&session).await
}

async fn login(manager: &SessionManager) -> String {
    let outcome = request(manager, None, |s| async move {
        s.insert("user", "ann").await.unwrap();
    })
    .await
    .unwrap();
    cookie_id(&outcome.set_cookie.expect("a new session sets its cookie"))
}

#[tokio::test]
async fn untouched_session_costs_no_store_call_and_no_headers() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    let before = store.counts.total();
    let outcome = request(&manager, Some(&id), |_s| async {}).await.unwrap();
    assert_eq!(outcome.set_cookie, None);
    assert!(outcome.vary.is_none());
    assert_eq!(
        store.counts.total(),
        before,
        "a request that never used its session touched the store"
    );
}

#[tokio::test]
async fn new_sessions_are_stored_only_when_they_hold_data() {
    let (manager, store) = manager();
    let outcome = request(&manager, None, |s| async move {
        assert_eq!(s.get::<String>("user").await.unwrap(), None);
    })
    .await
    .unwrap();
    assert_eq!(
        outcome.set_cookie, None,
        "an empty session must not be stored"
    );
    assert!(
        outcome.vary.is_some(),
        "an accessed session varies on Cookie"
    );
    assert_eq!(store.counts.writes(), 0);
    assert_eq!(store.counts.reads(), 0, "no cookie: nothing to load");

    let id = login(&manager).await;
    assert_eq!(id.len(), 43);
    let stored = store.load(&format!("session:{id}")).await.unwrap().unwrap();
    let data = SerializationFormat::Msgpack.decode(&stored.value).unwrap();
    assert!(
        data.is_permanent(),
        "new sessions carry _permanent like Flask-Session"
    );
    assert_eq!(data.get("user"), Some(&Value::from("ann")));
    let keys: Vec<_> = data.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["_permanent", "user"], "Flask puts _permanent first");
}

#[tokio::test]
async fn unchanged_session_is_never_rewritten() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    let writes = store.counts.writes();
    let outcome = request(&manager, Some(&id), |s| async move {
        assert_eq!(
            s.get::<String>("user").await.unwrap().as_deref(),
            Some("ann")
        );
        // Writing the value it already has changes nothing either.
        s.insert("user", "ann").await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(store.counts.writes(), writes);
    assert_eq!(
        store.counts.touch.load(Ordering::SeqCst),
        0,
        "most of the lifetime remains: no touch"
    );
    assert_eq!(outcome.set_cookie, None);
    assert!(outcome.vary.is_some());
}

#[tokio::test]
async fn refresh_extends_expiry_without_rewriting() {
    let config = SessionConfig::builder()
        .refresh_threshold(1.0)
        .build()
        .unwrap();
    let (manager, store) = manager_with(config);
    let id = login(&manager).await;
    let writes = store.counts.writes();
    let outcome = request(&manager, Some(&id), |s| async move {
        s.get::<String>("user").await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(
        store.counts.writes(),
        writes,
        "refresh must not rewrite the data"
    );
    assert_eq!(store.counts.touch.load(Ordering::SeqCst), 1);
    let cookie = outcome
        .set_cookie
        .expect("permanent sessions get a fresh cookie on refresh");
    assert_eq!(cookie_id(&cookie), id);
    assert!(cookie.contains("Expires="));

    // Non-permanent sessions are refreshed in the store but get no cookie, as in Flask.
    let config = SessionConfig::builder()
        .refresh_threshold(1.0)
        .permanent(false)
        .build()
        .unwrap();
    let (manager, store) = manager_with(config);
    let outcome = request(&manager, None, |s| async move {
        s.insert("a", &1).await.unwrap()
    })
    .await
    .unwrap();
    let cookie = outcome.set_cookie.unwrap();
    assert!(
        !cookie.contains("Expires"),
        "browser-session cookie: {cookie}"
    );
    let id = cookie_id(&cookie);
    let outcome = request(&manager, Some(&id), |s| async move {
        s.get::<i64>("a").await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(store.counts.touch.load(Ordering::SeqCst), 1);
    assert_eq!(outcome.set_cookie, None);

    // Without refresh-each-request an unchanged session causes no write at all.
    let config = SessionConfig::builder()
        .refresh_threshold(1.0)
        .refresh_each_request(false)
        .build()
        .unwrap();
    let (manager, store) = manager_with(config);
    let id = login(&manager).await;
    let before = store.counts.writes() + store.counts.touch.load(Ordering::SeqCst);
    request(&manager, Some(&id), |s| async move {
        s.get::<String>("user").await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(
        store.counts.writes() + store.counts.touch.load(Ordering::SeqCst),
        before
    );
}

#[tokio::test]
async fn cookie_attributes_follow_the_config() {
    let (manager, _) = manager();
    let outcome = request(&manager, None, |s| async move {
        s.insert("a", &1).await.unwrap()
    })
    .await
    .unwrap();
    let cookie = outcome.set_cookie.unwrap();
    assert!(cookie.starts_with("session="));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/") && cookie.contains("Expires=")
    );
    assert!(
        !cookie.contains("Secure") && !cookie.contains("SameSite") && !cookie.contains("Domain")
    );

    let config = SessionConfig::builder()
        .cookie_name("sid")
        .cookie_secure(true)
        .cookie_same_site(session_core::SameSite::Lax)
        .cookie_domain("example.com")
        .cookie_path("/app")
        .cookie_http_only(false)
        .cookie_partitioned(true)
        .build()
        .unwrap();
    let (manager, _) = manager_with(config);
    let outcome = request(&manager, None, |s| async move {
        s.insert("a", &1).await.unwrap()
    })
    .await
    .unwrap();
    let cookie = outcome.set_cookie.unwrap();
    for part in [
        "sid=",
        "Secure",
        "SameSite=Lax",
        "Domain=example.com",
        "Path=/app",
        "Partitioned",
    ] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }
    assert!(!cookie.contains("HttpOnly"));
}

#[tokio::test]
async fn clearing_deletes_the_entry_and_the_cookie() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    let outcome = request(
        &manager,
        Some(&id),
        |s| async move { s.clear().await.unwrap() },
    )
    .await
    .unwrap();
    let cookie = outcome.set_cookie.expect("deletion cookie");
    assert!(cookie.starts_with("session=;"), "{cookie}");
    assert!(
        cookie.contains("Max-Age=0") && cookie.contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    );
    assert!(outcome.vary.is_some());
    assert!(store
        .load(&format!("session:{id}"))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn misses_and_bad_cookies_never_adopt_the_clients_id() {
    let (manager, store) = manager();
    let unknown = "A".repeat(43);
    for cookie in [
        unknown.as_str(),
        "not a valid id!",
        "",
        "x.y.z",
        &"B".repeat(5000),
    ] {
        let outcome = request(&manager, Some(cookie), |s| async move {
            assert!(s.is_empty().await.unwrap());
            s.insert("n", &1).await.unwrap();
        })
        .await
        .unwrap();
        let id = cookie_id(&outcome.set_cookie.unwrap());
        assert_ne!(id, cookie);
        assert_eq!(id.len(), 43);
    }
    assert_eq!(
        store.counts.reads(),
        1,
        "only the well-formed id reached the store"
    );
}

#[tokio::test]
async fn corrupt_stored_bytes_give_a_fresh_session() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    store
        .put(
            &format!("session:{id}"),
            b"\x80\x04\x95pickled",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let outcome = request(&manager, Some(&id), |s| async move {
        assert!(s.is_empty().await.unwrap());
        s.insert("n", &1).await.unwrap();
    })
    .await
    .unwrap();
    assert_ne!(cookie_id(&outcome.set_cookie.unwrap()), id);
}

#[tokio::test]
async fn regenerate_moves_the_data_to_a_new_id() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    let outcome = request(&manager, Some(&id), |s| async move {
        s.regenerate().await.unwrap()
    })
    .await
    .unwrap();
    let new_id = cookie_id(&outcome.set_cookie.unwrap());
    assert_ne!(new_id, id);
    assert!(
        store
            .load(&format!("session:{id}"))
            .await
            .unwrap()
            .is_none(),
        "old id still valid"
    );
    request(&manager, Some(&new_id), |s| async move {
        assert_eq!(
            s.get::<String>("user").await.unwrap().as_deref(),
            Some("ann")
        );
    })
    .await
    .unwrap();

    // If the store fails during rotation the old session stays intact.
    let outcome = {
        let session = manager.open(Some(&new_id));
        session.get::<String>("user").await.unwrap();
        session.regenerate().await.unwrap();
        store.set_down(true);
        let result = manager.finish(&session).await;
        store.set_down(false);
        result
    };
    assert!(outcome.unwrap_err().is_store_error());
    request(&manager, Some(&new_id), |s| async move {
        assert_eq!(
            s.get::<String>("user").await.unwrap().as_deref(),
            Some("ann")
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn overlapping_requests_keep_each_others_changes() {
    let (manager, _) = manager();
    let id = login(&manager).await;
    let first = manager.open(Some(&id));
    let second = manager.open(Some(&id));
    first.insert("theme", "dark").await.unwrap();
    second.insert("lang", "fr").await.unwrap();
    second.remove::<String>("user").await.unwrap();
    manager.finish(&first).await.unwrap();
    manager.finish(&second).await.unwrap();
    request(&manager, Some(&id), |s| async move {
        assert_eq!(
            s.get::<String>("theme").await.unwrap().as_deref(),
            Some("dark")
        );
        assert_eq!(
            s.get::<String>("lang").await.unwrap().as_deref(),
            Some("fr")
        );
        assert_eq!(s.get::<String>("user").await.unwrap(), None);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_read_only_request_never_restores_a_stale_copy() {
    let config = SessionConfig::builder()
        .refresh_threshold(1.0)
        .build()
        .unwrap();
    let (manager, _) = manager_with(config);
    let id = login(&manager).await;
    let reader = manager.open(Some(&id));
    assert_eq!(
        reader.get::<String>("user").await.unwrap().as_deref(),
        Some("ann")
    );
    request(&manager, Some(&id), |s| async move {
        s.insert("user", "bob").await.unwrap()
    })
    .await
    .unwrap();
    manager.finish(&reader).await.unwrap();
    request(&manager, Some(&id), |s| async move {
        assert_eq!(
            s.get::<String>("user").await.unwrap().as_deref(),
            Some("bob")
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn logout_wins_over_a_racing_write() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    let writer = manager.open(Some(&id));
    writer.insert("theme", "dark").await.unwrap();
    request(
        &manager,
        Some(&id),
        |s| async move { s.clear().await.unwrap() },
    )
    .await
    .unwrap();
    let outcome = manager.finish(&writer).await.unwrap();
    assert!(
        store
            .load(&format!("session:{id}"))
            .await
            .unwrap()
            .is_none(),
        "logged-out session revived"
    );
    let new_id = cookie_id(&outcome.set_cookie.unwrap());
    assert_ne!(new_id, id);
    request(&manager, Some(&new_id), |s| async move {
        assert_eq!(
            s.get::<String>("user").await.unwrap(),
            None,
            "the user must stay logged out"
        );
        assert_eq!(
            s.get::<String>("theme").await.unwrap().as_deref(),
            Some("dark")
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_are_never_lost() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (manager, id) = (manager.clone(), id.clone());
            tokio::spawn(async move {
                let session = manager.open(Some(&id));
                session
                    .update("counter", |n: Option<i64>| n.unwrap_or(0) + 1)
                    .await
                    .unwrap();
                session.save().await.unwrap();
                let stored: i64 = session.get("counter").await.unwrap().unwrap();
                manager.finish(&session).await.unwrap();
                stored
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=64).collect::<Vec<_>>(),
        "each request saw the value it stored"
    );
    // Saves of one session take turns inside a process: at most one stale attempt each.
    let attempts = store.counts.compare_and_set.load(Ordering::SeqCst);
    assert!(
        attempts <= 128,
        "{attempts} compare-and-set calls for 64 updates"
    );
    request(&manager, Some(&id), |s| async move {
        assert_eq!(s.get::<i64>("counter").await.unwrap(), Some(64));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn store_outage_is_an_error_not_a_panic() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    store.set_down(true);
    let session = manager.open(Some(&id));
    let error = session.get::<String>("user").await.unwrap_err();
    assert!(error.is_store_error());
    // The handler ignored the error: nothing is written and no cookie is sent.
    let outcome = manager.finish(&session).await.unwrap();
    assert_eq!(outcome.set_cookie, None);
    store.set_down(false);
    let session = manager.open(Some(&id));
    session.insert("a", &1).await.unwrap();
    store.set_down(true);
    assert!(manager.finish(&session).await.unwrap_err().is_store_error());
    store.set_down(false);
}

#[tokio::test]
async fn typed_values_are_stored_as_python_readable_msgpack() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Cart {
        items: Vec<String>,
        total: f64,
    }
    let (manager, store) = manager();
    let cart = Cart {
        items: vec!["tea".into()],
        total: 2.5,
    };
    let outcome = request(&manager, None, |s| async move {
        s.insert(
            "cart",
            &Cart {
                items: vec!["tea".into()],
                total: 2.5,
            },
        )
        .await
        .unwrap();
    })
    .await
    .unwrap();
    let id = cookie_id(&outcome.set_cookie.unwrap());
    let stored = store.load(&format!("session:{id}")).await.unwrap().unwrap();
    let data = SerializationFormat::Msgpack.decode(&stored.value).unwrap();
    assert!(
        matches!(data.get("cart"), Some(Value::Map(_))),
        "structs must be maps: {:?}",
        data.get("cart")
    );
    let session = manager.open(Some(&id));
    assert_eq!(session.get::<Cart>("cart").await.unwrap(), Some(cart));
    let error = session.get::<i64>("cart").await.unwrap_err();
    assert!(matches!(error, SessionError::Value { .. }));
}

#[tokio::test]
async fn permanent_flag_is_flasks_permanent_key() {
    let config = SessionConfig::builder().permanent(false).build().unwrap();
    let (manager, store) = manager_with(config);
    let outcome = request(&manager, None, |s| async move {
        assert!(!s.is_permanent().await.unwrap());
        s.insert("a", &1).await.unwrap();
        s.set_permanent(true).await.unwrap();
    })
    .await
    .unwrap();
    let cookie = outcome.set_cookie.unwrap();
    assert!(cookie.contains("Expires="));
    let stored = store
        .load(&format!("session:{}", cookie_id(&cookie)))
        .await
        .unwrap()
        .unwrap();
    let data = SerializationFormat::Msgpack.decode(&stored.value).unwrap();
    assert_eq!(data.get("_permanent"), Some(&Value::Boolean(true)));
}

#[tokio::test]
async fn signed_cookies_use_the_unsigned_id_as_key() {
    let config = SessionConfig::builder()
        .use_signer(true)
        .secret_key("test-secret-key")
        .build()
        .unwrap();
    let (manager, store) = manager_with(config);
    let outcome = request(&manager, None, |s| async move {
        s.insert("a", &1).await.unwrap()
    })
    .await
    .unwrap();
    let value = cookie_id(&outcome.set_cookie.unwrap());
    let signer = Signer::new("test-secret-key");
    let id = signer.unsign(&value).expect("cookie is signed").to_owned();
    assert!(store
        .load(&format!("session:{id}"))
        .await
        .unwrap()
        .is_some());
    // The bare id, or a wrong signature, is no session.
    for bad in [id.clone(), format!("{id}.AAAAAAAAAAAAAAAAAAAAAAAAAAA")] {
        let session = manager.open(Some(&bad));
        assert!(session.is_empty().await.unwrap());
    }
    let session = manager.open(Some(&value));
    assert_eq!(session.get::<i64>("a").await.unwrap(), Some(1));
}

#[tokio::test]
async fn absolute_lifetime_caps_the_ttl_and_ends_old_sessions() {
    let config = SessionConfig::builder()
        .absolute_lifetime(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (manager, store) = manager_with(config);
    let id = login(&manager).await;
    let key = format!("session:{id}");
    let entry = store.load(&key).await.unwrap().unwrap();
    let ttl = entry
        .expires_at
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        ttl <= Duration::from_secs(3600),
        "TTL {ttl:?} exceeds the absolute lifetime"
    );
    let mut data = SerializationFormat::Msgpack.decode(&entry.value).unwrap();
    assert!(data.get(CREATED_KEY).is_some());
    // A session created two hours ago is over.
    let two_hours_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 7200;
    data.insert(CREATED_KEY, Value::from(two_hours_ago));
    let bytes = SerializationFormat::Msgpack.encode(&data).unwrap();
    store
        .put(&key, &bytes, Duration::from_secs(60))
        .await
        .unwrap();
    let session = manager.open(Some(&id));
    assert!(session.is_empty().await.unwrap());
}

#[tokio::test]
async fn json_format_is_written_and_msgpack_still_read() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    let config = SessionConfig::builder()
        .serialization_format(SerializationFormat::Json)
        .build()
        .unwrap();
    let json_manager = SessionManager::from_shared(store.clone(), config);
    request(&json_manager, Some(&id), |s| async move {
        assert_eq!(
            s.get::<String>("user").await.unwrap().as_deref(),
            Some("ann")
        );
        s.insert("n", &2).await.unwrap();
    })
    .await
    .unwrap();
    let stored = store.load(&format!("session:{id}")).await.unwrap().unwrap();
    assert_eq!(stored.value, br#"{"_permanent":true,"user":"ann","n":2}"#);
}

#[tokio::test]
async fn cleanup_runs_every_n_requests_on_average() {
    let config = SessionConfig::builder()
        .cleanup_n_requests(1)
        .cleanup_min_interval(Duration::ZERO)
        .build()
        .unwrap();
    let (manager, store) = manager_with(config);
    // N = 1 means one request in two, as in Flask-Session; the cleanup task runs on the
    // runtime.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.counts.cleanup.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "cleanup never ran");
        login(&manager).await;
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_failed_explicit_save_is_not_written_later() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    let session = manager.open(Some(&id));
    session.insert("theme", "dark").await.unwrap();
    store.set_down(true);
    assert!(session.save().await.unwrap_err().is_store_error());
    store.set_down(false);
    let outcome = manager.finish(&session).await.unwrap();
    assert_eq!(
        outcome.set_cookie, None,
        "the failed change must not be saved after all"
    );
    request(&manager, Some(&id), |s| async move {
        assert_eq!(s.get::<String>("theme").await.unwrap(), None);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_explicit_save_is_not_followed_by_a_refresh() {
    let config = SessionConfig::builder()
        .refresh_threshold(1.0)
        .build()
        .unwrap();
    let (manager, store) = manager_with(config);
    let id = login(&manager).await;
    let session = manager.open(Some(&id));
    session.insert("theme", "dark").await.unwrap();
    session.save().await.unwrap();
    manager.finish(&session).await.unwrap();
    assert_eq!(store.counts.touch.load(Ordering::SeqCst), 0);
}

#[test]
fn oversized_values_are_not_reported_as_an_outage() {
    let too_large = SessionError::Store(session_core::StoreError::TooLarge { size: 2, limit: 1 });
    assert!(!too_large.is_store_error());
    let down = SessionError::Store(session_core::StoreError::unavailable("refused"));
    assert!(down.is_store_error());
}

/// Two managers on one store behave like two processes: their saves race through
/// compare-and-set, and the loser re-applies its changes on the winner's result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_lose_no_update() {
    let store = Arc::new(TestStore::new(MemoryStore::new()));
    let first = SessionManager::from_shared(store.clone(), SessionConfig::default());
    let second = SessionManager::from_shared(store.clone(), SessionConfig::default());
    let id = login(&first).await;

    let a = first.open(Some(&id));
    let b = second.open(Some(&id));
    a.insert("theme", "dark").await.unwrap();
    b.insert("lang", "fr").await.unwrap();
    first.finish(&a).await.unwrap();
    let conflicts_before = store.counts.compare_and_set.load(Ordering::SeqCst);
    second.finish(&b).await.unwrap();
    assert_eq!(
        store.counts.compare_and_set.load(Ordering::SeqCst) - conflicts_before,
        2,
        "the second process's first compare-and-set must fail and its retry succeed"
    );
    let check = first.open(Some(&id));
    assert_eq!(
        check.get::<String>("theme").await.unwrap().as_deref(),
        Some("dark")
    );
    assert_eq!(
        check.get::<String>("lang").await.unwrap().as_deref(),
        Some("fr")
    );

    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let manager = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let id = id.clone();
            tokio::spawn(async move {
                let session = manager.open(Some(&id));
                session
                    .update("counter", |n: Option<i64>| n.unwrap_or(0) + 1)
                    .await
                    .unwrap();
                manager.finish(&session).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let check = second.open(Some(&id));
    assert_eq!(check.get::<i64>("counter").await.unwrap(), Some(64));
}

/// A store whose compare-and-set waits for a permit, so a test can hold one save in the
/// store while another request queues behind it.
struct GatedStore {
    inner: Arc<TestStore<MemoryStore>>,
    gate: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl SessionStore for GatedStore {
    async fn load(
        &self,
        key: &str,
    ) -> Result<Option<session_core::StoredEntry>, session_core::StoreError> {
        self.inner.load(key).await
    }
    async fn create(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, session_core::StoreError> {
        self.inner.create(key, value, ttl).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, session_core::StoreError> {
        self.gate.acquire().await.expect("gate open").forget();
        self.inner.compare_and_set(key, expected, value, ttl).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, session_core::StoreError> {
        self.inner.touch(key, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), session_core::StoreError> {
        self.inner.delete(key).await
    }
    async fn compare_and_delete(
        &self,
        key: &str,
        expected: &[u8],
    ) -> Result<bool, session_core::StoreError> {
        self.inner.compare_and_delete(key, expected).await
    }
}

type Finishing = tokio::task::JoinHandle<Result<session_core::FinishOutcome, SessionError>>;

/// Two requests of one process on one logged-in session of a [`GatedStore`]: the first
/// sets `theme`, the second `lang`, and both finishes are started. Once `start` returns,
/// the first is held inside the store's compare-and-set and the second waits for its turn.
struct QueuedSaves {
    store: Arc<GatedStore>,
    manager: SessionManager,
    id: String,
    first_done: Finishing,
    second_done: Finishing,
}

impl QueuedSaves {
    /// Call on a current-thread runtime, where yielding runs every other task until it
    /// blocks.
    async fn start() -> QueuedSaves {
        let store = Arc::new(GatedStore {
            inner: Arc::new(TestStore::new(MemoryStore::new())),
            gate: tokio::sync::Semaphore::new(0),
        });
        let manager = SessionManager::from_shared(store.clone(), SessionConfig::default());
        // Logging in creates the entry: no compare-and-set, no permit needed.
        let id = login(&manager).await;
        let first = manager.open(Some(&id));
        let second = manager.open(Some(&id));
        first.insert("theme", "dark").await.unwrap();
        second.insert("lang", "fr").await.unwrap();
        let finish = |session: Session| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.finish(&session).await })
        };
        let first_done = finish(first);
        let second_done = finish(second);
        yield_to_other_tasks().await;
        assert!(!first_done.is_finished() && !second_done.is_finished());
        QueuedSaves {
            store,
            manager,
            id,
            first_done,
            second_done,
        }
    }

    /// Asserts that the session holds every `(key, value)`.
    async fn assert_holds(&self, entries: &[(&str, &str)]) {
        let check = self.manager.open(Some(&self.id));
        for (key, value) in entries {
            assert_eq!(
                check.get::<String>(key).await.unwrap().as_deref(),
                Some(*value),
                "{key}"
            );
        }
    }
}

async fn yield_to_other_tasks() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// When a request waits for its turn to save while another saves the same session, it
/// starts from what that save wrote: no second read of the store, and nothing lost.
#[tokio::test(flavor = "current_thread")]
async fn a_queued_save_starts_from_the_previous_save_without_reading_the_store() {
    let mut saves = QueuedSaves::start().await;
    let counts = &saves.store.inner.counts;
    let loads_before = counts.reads();
    saves.store.gate.add_permits(2);
    (&mut saves.first_done).await.unwrap().unwrap();
    (&mut saves.second_done).await.unwrap().unwrap();
    let counts = &saves.store.inner.counts;
    assert_eq!(
        counts.reads(),
        loads_before,
        "the queued save must not read the session again"
    );
    assert_eq!(
        counts.compare_and_set.load(Ordering::SeqCst),
        2,
        "each save is one compare-and-set that succeeds"
    );
    saves
        .assert_holds(&[("theme", "dark"), ("lang", "fr")])
        .await;
}

/// What a save leaves for queued requests is only a shortcut: when another process wrote
/// the session meanwhile, the queued request's compare-and-set fails, it reads the store,
/// and every change survives.
#[tokio::test(flavor = "current_thread")]
async fn a_queued_save_still_sees_writes_of_other_processes() {
    let mut saves = QueuedSaves::start().await;
    // Another process on the same data; its writes do not wait at the gate.
    let other_process =
        SessionManager::from_shared(saves.store.inner.clone(), SessionConfig::default());
    let other = other_process.open(Some(&saves.id));
    other.insert("tz", "UTC").await.unwrap();

    // The first save goes through; the queued one then tries its compare-and-set on what
    // the first wrote, but another process saves before that reaches the store.
    saves.store.gate.add_permits(1);
    (&mut saves.first_done).await.unwrap().unwrap();
    yield_to_other_tasks().await;
    assert!(!saves.second_done.is_finished());
    other_process.finish(&other).await.unwrap();
    let counts = &saves.store.inner.counts;
    let attempts_before = counts.compare_and_set.load(Ordering::SeqCst);
    saves.store.gate.add_permits(2);
    (&mut saves.second_done).await.unwrap().unwrap();
    assert_eq!(
        saves
            .store
            .inner
            .counts
            .compare_and_set
            .load(Ordering::SeqCst)
            - attempts_before,
        2,
        "the queued save's first compare-and-set must fail and its retry succeed"
    );
    saves
        .assert_holds(&[("theme", "dark"), ("lang", "fr"), ("tz", "UTC")])
        .await;
}

/// A store whose cleanup waits for a permit.
struct SlowCleanup {
    inner: Arc<TestStore<MemoryStore>>,
    gate: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl SessionStore for SlowCleanup {
    async fn load(
        &self,
        key: &str,
    ) -> Result<Option<session_core::StoredEntry>, session_core::StoreError> {
        self.inner.load(key).await
    }
    async fn create(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, session_core::StoreError> {
        self.inner.create(key, value, ttl).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, session_core::StoreError> {
        self.inner.compare_and_set(key, expected, value, ttl).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, session_core::StoreError> {
        self.inner.touch(key, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), session_core::StoreError> {
        self.inner.delete(key).await
    }
    async fn compare_and_delete(
        &self,
        key: &str,
        expected: &[u8],
    ) -> Result<bool, session_core::StoreError> {
        self.inner.compare_and_delete(key, expected).await
    }
    async fn cleanup(&self) -> Result<u64, session_core::StoreError> {
        let result = self.inner.cleanup().await;
        self.gate.acquire().await.expect("gate open").forget();
        result
    }
}

/// Never two cleanups at once (a full scan on some stores), nor two within the minimum
/// interval.
#[tokio::test(flavor = "current_thread")]
async fn cleanups_run_one_at_a_time_and_not_too_often() {
    let store = Arc::new(SlowCleanup {
        inner: Arc::new(TestStore::new(MemoryStore::new())),
        gate: tokio::sync::Semaphore::new(0),
    });
    let config = |interval| {
        SessionConfig::builder()
            .cleanup_n_requests(1)
            .cleanup_min_interval(interval)
            .build()
            .unwrap()
    };
    let started = || store.inner.counts.cleanup.load(Ordering::SeqCst);

    let manager = SessionManager::from_shared(store.clone(), config(Duration::ZERO));
    for _ in 0..200 {
        login(&manager).await;
        yield_to_other_tasks().await;
    }
    assert_eq!(started(), 1, "a second cleanup started while one ran");
    store.gate.add_permits(1_000);
    yield_to_other_tasks().await;
    for _ in 0..200 {
        login(&manager).await;
        yield_to_other_tasks().await;
    }
    assert!(started() > 2, "cleanups stopped after the first finished");

    let before = started();
    let manager = SessionManager::from_shared(store.clone(), config(Duration::from_secs(3600)));
    for _ in 0..200 {
        login(&manager).await;
        yield_to_other_tasks().await;
    }
    assert_eq!(
        started() - before,
        1,
        "cleanups within the minimum interval"
    );
}

/// `set_lifetime` ("remember me") gives one session its own store TTL and cookie expiry,
/// which a restarted process still applies; the absolute lifetime caps it.
#[tokio::test]
async fn a_session_can_have_a_lifetime_of_its_own() {
    let year = Duration::from_secs(365 * 24 * 3600);
    let (manager, store) = manager();
    let session = manager.open(None);
    session.insert("user", "ann").await.unwrap();
    session.set_lifetime(year).await.unwrap();
    assert_eq!(session.lifetime().await.unwrap(), year);
    let outcome = manager.finish(&session).await.unwrap();
    let cookie = outcome.set_cookie.unwrap();
    let id = cookie_id(&cookie);
    let expires_in = |at: std::time::SystemTime| {
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    };
    let entry = store.load(&format!("session:{id}")).await.unwrap().unwrap();
    assert!(expires_in(entry.expires_at.unwrap()) > year - Duration::from_secs(60));
    let expires = cookie.split("Expires=").nth(1).unwrap();
    let expires = httpdate_parse(expires);
    assert!(
        expires_in(expires) > year - Duration::from_secs(60),
        "{cookie}"
    );

    // Another process (or this one restarted) keeps using it on refresh.
    let config = SessionConfig::builder()
        .refresh_threshold(1.0)
        .build()
        .unwrap();
    let restarted = SessionManager::from_shared(store.clone(), config);
    let session = restarted.open(Some(&id));
    assert_eq!(session.lifetime().await.unwrap(), year);
    restarted.finish(&session).await.unwrap();
    let entry = store.load(&format!("session:{id}")).await.unwrap().unwrap();
    assert!(expires_in(entry.expires_at.unwrap()) > year - Duration::from_secs(60));

    // The absolute lifetime still caps it.
    let capped = SessionConfig::builder()
        .absolute_lifetime(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (manager, store) = manager_with(capped);
    let session = manager.open(None);
    session.insert("user", "ann").await.unwrap();
    session.set_lifetime(year).await.unwrap();
    let id = cookie_id(&manager.finish(&session).await.unwrap().set_cookie.unwrap());
    let entry = store.load(&format!("session:{id}")).await.unwrap().unwrap();
    assert!(expires_in(entry.expires_at.unwrap()) <= Duration::from_secs(3600));
}

fn httpdate_parse(text: &str) -> std::time::SystemTime {
    let date = text.split(';').next().unwrap();
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(date, format)
        .unwrap()
        .assume_utc()
        .into()
}

/// With `SESSION_HASH_IDS` the store never holds the id a cookie carries, only its hash;
/// sessions work as before, rotation and logout included.
#[tokio::test]
async fn hashed_ids_keep_cookie_values_out_of_the_store() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let config = SessionConfig::builder().hash_ids(true).build().unwrap();
    let (manager, store) = manager_with(config);
    let hashed = |id: &str| {
        let digest = sha2::Sha256::digest(id.as_bytes());
        format!(
            "session:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        )
    };
    let id = login(&manager).await;
    assert!(store
        .load(&format!("session:{id}"))
        .await
        .unwrap()
        .is_none());
    assert!(store.load(&hashed(&id)).await.unwrap().is_some());
    let outcome = request(&manager, Some(&id), |s| async move {
        assert_eq!(
            s.get::<String>("user").await.unwrap().as_deref(),
            Some("ann")
        );
        s.regenerate().await.unwrap();
    })
    .await
    .unwrap();
    let new = cookie_id(&outcome.set_cookie.unwrap());
    assert_ne!(new, id);
    assert!(store.load(&hashed(&id)).await.unwrap().is_none());
    assert!(store.load(&hashed(&new)).await.unwrap().is_some());
    assert!(store
        .load(&format!("session:{new}"))
        .await
        .unwrap()
        .is_none());
}

/// `SECRET_KEY_FALLBACKS`: a cookie signed with a key that is now a fallback still opens
/// its session; the next cookie is signed with the current key.
#[tokio::test]
async fn rotating_the_secret_key_logs_nobody_out() {
    let store = Arc::new(TestStore::new(MemoryStore::new()));
    let old = SessionManager::from_shared(
        store.clone(),
        SessionConfig::builder()
            .use_signer(true)
            .secret_key("old-key")
            .build()
            .unwrap(),
    );
    let session = old.open(None);
    session.insert("user", "ann").await.unwrap();
    let cookie = old.finish(&session).await.unwrap().set_cookie.unwrap();
    let signed_with_old = cookie_id(&cookie);

    let rotated = SessionManager::from_shared(
        store.clone(),
        SessionConfig::builder()
            .use_signer(true)
            .secret_key("new-key")
            .secret_key_fallbacks(["old-key"])
            .build()
            .unwrap(),
    );
    let session = rotated.open(Some(&signed_with_old));
    assert_eq!(
        session.get::<String>("user").await.unwrap().as_deref(),
        Some("ann")
    );
    session.insert("theme", "dark").await.unwrap();
    let cookie = rotated.finish(&session).await.unwrap().set_cookie.unwrap();
    let signed_with_new = cookie_id(&cookie);
    assert_ne!(signed_with_new, signed_with_old);
    assert_eq!(
        Signer::new("new-key").unsign(&signed_with_new),
        signed_with_old.split('.').next()
    );
    // Without the fallback, the old cookie is worthless.
    let strict = SessionManager::from_shared(
        store,
        SessionConfig::builder()
            .use_signer(true)
            .secret_key("new-key")
            .build()
            .unwrap(),
    );
    let session = strict.open(Some(&signed_with_old));
    assert!(session.is_empty().await.unwrap());
}

#[tokio::test]
async fn a_snapshot_shares_the_data_and_keeps_its_view_through_later_writes() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    let reads = store.counts.total();
    request(&manager, Some(&id), |s| async move {
        let snapshot = s.snapshot().await.unwrap();
        assert_eq!(*snapshot, s.data().await.unwrap());
        assert_eq!(
            snapshot.get("user").and_then(Value::as_str),
            Some("ann"),
            "{snapshot:?}"
        );
        // A second snapshot before any write is the same data, not a copy.
        assert!(Arc::ptr_eq(&snapshot, &s.snapshot().await.unwrap()));
        s.insert("user", "bob").await.unwrap();
        // The write copied the data first: the snapshot still shows what it saw.
        assert_eq!(snapshot.get("user").and_then(Value::as_str), Some("ann"));
        let after = s.snapshot().await.unwrap();
        assert_eq!(after.get("user").and_then(Value::as_str), Some("bob"));
        assert!(!Arc::ptr_eq(&snapshot, &after));
    })
    .await
    .unwrap();
    assert!(store.counts.total() > reads, "the change was saved");
    let stored = request(&manager, Some(&id), |s| async move {
        let user = s.snapshot().await.unwrap().get("user").cloned();
        assert_eq!(user.as_ref().and_then(Value::as_str), Some("bob"));
    })
    .await;
    assert!(stored.is_ok());
}

#[tokio::test]
async fn two_tasks_of_one_request_take_turns_on_its_session() {
    // The first task holds the session's state while its load is paused; the second finds
    // it taken, waits for it, and both changes are saved.
    let (manager, store) = manager();
    let id = login(&manager).await;
    let paused = Arc::new(session_core::testkit::PauseOnce::new(store.clone(), "load"));
    let manager = SessionManager::from_shared(paused.clone(), SessionConfig::default());
    paused.arm();
    let session = manager.open(Some(&id));
    let first = {
        let session = session.clone();
        tokio::spawn(async move { session.insert("a", &1).await })
    };
    paused.wait_entered().await;
    let second = {
        let session = session.clone();
        tokio::spawn(async move { session.insert("b", &2).await })
    };
    // The second task is parked on the lock, not done.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(
        !second.is_finished(),
        "the second task did not wait for the first"
    );
    paused.release.add_permits(1);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    manager.finish(&session).await.unwrap();

    let reader = manager.open(Some(&id));
    assert_eq!(reader.get::<i32>("a").await.unwrap(), Some(1));
    assert_eq!(reader.get::<i32>("b").await.unwrap(), Some(2));
}

/// `finish_without_waiting` answers exactly the requests whose finish needs no store call,
/// with the outcome `finish` gives them, and leaves every other request to `finish`.
#[tokio::test]
async fn finishing_without_waiting_answers_only_requests_that_need_no_store_call() {
    let (manager, store) = manager();
    let id = login(&manager).await;
    let writes = store.counts.writes();

    // Never used: no headers at all.
    let untouched = manager.open(Some(&id));
    let outcome = manager
        .finish_without_waiting(&untouched, [])
        .expect("an unused session needs no store call")
        .unwrap();
    assert_eq!((outcome.set_cookie, outcome.vary), (None, None));

    // Read, most of its lifetime left: the same outcome as `finish`, merged `Vary`.
    let reading = manager.open(Some(&id));
    assert_eq!(
        reading.get::<String>("user").await.unwrap().as_deref(),
        Some("ann")
    );
    let outcome = manager
        .finish_without_waiting(&reading, [b"Accept".as_slice()])
        .expect("a read with no refresh due needs no store call")
        .unwrap();
    assert_eq!(outcome.set_cookie, None);
    assert_eq!(outcome.vary.as_deref(), Some("Accept, Cookie"));
    let waited = request(&manager, Some(&id), |s| async move {
        s.get::<String>("user").await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(
        (waited.set_cookie, waited.vary.as_deref()),
        (None, Some("Cookie"))
    );
    assert_eq!(store.counts.writes(), writes, "nothing was written");
    assert_eq!(store.counts.touch.load(Ordering::SeqCst), 0, "nor touched");

    // Changed: left to `finish`, which saves it.
    let changing = manager.open(Some(&id));
    changing.insert("theme", "dark").await.unwrap();
    assert!(manager.finish_without_waiting(&changing, []).is_none());
    let outcome = manager.finish(&changing).await.unwrap();
    assert_eq!(outcome.vary.as_deref(), Some("Cookie"));
    let check = manager.open(Some(&id));
    assert_eq!(
        check.get::<String>("theme").await.unwrap().as_deref(),
        Some("dark")
    );

    // A new session with data: left to `finish`, which creates it.
    let new = manager.open(None);
    new.insert("user", "bob").await.unwrap();
    assert!(manager.finish_without_waiting(&new, []).is_none());
    assert!(manager.finish(&new).await.unwrap().set_cookie.is_some());
}

/// A read whose refresh is due is left to `finish`, which extends the expiry.
#[tokio::test]
async fn a_read_with_its_refresh_due_is_not_finished_without_waiting() {
    let config = SessionConfig::builder()
        .refresh_threshold(1.0)
        .build()
        .unwrap();
    let (manager, store) = manager_with(config);
    let id = login(&manager).await;
    let reading = manager.open(Some(&id));
    reading.get::<String>("user").await.unwrap();
    assert!(manager.finish_without_waiting(&reading, []).is_none());
    assert_eq!(store.counts.touch.load(Ordering::SeqCst), 0);
    let outcome = manager.finish(&reading).await.unwrap();
    assert_eq!(store.counts.touch.load(Ordering::SeqCst), 1);
    assert!(outcome.set_cookie.is_some(), "the refreshed cookie");
}
