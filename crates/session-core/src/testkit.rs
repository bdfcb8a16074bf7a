//! The store conformance kit and test helpers (feature `testkit`).
//!
//! Every store crate runs the kit against its real server:
//!
//! ```text
//! session_core::store_conformance_tests!(async { MyStore::connect("...").await.unwrap() });
//! ```
//!
//! The macro expands to one `#[tokio::test]` per requirement of [`SessionStore`], so the
//! calling crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
//! Each check uses keys under a random prefix, so checks can share one server and run in
//! parallel. Checks wait for expiry by polling with a deadline; they never rely on a fixed
//! sleep being long enough.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::store::{SessionStore, StoredEntry};

mod reply_dropper;
pub use reply_dropper::{check_lost_reply, ReplyDropper};

/// What a store under test can and cannot do.
#[derive(Clone, Debug)]
pub struct Options {
    /// Largest value the store accepts; larger ones must fail with
    /// [`StoreError::TooLarge`]. `None`: values up to 1 MiB must work.
    pub max_value_bytes: Option<usize>,
    /// Whether `cleanup` must remove expired entries (stores without native expiry).
    pub cleanup_removes_expired: bool,
    /// How long an entry may outlive its TTL before the check fails (store clock
    /// granularity plus the time the server takes to notice).
    pub expiry_slack: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_value_bytes: None,
            cleanup_removes_expired: false,
            expiry_slack: Duration::from_secs(3),
        }
    }
}

/// [`SessionStore::scan`] lists every key under a prefix across pages, and
/// no other prefix's, and [`SessionStore::count`] agrees. A store that cannot list must
/// say so with [`StoreError::Unsupported`] (then its `count`, if it has one, must count at
/// least the keys written: cachelib counts files, whose names hide the prefix).
pub async fn check_scan(store: &dyn SessionStore) {
    let prefix = unique_prefix("scan");
    let other = unique_prefix("scan-other");
    let keys: Vec<String> = (0..7).map(|n| format!("{prefix}{n}")).collect();
    for key in &keys {
        assert!(store.create(key, b"v", TTL).await.expect("create"));
    }
    store
        .create(&format!("{other}x"), b"v", TTL)
        .await
        .expect("create");
    let mut listed = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        match store.scan(&prefix, cursor, 3).await {
            Ok(page) => {
                // Redis's COUNT is a hint: a page may be a little larger.
                assert!(page.keys.len() <= 30, "a page far larger than the limit");
                listed.extend(page.keys);
                pages += 1;
                // Redis may answer empty pages while it walks the whole keyspace.
                assert!(pages <= 100_000, "scan does not end: {listed:?}");
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            Err(StoreError::Unsupported(why)) => {
                assert!(pages == 0, "scan refused after a first page: {why}");
                assert!(!why.is_empty());
                match store.count(&prefix).await {
                    Ok(count) => assert!(count >= 7, "count {count} < 7 written"),
                    Err(StoreError::Unsupported(_)) => {}
                    Err(other) => panic!("count failed: {other}"),
                }
                for key in &keys {
                    store.delete(key).await.expect("delete");
                }
                return;
            }
            Err(other) => panic!("scan failed: {other}"),
        }
    }
    // A key may be listed twice only where the store says so (Redis during a rehash).
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(sorted, expected, "scan listed other keys or missed some");
    assert_eq!(store.count(&prefix).await.expect("count"), 7);
    store.delete(&keys[0]).await.expect("delete");
    assert_eq!(store.count(&prefix).await.expect("count"), 6);
    for key in &keys[1..] {
        store.delete(key).await.expect("delete");
    }
    store.delete(&format!("{other}x")).await.expect("delete");
    assert_eq!(store.count(&prefix).await.expect("count"), 0);
}

/// A prefix unique to one check, so checks never see each other's keys.
pub fn unique_prefix(check: &str) -> String {
    let nonce = crate::id::SessionId::generate(9)
        .map(|id| id.to_string())
        .unwrap_or_default();
    format!("conformance:{check}:{nonce}:")
}

const TTL: Duration = Duration::from_secs(300);

async fn value_of(store: &dyn SessionStore, key: &str) -> Option<Vec<u8>> {
    store
        .load(key)
        .await
        .unwrap_or_else(|e| panic!("load({key:?}) failed: {e}"))
        .map(|entry| entry.value)
}

/// Writes test data whatever is stored: the stores have no blind overwrite (the lifecycle
/// never needs one), so tests that set up an entry use this instead.
#[async_trait]
pub trait SeedExt: SessionStore {
    /// Makes `value` the entry under `key`, replacing any entry there.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        loop {
            self.delete(key).await?;
            if self.create(key, value, ttl).await? {
                return Ok(());
            }
        }
    }
}

impl<S: SessionStore + ?Sized> SeedExt for S {}

/// A missing key loads as `None`; deleting it is not an error.
pub async fn check_missing(store: &dyn SessionStore) {
    let key = format!("{}missing", unique_prefix("missing"));
    assert_eq!(value_of(store, &key).await, None);
    store.delete(&key).await.expect("delete of a missing key");
    assert!(
        !store.touch(&key, TTL).await.expect("touch"),
        "touch of a missing key reported success"
    );
    assert_eq!(value_of(store, &key).await, None, "touch created an entry");
}

/// A written entry loads with exactly the bytes given and a plausible expiry; a deleted
/// one is gone.
pub async fn check_load_delete(store: &dyn SessionStore) {
    let key = format!("{}k", unique_prefix("load"));
    let before = SystemTime::now();
    store.put(&key, b"\x81\xa1a\x01", TTL).await.expect("put");
    let entry = store
        .load(&key)
        .await
        .expect("load")
        .expect("saved entry is missing");
    assert_eq!(entry.value, b"\x81\xa1a\x01");
    if let Some(expires_at) = entry.expires_at {
        assert!(expires_at > before, "expiry in the past");
        assert!(
            expires_at <= SystemTime::now() + TTL + Duration::from_secs(2),
            "expiry later than the TTL"
        );
    }
    store.put(&key, b"second", TTL).await.expect("overwrite");
    assert_eq!(value_of(store, &key).await.as_deref(), Some(&b"second"[..]));
    store.delete(&key).await.expect("delete");
    assert_eq!(
        value_of(store, &key).await,
        None,
        "deleted entry still loads"
    );
}

/// `create` writes only when the key is free.
pub async fn check_create(store: &dyn SessionStore) {
    let key = format!("{}k", unique_prefix("create"));
    assert!(store.create(&key, b"first", TTL).await.expect("create"));
    assert!(!store
        .create(&key, b"second", TTL)
        .await
        .expect("create on existing"));
    assert_eq!(value_of(store, &key).await.as_deref(), Some(&b"first"[..]));
    store.delete(&key).await.expect("delete");
    assert!(store
        .create(&key, b"third", TTL)
        .await
        .expect("create after delete"));
    assert_eq!(value_of(store, &key).await.as_deref(), Some(&b"third"[..]));
}

/// Of many concurrent `create` calls on one key exactly one wins.
pub async fn check_concurrent_create(store: Arc<dyn SessionStore>) {
    let key = format!("{}k", unique_prefix("create-race"));
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { (i, store.create(&key, &[i], TTL).await.expect("create")) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (i, created) = task.await.expect("task");
        if created {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(value_of(&*store, &key).await, Some(vec![winners[0]]));
}

/// `compare_and_set` writes only over the expected bytes, and never creates.
pub async fn check_compare_and_set(store: &dyn SessionStore) {
    let key = format!("{}k", unique_prefix("cas"));
    assert!(!store
        .compare_and_set(&key, b"x", b"y", TTL)
        .await
        .expect("cas on missing"));
    assert_eq!(
        value_of(store, &key).await,
        None,
        "cas on a missing key created it"
    );
    store.put(&key, b"v1", TTL).await.expect("put");
    assert!(store
        .compare_and_set(&key, b"v1", b"v2", TTL)
        .await
        .expect("cas"));
    assert_eq!(value_of(store, &key).await.as_deref(), Some(&b"v2"[..]));
    assert!(!store
        .compare_and_set(&key, b"v1", b"v3", TTL)
        .await
        .expect("stale cas"));
    assert_eq!(value_of(store, &key).await.as_deref(), Some(&b"v2"[..]));
    // A prefix of the stored value is not a match.
    assert!(!store
        .compare_and_set(&key, b"v", b"v4", TTL)
        .await
        .expect("prefix cas"));
    assert_eq!(value_of(store, &key).await.as_deref(), Some(&b"v2"[..]));
}

/// `compare_and_delete` removes only the expected bytes, and of racing deletes and writes
/// none is lost.
pub async fn check_compare_and_delete(store: Arc<dyn SessionStore>) {
    let key = format!("{}k", unique_prefix("cad"));
    assert!(!store
        .compare_and_delete(&key, b"x")
        .await
        .expect("cad on missing"));
    store.put(&key, b"v1", TTL).await.expect("put");
    assert!(!store
        .compare_and_delete(&key, b"v")
        .await
        .expect("cad of a prefix"));
    assert!(!store
        .compare_and_delete(&key, b"v2")
        .await
        .expect("stale cad"));
    assert_eq!(value_of(&*store, &key).await.as_deref(), Some(&b"v1"[..]));
    assert!(store.compare_and_delete(&key, b"v1").await.expect("cad"));
    assert_eq!(value_of(&*store, &key).await, None, "cad left the entry");

    // A delete racing a compare-and-set: exactly one of them wins, and the loser changes
    // nothing.
    for round in 0..8u8 {
        let key = format!("{}race{round}", unique_prefix("cad-race"));
        store.put(&key, b"v1", TTL).await.expect("put");
        let deleter = {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.compare_and_delete(&key, b"v1").await })
        };
        let writer = {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.compare_and_set(&key, b"v1", b"v2", TTL).await })
        };
        let deleted = deleter.await.expect("task").expect("cad");
        let written = writer.await.expect("task").expect("cas");
        let now = value_of(&*store, &key).await;
        match (deleted, written) {
            (true, false) => assert_eq!(now, None, "round {round}"),
            (false, true) => assert_eq!(now.as_deref(), Some(&b"v2"[..]), "round {round}"),
            other => panic!("round {round}: delete and write both {other:?}; stored {now:?}"),
        }
    }
}

/// Concurrent read-compare-and-set loops on one key lose no increment.
pub async fn check_concurrent_writers(store: Arc<dyn SessionStore>) {
    let key = format!("{}counter", unique_prefix("writers"));
    store.put(&key, b"0", TTL).await.expect("put");
    let writers = 24;
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move {
                for attempt in 0..1000 {
                    let current = store
                        .load(&key)
                        .await
                        .expect("load")
                        .expect("counter")
                        .value;
                    let n: u64 = std::str::from_utf8(&current).unwrap().parse().unwrap();
                    let next = (n + 1).to_string();
                    if store
                        .compare_and_set(&key, &current, next.as_bytes(), TTL)
                        .await
                        .expect("cas")
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_micros(fastrand::u64(
                        0..200 * (attempt + 1),
                    )))
                    .await;
                }
                panic!("a writer never succeeded");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    assert_eq!(
        value_of(&*store, &key).await,
        Some(writers.to_string().into_bytes())
    );
}

/// `touch` keeps an entry alive past its original TTL; expired entries vanish from
/// `load`, refuse `compare_and_set` and `touch`, and do not block `create`.
pub async fn check_expiry(store: &dyn SessionStore, options: &Options) {
    let prefix = unique_prefix("expiry");
    let (short, touched) = (format!("{prefix}short"), format!("{prefix}touched"));
    // Two seconds, not one: stores with a one-second clock (memcached) may expire a
    // one-second entry before the first read.
    let one = Duration::from_secs(2);
    store.put(&short, b"short", one).await.expect("put");
    store.put(&touched, b"touched", one).await.expect("put");
    assert!(
        store.touch(&touched, TTL).await.expect("touch"),
        "touch of a live entry failed"
    );
    assert_eq!(
        value_of(store, &short).await.as_deref(),
        Some(&b"short"[..]),
        "entry expired at once"
    );
    let deadline = Instant::now() + one + options.expiry_slack;
    while value_of(store, &short).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "entry still loads {:?} after its TTL",
            one + options.expiry_slack
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        value_of(store, &touched).await.as_deref(),
        Some(&b"touched"[..]),
        "touch did not extend the expiry"
    );
    assert!(
        !store
            .compare_and_set(&short, b"short", b"x", TTL)
            .await
            .expect("cas"),
        "cas on an expired entry"
    );
    assert!(
        !store.touch(&short, TTL).await.expect("touch"),
        "touch revived an expired entry"
    );
    assert!(
        store.create(&short, b"again", TTL).await.expect("create"),
        "an expired entry blocked create"
    );
    assert_eq!(
        value_of(store, &short).await.as_deref(),
        Some(&b"again"[..])
    );
}

/// `rotate` moves data atomically, and changes nothing when a check fails.
pub async fn check_rotate(store: &dyn SessionStore) {
    let prefix = unique_prefix("rotate");
    let (old, new, taken) = (
        format!("{prefix}old"),
        format!("{prefix}new"),
        format!("{prefix}taken"),
    );
    store.put(&old, b"v1", TTL).await.expect("put");
    store.put(&taken, b"other", TTL).await.expect("put");
    assert!(!store
        .rotate(&old, b"stale", &new, b"v2", TTL)
        .await
        .expect("rotate"));
    assert_eq!(value_of(store, &old).await.as_deref(), Some(&b"v1"[..]));
    assert_eq!(value_of(store, &new).await, None);
    assert!(!store
        .rotate(&old, b"v1", &taken, b"v2", TTL)
        .await
        .expect("rotate"));
    assert_eq!(value_of(store, &old).await.as_deref(), Some(&b"v1"[..]));
    assert_eq!(
        value_of(store, &taken).await.as_deref(),
        Some(&b"other"[..])
    );
    assert!(store
        .rotate(&old, b"v1", &new, b"v2", TTL)
        .await
        .expect("rotate"));
    assert_eq!(
        value_of(store, &old).await,
        None,
        "old key survived rotation"
    );
    assert_eq!(value_of(store, &new).await.as_deref(), Some(&b"v2"[..]));
}

/// Every byte value survives, and large values either work or fail with `TooLarge`.
pub async fn check_binary_and_large_values(store: &dyn SessionStore, options: &Options) {
    let prefix = unique_prefix("values");
    let all_bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    store
        .put(&format!("{prefix}bytes"), &all_bytes, TTL)
        .await
        .expect("save binary");
    assert_eq!(
        value_of(store, &format!("{prefix}bytes")).await,
        Some(all_bytes)
    );
    store
        .put(&format!("{prefix}empty-ish"), b"\x80", TTL)
        .await
        .expect("put");
    assert_eq!(
        value_of(store, &format!("{prefix}empty-ish"))
            .await
            .as_deref(),
        Some(&b"\x80"[..])
    );
    let fits = options.max_value_bytes.unwrap_or(1 << 20).min(1 << 20);
    let large: Vec<u8> = (0..fits).map(|i| (i * 7 % 251) as u8).collect();
    store
        .put(&format!("{prefix}large"), &large, TTL)
        .await
        .expect("save of a value within the limit");
    assert_eq!(
        value_of(store, &format!("{prefix}large")).await,
        Some(large)
    );
    if let Some(limit) = options.max_value_bytes {
        let too_large = vec![1u8; limit + 1];
        match store
            .create(&format!("{prefix}too-large"), &too_large, TTL)
            .await
        {
            Err(StoreError::TooLarge { .. }) => {}
            other => panic!("a value over the limit gave {other:?}, not TooLarge"),
        }
        assert_eq!(value_of(store, &format!("{prefix}too-large")).await, None);
    }
}

/// Unusual keys round-trip without colliding, or are refused with `InvalidKey`.
pub async fn check_odd_keys(store: &dyn SessionStore) {
    let prefix = unique_prefix("keys");
    let keys = [
        prefix.clone(),
        format!("{prefix}99eb3546-85ba-4a5c-9c36-4a8a2a7b3c1d"),
        format!("{prefix}a/b\\c"),
        format!("{prefix}%2e%2e"),
        format!("{prefix}ключ-🔑"),
        format!("{prefix}{}", "x".repeat(200)),
        format!("{prefix}A"),
        format!("{prefix}a"),
    ];
    let mut accepted = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        match store
            .create(key, format!("value-{i}").as_bytes(), TTL)
            .await
        {
            Ok(true) => accepted.push((i, key)),
            Ok(false) => panic!("key {key:?} collided with another key"),
            Err(StoreError::InvalidKey(_)) => {}
            Err(other) => panic!("key {key:?} gave {other}, not InvalidKey"),
        }
    }
    assert!(accepted.len() >= 3, "the store accepts almost no keys");
    for (i, key) in accepted {
        assert_eq!(
            value_of(store, key).await,
            Some(format!("value-{i}").into_bytes()),
            "key {key:?}"
        );
    }
}

/// `cleanup` succeeds, keeps live entries, and (where required) removes expired ones.
pub async fn check_cleanup(store: &dyn SessionStore, options: &Options) {
    let prefix = unique_prefix("cleanup");
    let (live, expired) = (format!("{prefix}live"), format!("{prefix}expired"));
    store.put(&live, b"live", TTL).await.expect("put");
    store
        .put(&expired, b"expired", Duration::from_secs(1))
        .await
        .expect("put");
    if options.cleanup_removes_expired {
        let deadline = Instant::now() + Duration::from_secs(1) + options.expiry_slack;
        let mut removed = 0;
        while Instant::now() < deadline {
            removed += store.cleanup().await.expect("cleanup");
            if removed > 0 && value_of(store, &expired).await.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            removed >= 1,
            "cleanup removed nothing after the entry expired"
        );
    } else {
        store.cleanup().await.expect("cleanup");
    }
    assert_eq!(
        value_of(store, &live).await.as_deref(),
        Some(&b"live"[..]),
        "cleanup removed a live entry"
    );
}

// ---- The owner index (docs/owners.md) ----

/// A manager on `store` for the owner checks: keys under a fresh prefix, `SESSION_HASH_IDS`
/// as asked.
fn owner_manager(
    store: Arc<dyn SessionStore>,
    check: &str,
    hash_ids: bool,
) -> crate::SessionManager {
    let config = crate::SessionConfig::builder()
        .key_prefix(unique_prefix(check))
        .hash_ids(hash_ids)
        .build()
        .expect("owner check config");
    crate::SessionManager::from_shared(store, config)
}

/// An owner name unique to one check, with characters a store layout must cope with.
fn unique_owner(name: &str) -> String {
    let nonce = crate::id::SessionId::generate(6)
        .map(|id| id.to_string())
        .unwrap_or_default();
    format!("{name} {{tag}}:é/{nonce}")
}

/// The session cookie's value in a `Set-Cookie` header, when it sets one.
fn cookie_of(outcome: &crate::FinishOutcome) -> Option<String> {
    let header = outcome.set_cookie.as_ref()?.as_str().to_owned();
    let (_, value) = header.split(';').next()?.split_once('=')?;
    (!value.is_empty()).then(|| value.to_owned())
}

/// One request: opens the session of `cookie`, runs `handler`, finishes; the cookie the
/// browser holds afterwards.
async fn owner_request<F, Fut>(
    manager: &crate::SessionManager,
    cookie: Option<&str>,
    handler: F,
) -> Option<String>
where
    F: FnOnce(crate::Session) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let session = manager.open(cookie);
    handler(session.clone()).await;
    let outcome = manager.finish(&session).await.expect("finish");
    cookie_of(&outcome).or_else(|| cookie.map(str::to_owned))
}

/// A login: a new session owned by `owner`; its cookie.
async fn login(manager: &crate::SessionManager, owner: &str) -> String {
    owner_request(manager, None, |session| async move {
        session.set_owner(owner).await.expect("set_owner");
        session.insert("n", &1).await.expect("insert");
    })
    .await
    .expect("a login sets a cookie")
}

/// The owner of the session behind `cookie`, as a new request sees it.
async fn owner_seen(manager: &crate::SessionManager, cookie: &str) -> Option<String> {
    manager.open(Some(cookie)).owner().await.expect("owner")
}

/// A store without an owner index says so with [`StoreError::Unsupported`], for every
/// index call and for the manager's listing and revocation; one with an index stores,
/// replaces, lists and removes entries, per owner.
pub async fn check_owner_index_entries(store: Arc<dyn SessionStore>) {
    let owner = unique_owner("entries");
    if !store.owner_index() {
        let listed = store.index_list(&owner).await;
        assert!(
            matches!(listed, Err(StoreError::Unsupported(ref message)) if !message.is_empty()),
            "a store without an owner index must answer Unsupported, not {listed:?}"
        );
        let manager = owner_manager(store, "owner-unsupported", false);
        let error = manager.sessions_of(&owner, None).await.unwrap_err();
        assert!(
            matches!(
                error,
                crate::SessionError::Store(StoreError::Unsupported(_))
            ),
            "{error}"
        );
        let error = manager.revoke_owner(&owner, None).await.unwrap_err();
        assert!(
            matches!(
                error,
                crate::SessionError::Store(StoreError::Unsupported(_))
            ),
            "{error}"
        );
        // Owned sessions still work: the index is simply not kept.
        let cookie = login(&manager, &owner).await;
        assert_eq!(
            owner_seen(&manager, &cookie).await.as_deref(),
            Some(owner.as_str())
        );
        return;
    }
    let prefix = unique_prefix("owner-entries");
    let now = crate::owner::unix_now();
    let entry = |key: &str, created: u64| crate::IndexEntry {
        key: format!("{prefix}{key}"),
        created,
        last_seen: now,
        expires_at: now + 300,
    };
    let other = unique_owner("other");
    assert_eq!(store.index_list(&owner).await.expect("list"), vec![]);
    store
        .index_put(&owner, &entry("a", now - 10))
        .await
        .expect("put a");
    store
        .index_put(&owner, &entry("b", now - 20))
        .await
        .expect("put b");
    store
        .index_put(&other, &entry("c", now))
        .await
        .expect("put c");
    // A second put of one key replaces its entry.
    store
        .index_put(&owner, &entry("a", now - 5))
        .await
        .expect("put a again");
    let mut listed = store.index_list(&owner).await.expect("list");
    listed.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(listed, vec![entry("a", now - 5), entry("b", now - 20)]);
    assert_eq!(
        store.index_list(&other).await.expect("list"),
        vec![entry("c", now)]
    );
    store
        .index_remove(&owner, &entry("a", 0).key)
        .await
        .expect("remove");
    store
        .index_remove(&owner, "never-indexed")
        .await
        .expect("remove of a missing entry");
    assert_eq!(
        store.index_list(&owner).await.expect("list"),
        vec![entry("b", now - 20)]
    );
    store
        .index_remove(&owner, &entry("b", 0).key)
        .await
        .expect("remove");
    store
        .index_remove(&other, &entry("c", 0).key)
        .await
        .expect("remove");
    assert_eq!(store.index_list(&owner).await.expect("list"), vec![]);
}

/// Commits keep the index in step: two logins of one owner are listed (with handles that
/// are not ids, and the caller's marked current), another owner's are not; a session that
/// loses its owner or logs out leaves the list; a stale entry is pruned when listed, a
/// recent one (a write may be in flight) is neither listed nor pruned.
pub async fn check_owner_sessions(store: Arc<dyn SessionStore>, hash_ids: bool) {
    if !store.owner_index() {
        return;
    }
    let manager = owner_manager(store.clone(), "owner-sessions", hash_ids);
    let (alice, bob) = (unique_owner("alice"), unique_owner("bob"));
    let first = login(&manager, &alice).await;
    let second = login(&manager, &alice).await;
    let _bob = login(&manager, &bob).await;

    let caller = manager.open(Some(&second));
    let listed = manager
        .sessions_of(&alice, Some(&caller))
        .await
        .expect("sessions_of");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed.iter().filter(|s| s.current).count(), 1);
    let current = listed.iter().find(|s| s.current).unwrap();
    assert_eq!(
        Some(&current.handle),
        caller.handle().await.unwrap().as_ref()
    );
    assert_ne!(listed[0].handle, listed[1].handle);
    let now = crate::owner::unix_now();
    for session in &listed {
        assert!(!first.contains(&session.handle) && !second.contains(&session.handle));
        assert!(session.handle.len() >= 16, "{session:?}");
        assert!(
            session.created <= now + 1 && session.created + 60 > now,
            "{session:?}"
        );
        assert!(session.last_seen + 60 > now, "{session:?}");
        assert!(session.expires_at > now + 60, "{session:?}");
    }
    assert_eq!(manager.sessions_of(&bob, None).await.unwrap().len(), 1);

    // The first session changes hands: alice's list loses it, bob's gains it.
    owner_request(&manager, Some(&first), |session| {
        let bob = bob.clone();
        async move { session.set_owner(&bob).await.unwrap() }
    })
    .await;
    assert_eq!(manager.sessions_of(&alice, None).await.unwrap().len(), 1);
    assert_eq!(manager.sessions_of(&bob, None).await.unwrap().len(), 2);
    // It loses its owner, then logs out.
    owner_request(&manager, Some(&first), |session| async move {
        session.clear_owner().await.unwrap()
    })
    .await;
    assert_eq!(manager.sessions_of(&bob, None).await.unwrap().len(), 1);
    owner_request(&manager, Some(&second), |session| async move {
        session.clear().await.unwrap()
    })
    .await;
    assert_eq!(manager.sessions_of(&alice, None).await.unwrap(), vec![]);

    // Stale and recent entries that name no session.
    let prefix = unique_prefix("owner-stale");
    let stale = crate::IndexEntry {
        key: format!("{prefix}stale"),
        created: now - 7200,
        last_seen: now - 3600,
        expires_at: now + 3600,
    };
    let recent = crate::IndexEntry {
        key: format!("{prefix}recent"),
        created: now,
        last_seen: now,
        expires_at: now + 3600,
    };
    // The index's name in the store: the key prefix, `owner:`, the owner.
    let index = format!("{}owner:{alice}", manager.config().key_prefix());
    store.index_put(&index, &stale).await.unwrap();
    store.index_put(&index, &recent).await.unwrap();
    assert_eq!(manager.sessions_of(&alice, None).await.unwrap(), vec![]);
    let left = store.index_list(&index).await.unwrap();
    assert_eq!(
        left,
        vec![recent.clone()],
        "the stale entry was not pruned, or the recent one was"
    );
    store.index_remove(&index, &recent.key).await.unwrap();
}

/// `revoke_owner` ends every session of the owner but the kept one; the revoked cookies
/// open fresh, empty sessions; other owners keep theirs; a handle can name the kept one.
pub async fn check_revoke_owner(store: Arc<dyn SessionStore>, hash_ids: bool) {
    if !store.owner_index() {
        return;
    }
    let manager = owner_manager(store, "owner-revoke", hash_ids);
    let (alice, bob) = (unique_owner("alice"), unique_owner("bob"));
    let cookies = [
        login(&manager, &alice).await,
        login(&manager, &alice).await,
        login(&manager, &alice).await,
    ];
    let bobs = login(&manager, &bob).await;
    let keeper = manager.open(Some(&cookies[0]));
    let revoked = manager
        .revoke_owner(&alice, Some(crate::Keep::Session(&keeper)))
        .await
        .expect("revoke");
    assert_eq!(revoked, 2);
    assert_eq!(
        owner_seen(&manager, &cookies[0]).await.as_deref(),
        Some(alice.as_str())
    );
    for cookie in &cookies[1..] {
        let session = manager.open(Some(cookie));
        assert!(
            session.is_empty().await.unwrap(),
            "a revoked session still loads"
        );
    }
    assert_eq!(
        owner_seen(&manager, &bobs).await.as_deref(),
        Some(bob.as_str())
    );
    let listed = manager.sessions_of(&alice, None).await.unwrap();
    assert_eq!(listed.len(), 1);

    // Keeping by handle; then revoking the rest.
    let handle = listed[0].handle.clone();
    let extra = login(&manager, &alice).await;
    assert_eq!(
        manager
            .revoke_owner(&alice, Some(crate::Keep::Handle(&handle)))
            .await
            .unwrap(),
        1
    );
    assert!(manager.open(Some(&extra)).is_empty().await.unwrap());
    assert_eq!(manager.revoke_owner(&alice, None).await.unwrap(), 1);
    assert!(manager.open(Some(&cookies[0])).is_empty().await.unwrap());
    assert_eq!(manager.sessions_of(&alice, None).await.unwrap(), vec![]);
    assert_eq!(manager.revoke_owner(&bob, None).await.unwrap(), 1);
}

/// A store wrapper that pauses inside the first call of one operation: it signals
/// `entered`, then waits for `release` before it forwards the call. Races become
/// deterministic: the test does its other step while the call is held.
pub struct PauseOnce {
    inner: Arc<dyn SessionStore>,
    operation: &'static str,
    armed: AtomicBool,
    /// Gets a permit when the paused call has been entered.
    pub entered: tokio::sync::Semaphore,
    /// Give it a permit to let the paused call go on.
    pub release: tokio::sync::Semaphore,
}

impl PauseOnce {
    /// Wraps `inner`, pausing its first `operation` call (`"compare_and_set"`,
    /// `"compare_and_delete"`, `"rotate"`, `"load"`).
    pub fn new(inner: Arc<dyn SessionStore>, operation: &'static str) -> PauseOnce {
        PauseOnce {
            inner,
            operation,
            armed: AtomicBool::new(false),
            entered: tokio::sync::Semaphore::new(0),
            release: tokio::sync::Semaphore::new(0),
        }
    }

    /// From now on, the next call of the operation pauses.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    async fn pause(&self, operation: &str) {
        if operation == self.operation && self.armed.swap(false, Ordering::SeqCst) {
            self.entered.add_permits(1);
            if let Ok(permit) = self.release.acquire().await {
                permit.forget();
            }
        }
    }

    /// Waits (up to 10 seconds) until the paused call was entered.
    pub async fn wait_entered(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.entered.acquire())
            .await
            .expect("the paused call was never made")
            .expect("semaphore open")
            .forget();
    }
}

#[async_trait]
impl SessionStore for PauseOnce {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        self.pause("load").await;
        self.inner.load(key).await
    }
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.inner.create(key, value, ttl).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.pause("compare_and_set").await;
        self.inner.compare_and_set(key, expected, value, ttl).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.touch(key, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.pause("compare_and_delete").await;
        self.inner.compare_and_delete(key, expected).await
    }
    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.pause("rotate").await;
        self.inner
            .rotate(old_key, expected, new_key, value, ttl)
            .await
    }
    async fn cleanup(&self) -> Result<u64, StoreError> {
        self.inner.cleanup().await
    }
    fn invalidations(&self) -> Option<crate::InvalidationFeed> {
        self.inner.invalidations()
    }
    fn owner_index(&self) -> bool {
        self.inner.owner_index()
    }
    async fn index_put(&self, index: &str, entry: &crate::IndexEntry) -> Result<(), StoreError> {
        self.inner.index_put(index, entry).await
    }
    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        self.inner.index_remove(index, key).await
    }
    async fn index_list(&self, index: &str) -> Result<Vec<crate::IndexEntry>, StoreError> {
        self.inner.index_list(index).await
    }
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<crate::ScanPage, StoreError> {
        self.inner.scan(prefix, cursor, limit).await
    }
    async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        self.inner.count(prefix).await
    }
}

/// A revocation racing requests of the revoked session, made deterministic with
/// [`PauseOnce`]; in every order, the revoked session neither survives nor comes back:
///
/// 1. a save whose compare-and-set is held while the revocation runs finds the session
///    gone and starts a new session without the owner;
/// 2. a save that lands while the revocation's compare-and-delete is held makes that
///    delete fail: the revocation reads the session again and ends it;
/// 3. an id rotation (login) held while the revocation runs is undone, and one that
///    finished first is caught under its new id.
pub async fn check_revoke_races_requests(store: Arc<dyn SessionStore>, hash_ids: bool) {
    if !store.owner_index() {
        return;
    }
    for operation in ["compare_and_set", "compare_and_delete", "rotate"] {
        let paused = Arc::new(PauseOnce::new(store.clone(), operation));
        let manager = owner_manager(paused.clone(), "owner-race", hash_ids);
        let alice = unique_owner("alice");
        let cookie = login(&manager, &alice).await;
        paused.arm();
        let outcome = match operation {
            "compare_and_delete" => {
                // The revocation is held between its read and its delete; a save lands.
                let revoker = {
                    let (manager, alice) = (manager.clone(), alice.clone());
                    tokio::spawn(async move { manager.revoke_owner(&alice, None).await })
                };
                paused.wait_entered().await;
                owner_request(&manager, Some(&cookie), |session| async move {
                    session.insert("n", &2).await.unwrap()
                })
                .await;
                paused.release.add_permits(1);
                let revoked = revoker.await.expect("revoke task").expect("revoke");
                assert_eq!(revoked, 1, "the revocation gave up on the re-saved session");
                None
            }
            _ => {
                // A request's write is held while the revocation runs.
                let request = {
                    let (manager, cookie) = (manager.clone(), cookie.clone());
                    tokio::spawn(async move {
                        let session = manager.open(Some(&cookie));
                        session.insert("n", &2).await.unwrap();
                        if operation == "rotate" {
                            session.regenerate().await.unwrap();
                        }
                        let outcome = manager.finish(&session).await.expect("finish");
                        cookie_of(&outcome)
                    })
                };
                paused.wait_entered().await;
                let revoked = manager.revoke_owner(&alice, None).await.expect("revoke");
                assert_eq!(revoked, 1, "{operation}");
                paused.release.add_permits(1);
                request.await.expect("request task")
            }
        };
        assert!(
            manager.open(Some(&cookie)).is_empty().await.unwrap(),
            "{operation}: the revoked session survived"
        );
        if let Some(new_cookie) = outcome {
            assert_ne!(new_cookie, cookie);
            assert_eq!(
                owner_seen(&manager, &new_cookie).await,
                None,
                "{operation}: the racing request revived the owner's session"
            );
        }
        assert_eq!(
            manager.sessions_of(&alice, None).await.unwrap(),
            vec![],
            "{operation}: a session of the owner is still listed"
        );
    }

    // A rotation that finished before the revocation read the index is caught under its
    // new id.
    let manager = owner_manager(store.clone(), "owner-race-rotated", hash_ids);
    let alice = unique_owner("alice");
    let cookie = login(&manager, &alice).await;
    let rotated = owner_request(&manager, Some(&cookie), |session| async move {
        session.regenerate().await.unwrap()
    })
    .await
    .expect("cookie");
    assert_ne!(rotated, cookie);
    assert_eq!(manager.revoke_owner(&alice, None).await.unwrap(), 1);
    assert!(manager.open(Some(&rotated)).is_empty().await.unwrap());
}

/// Expands to one `#[tokio::test]` per conformance check. `$make` is an expression whose
/// value is a future resolving to the store; `$options` (optional) a [`Options`].
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!($make, $crate::testkit::Options::default());
    };
    ($make:expr, $options:expr) => {
        mod store_conformance {
            #[allow(unused_imports)]
            use super::*;
            use std::sync::Arc;
            use $crate::testkit as kit;

            async fn store() -> Arc<dyn $crate::SessionStore> {
                Arc::new($make.await)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn missing_keys() {
                kit::check_missing(&*store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn load_and_delete() {
                kit::check_load_delete(&*store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn compare_and_delete() {
                kit::check_compare_and_delete(store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn create_if_absent() {
                kit::check_create(&*store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_create_has_one_winner() {
                kit::check_concurrent_create(store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn compare_and_set() {
                kit::check_compare_and_set(&*store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_writers_lose_nothing() {
                kit::check_concurrent_writers(store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expiry_and_touch() {
                kit::check_expiry(&*store().await, &$options).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rotate() {
                kit::check_rotate(&*store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn binary_and_large_values() {
                kit::check_binary_and_large_values(&*store().await, &$options).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn odd_keys() {
                kit::check_odd_keys(&*store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cleanup() {
                kit::check_cleanup(&*store().await, &$options).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn scan_and_count() {
                kit::check_scan(&*store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn owner_index_entries() {
                kit::check_owner_index_entries(store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn owner_sessions() {
                kit::check_owner_sessions(store().await, false).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn owner_sessions_hashed_ids() {
                kit::check_owner_sessions(store().await, true).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn revoke_owner() {
                kit::check_revoke_owner(store().await, false).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn revoke_owner_hashed_ids() {
                kit::check_revoke_owner(store().await, true).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn revoke_races_requests() {
                kit::check_revoke_races_requests(store().await, false).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn revoke_races_requests_hashed_ids() {
                kit::check_revoke_races_requests(store().await, true).await;
            }
        }
    };
}

/// Counts the calls made to the store it wraps.
#[derive(Debug, Default)]
pub struct CallCounts {
    /// `load` calls.
    pub load: AtomicU64,
    /// `create` calls.
    pub create: AtomicU64,
    /// `compare_and_set` calls.
    pub compare_and_set: AtomicU64,
    /// `touch` calls.
    pub touch: AtomicU64,
    /// `delete` calls.
    pub delete: AtomicU64,
    /// `compare_and_delete` calls.
    pub compare_and_delete: AtomicU64,
    /// `rotate` calls.
    pub rotate: AtomicU64,
    /// `cleanup` calls.
    pub cleanup: AtomicU64,
    /// `index_put` calls (not part of [`total`](Self::total)).
    pub index_put: AtomicU64,
}

impl CallCounts {
    /// All calls.
    pub fn total(&self) -> u64 {
        self.reads()
            + self.writes()
            + self.touch.load(Ordering::SeqCst)
            + self.cleanup.load(Ordering::SeqCst)
    }
    /// `load` calls.
    pub fn reads(&self) -> u64 {
        self.load.load(Ordering::SeqCst)
    }
    /// Calls that write data (`create`, `compare_and_set`, `rotate`, `delete`,
    /// `compare_and_delete`).
    pub fn writes(&self) -> u64 {
        [
            &self.create,
            &self.compare_and_delete,
            &self.compare_and_set,
            &self.rotate,
            &self.delete,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }
}

/// A store wrapper that counts calls and can be switched off to simulate an outage.
pub struct TestStore<S> {
    inner: S,
    /// Call counters.
    pub counts: CallCounts,
    down: AtomicBool,
}

impl<S: SessionStore> TestStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> TestStore<S> {
        TestStore {
            inner,
            counts: CallCounts::default(),
            down: AtomicBool::new(false),
        }
    }

    /// While down, every call fails with [`StoreError::Unavailable`]. A store that reports
    /// other writers' changes stops tracking meanwhile, as a real outage (lost connections)
    /// makes it: caches are flushed and serve nothing until the store is back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if let Some(feed) = self.inner.invalidations() {
            feed.set_tracking(!down);
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn enter(&self, counter: &AtomicU64) -> Result<(), StoreError> {
        counter.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(
                "test store is switched off (connection refused)",
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for TestStore<S> {
    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        self.enter(&self.counts.load)?;
        self.inner.load(key).await
    }
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.enter(&self.counts.create)?;
        self.inner.create(key, value, ttl).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.enter(&self.counts.compare_and_set)?;
        self.inner.compare_and_set(key, expected, value, ttl).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.enter(&self.counts.touch)?;
        self.inner.touch(key, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.enter(&self.counts.delete)?;
        self.inner.delete(key).await
    }
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.enter(&self.counts.compare_and_delete)?;
        self.inner.compare_and_delete(key, expected).await
    }
    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.enter(&self.counts.rotate)?;
        self.inner
            .rotate(old_key, expected, new_key, value, ttl)
            .await
    }
    async fn cleanup(&self) -> Result<u64, StoreError> {
        self.enter(&self.counts.cleanup)?;
        self.inner.cleanup().await
    }
    fn invalidations(&self) -> Option<crate::InvalidationFeed> {
        self.inner.invalidations()
    }
    // The owner index is forwarded as it is (never switched off; only puts are counted).
    fn owner_index(&self) -> bool {
        self.inner.owner_index()
    }
    async fn index_put(&self, index: &str, entry: &crate::IndexEntry) -> Result<(), StoreError> {
        self.counts.index_put.fetch_add(1, Ordering::SeqCst);
        self.inner.index_put(index, entry).await
    }
    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        self.inner.index_remove(index, key).await
    }
    async fn index_list(&self, index: &str) -> Result<Vec<crate::IndexEntry>, StoreError> {
        self.inner.index_list(index).await
    }
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<crate::ScanPage, StoreError> {
        self.inner.scan(prefix, cursor, limit).await
    }
    async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        self.inner.count(prefix).await
    }
}

/// A store together with something that must live exactly as long as it, such as the
/// temporary directory of a file store: dropped after the store (fields drop in order).
/// Every [`SessionStore`] method goes to `store`, the defaulted ones too, so a test
/// through the wrapper sees everything the store can do. Derefs to the store.
pub struct Guarded<S, G> {
    /// The store under test.
    pub store: S,
    /// What the store needs (dropped after it).
    pub guard: G,
}

impl<S, G> std::ops::Deref for Guarded<S, G> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.store
    }
}

crate::store::impl_store_by_deref!(impl<S, G> for Guarded<S, G> where S: SessionStore, G: Send + Sync + 'static);
