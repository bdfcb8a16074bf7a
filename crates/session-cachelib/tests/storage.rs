//! What the store leaves on disk is cachelib's `FileSystemCache` layout: file names,
//! expiry header, pickle, mode, the count file, pruning, and no stray files.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{counter, msgpack, TempStore};
use rmpv::Value;
use session_cachelib::{pickle, FileNameHash};
use session_core::SessionStore;

const TTL: Duration = Duration::from_secs(300);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `pickle.dumps(n, 5)` behind a zero expiry: cachelib's count file holding `n`.
fn count_file(n: u8) -> Vec<u8> {
    vec![0, 0, 0, 0, 0x80, 5, b'K', n, b'.']
}

fn count_path(temp: &TempStore) -> std::path::PathBuf {
    temp.dir()
        .join(FileNameHash::Sha256.file_name("__wz_cache_count"))
}

fn session(user: &str) -> Vec<u8> {
    msgpack(&Value::Map(vec![
        (Value::from("_permanent"), Value::Boolean(true)),
        (Value::from("user"), Value::from(user)),
    ]))
}

#[cfg(unix)]
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn a_session_is_one_file_named_by_the_sha256_of_its_key() {
    let temp = common::temp_store();
    let before = unix_now();
    assert!(temp
        .store
        .create("session:abc", &session("ann"), TTL)
        .await
        .unwrap());
    let path = temp.store.file_path("session:abc");
    assert_eq!(
        path.file_name().unwrap(),
        // hashlib.sha256(b"session:abc").hexdigest()
        "a29d803b477eb42083ebd25596356c45c98474d5c0dacb79829833ca2176e85b"
    );
    let (expires, payload) = common::file(&temp, "session:abc").unwrap();
    let expires = u64::from(expires);
    assert!(
        expires >= before + 300 && expires <= unix_now() + 301,
        "expiry {expires} is not now + 300 s"
    );
    // A protocol 5 pickle of the dict, readable by this crate's reader.
    assert_eq!(&payload[..3], b"\x80\x05\x95");
    assert_eq!(
        pickle::loads(&payload).unwrap(),
        Value::Map(vec![
            (Value::from("_permanent"), Value::Boolean(true)),
            (Value::from("user"), Value::from("ann")),
        ])
    );
    // The session file, the count file, nothing else (no lock or temporary files).
    assert_eq!(
        common::names(&temp),
        [
            "79bc207ee04a581ab2348ca1f3494e64cd0ec36128735b8c6bc85ddd8fe1938c",
            "a29d803b477eb42083ebd25596356c45c98474d5c0dacb79829833ca2176e85b",
        ]
    );
    assert_eq!(std::fs::read(count_path(&temp)).unwrap(), count_file(1));
    let loaded = temp.store.load("session:abc").await.unwrap().unwrap();
    assert_eq!(loaded.value, session("ann"));
    assert_eq!(
        loaded.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(expires))
    );
}

#[tokio::test]
async fn md5_names_for_older_cachelib() {
    let temp = common::temp_store_with(|b| b.file_name_hash(FileNameHash::Md5));
    temp.store
        .create("session:abc", &session("ann"), TTL)
        .await
        .unwrap();
    assert_eq!(
        common::names(&temp),
        [
            // hashlib.md5(b"__wz_cache_count"), hashlib.md5(b"session:abc")
            "2029240f6d1128be89ddc32729463129",
            "32607b0dcb9d5a58fbe913b473137833",
        ]
    );
}

#[cfg(unix)]
#[tokio::test]
async fn files_get_the_configured_mode_and_the_directory_stays_private() {
    let default = common::temp_store();
    default.store.create("k", &session("a"), TTL).await.unwrap();
    assert_eq!(mode_of(&default.store.file_path("k")), 0o600);
    assert_eq!(mode_of(&count_path(&default)), 0o600);
    assert_eq!(mode_of(default.dir()), 0o700);

    let shared = common::temp_store_with(|b| b.mode(0o640));
    shared.store.create("k", &session("a"), TTL).await.unwrap();
    assert_eq!(mode_of(&shared.store.file_path("k")), 0o640);
    // Every rewrite keeps it.
    shared.store.touch("k", TTL).await.unwrap();
    assert_eq!(mode_of(&shared.store.file_path("k")), 0o640);
}

#[tokio::test]
async fn the_count_file_follows_creates_and_deletes_like_cachelib() {
    let temp = common::temp_store_with(|b| b.threshold(10));
    assert_eq!(std::fs::read(count_path(&temp)).unwrap(), count_file(0));
    for key in ["a", "b", "c"] {
        temp.store.create(key, &counter(0), TTL).await.unwrap();
    }
    assert_eq!(std::fs::read(count_path(&temp)).unwrap(), count_file(3));
    // Overwrites and touches do not count.
    assert!(temp
        .store
        .compare_and_set("a", &counter(0), &counter(1), TTL)
        .await
        .unwrap());
    assert!(temp.store.touch("b", TTL).await.unwrap());
    assert_eq!(temp.store.count().await.unwrap(), 3);
    // Deletes do, once.
    temp.store.delete("c").await.unwrap();
    temp.store.delete("c").await.unwrap();
    assert_eq!(temp.store.count().await.unwrap(), 2);
    assert!(temp
        .store
        .compare_and_delete("b", &counter(0))
        .await
        .unwrap());
    assert_eq!(temp.store.count().await.unwrap(), 1);
    // A rotation moves the entry: one file, one count.
    assert!(temp
        .store
        .rotate("a", &counter(1), "a2", &counter(2), TTL)
        .await
        .unwrap());
    assert_eq!(temp.store.count().await.unwrap(), 1);
    // Writing over an expired file is an overwrite (cachelib checks that a file exists).
    common::plant(
        &temp,
        "old",
        1,
        &pickle::dumps(&Value::Map(vec![])).unwrap(),
    );
    assert!(temp.store.create("old", &counter(0), TTL).await.unwrap());
    assert_eq!(temp.store.count().await.unwrap(), 1);
    assert_eq!(std::fs::read(count_path(&temp)).unwrap(), count_file(1));
}

#[tokio::test]
async fn no_count_file_without_a_threshold() {
    let temp = common::temp_store_with(|b| b.threshold(0));
    for key in ["a", "b", "c"] {
        temp.store.create(key, &counter(0), TTL).await.unwrap();
    }
    temp.store.delete("a").await.unwrap();
    assert!(!count_path(&temp).exists());
    assert_eq!(common::names(&temp).len(), 2);
}

#[tokio::test]
async fn opening_recounts_every_name_as_cachelib_does() {
    let temp = common::temp_store();
    temp.store.create("a", &counter(0), TTL).await.unwrap();
    // A stray file and a folder count as entries for cachelib; temporary files do not.
    std::fs::write(temp.dir().join("stray"), b"x").unwrap();
    std::fs::create_dir(temp.dir().join("folder")).unwrap();
    std::fs::write(temp.dir().join("tmpabcdefgh.__wz_cache"), b"x").unwrap();
    std::fs::write(count_path(&temp), count_file(42)).unwrap();
    let reopened = session_cachelib::CachelibStore::open(temp.dir()).unwrap();
    assert_eq!(reopened.count().await.unwrap(), 3);
}

#[tokio::test]
async fn pruning_removes_expired_then_soonest_expiring_entries() {
    let temp = common::temp_store_with(|b| b.threshold(3));
    let hours = |n: u64| Duration::from_secs(n * 3600);
    temp.store.create("a", &counter(0), hours(1)).await.unwrap();
    temp.store.create("b", &counter(0), hours(3)).await.unwrap();
    temp.store.create("c", &counter(0), hours(2)).await.unwrap();
    // At the threshold, not over: no pruning, the count goes to 4.
    temp.store.create("d", &counter(0), hours(4)).await.unwrap();
    assert_eq!(temp.store.count().await.unwrap(), 4);
    // Over it: "a" expires first and goes; then the count is back at 3, and "e" makes 4.
    temp.store.create("e", &counter(0), hours(5)).await.unwrap();
    let present = |key: &str| temp.store.file_path(key).exists();
    assert_eq!(
        ["a", "b", "c", "d", "e"].map(present),
        [false, true, true, true, true]
    );
    assert_eq!(temp.store.count().await.unwrap(), 4);

    // An expired file goes before any live one, whatever its place in the order.
    common::plant(
        &temp,
        "gone",
        1,
        &pickle::dumps(&Value::Map(vec![])).unwrap(),
    );
    std::fs::write(count_path(&temp), count_file(5)).unwrap();
    temp.store.create("f", &counter(0), hours(6)).await.unwrap();
    assert!(!present("gone"));
    // 5 - 1 expired = 4, still over 3: "c" (2 h) is the soonest to expire; then "f".
    assert_eq!(
        ["b", "c", "d", "e", "f"].map(present),
        [true, false, true, true, true]
    );
    assert_eq!(temp.store.count().await.unwrap(), 4);

    // cachelib's quirk: an entry that never expires (0) sorts first and goes first. (A
    // count of 4 where there are 5 files: one removal gets it back to the threshold.)
    common::plant(
        &temp,
        "forever",
        0,
        &pickle::dumps(&Value::Map(vec![])).unwrap(),
    );
    std::fs::write(count_path(&temp), count_file(4)).unwrap();
    temp.store.create("g", &counter(0), hours(7)).await.unwrap();
    assert!(!present("forever"));
    assert!(present("b"), "only one entry had to go");
}

#[tokio::test]
async fn json_and_msgpack_sessions_are_the_same_dict_on_disk() {
    let temp = common::temp_store();
    let json = br#"{"user":"ann","n":1}"#;
    let msgpack_bytes = msgpack(&Value::Map(vec![
        (Value::from("user"), Value::from("ann")),
        (Value::from("n"), Value::from(1)),
    ]));
    temp.store.create("json", json, TTL).await.unwrap();
    temp.store
        .create("msgpack", &msgpack_bytes, TTL)
        .await
        .unwrap();
    assert_eq!(
        common::file(&temp, "json").unwrap().1,
        common::file(&temp, "msgpack").unwrap().1
    );
    // Loads give msgpack, whatever was written.
    let loaded = temp.store.load("json").await.unwrap().unwrap().value;
    assert_eq!(loaded, msgpack_bytes);
    // What a JSON writer wrote is still what it expects in compare-and-set.
    assert!(temp
        .store
        .compare_and_set("json", json, br#"{"user":"bob","n":2}"#, TTL)
        .await
        .unwrap());
    assert!(!temp
        .store
        .compare_and_set("json", json, br#"{"user":"eve"}"#, TTL)
        .await
        .unwrap());
}

#[tokio::test]
async fn bytes_that_are_not_a_session_are_kept_behind_a_pickled_none() {
    let temp = common::temp_store();
    temp.store
        .create("raw", b"\xc1 not a session", TTL)
        .await
        .unwrap();
    let (_, payload) = common::file(&temp, "raw").unwrap();
    // Python's pickle.load stops after `None`: Flask-Session sees no session.
    assert_eq!(payload, b"\x80\x05N.\xc1 not a session");
    let loaded = temp.store.load("raw").await.unwrap().unwrap();
    assert_eq!(loaded.value, b"\xc1 not a session");
}

#[tokio::test]
async fn a_pickle_python_wrote_reads_as_msgpack_and_survives_a_write() {
    let temp = common::temp_store();
    // pickle.dumps({"_permanent": True, "user": "ann",
    //   "_flashes": [("message", "Welcome back")], "tags": {3}, "big": 2**100}, 5)
    let python = hex("8005956b000000000000007d94288c0a5f7065726d616e656e7494888c0475736572948c03616e6e948c085f666c6173686573945d948c076d657373616765948c0c57656c636f6d65206261636b948694618c0474616773948f94284b03908c03626967948a0d00000000000000000000000010752e");
    common::plant(&temp, "session:py", u32::MAX, &python);
    let loaded = temp.store.load("session:py").await.unwrap().unwrap().value;
    let Value::Map(entries) = rmpv::decode::read_value(&mut loaded.as_slice()).unwrap() else {
        panic!("not a map");
    };
    let flashes = &entries[2].1;
    let Value::Array(flashes) = flashes else {
        panic!("flashes: {flashes:?}");
    };
    assert_eq!(
        pickle::ext::items(&flashes[0]),
        Some(vec![Value::from("message"), Value::from("Welcome back")])
    );
    // A Rust write of another key keeps the tuple, the set and the big int as they were.
    let mut changed = entries.clone();
    changed.push((Value::from("counter"), Value::from(1)));
    assert!(temp
        .store
        .compare_and_set(
            "session:py",
            &loaded,
            &msgpack(&Value::Map(changed.clone())),
            TTL
        )
        .await
        .unwrap());
    let (_, payload) = common::file(&temp, "session:py").unwrap();
    assert_eq!(pickle::loads(&payload).unwrap(), Value::Map(changed));
}

#[tokio::test]
async fn files_this_store_cannot_read_are_no_session_but_not_overwritten() {
    let temp = common::temp_store();
    // pickle.dumps({"m": markupsafe.Markup("<b>x</b>")}, 5): a class this store does not read.
    let foreign = hex("8005952f000000000000007d948c016d948c0a6d61726b757073616665948c064d61726b75709493948c083c623e783c2f623e9485948194732e");
    common::plant(&temp, "session:markup", u32::MAX, &foreign);
    assert_eq!(temp.store.load("session:markup").await.unwrap(), None);
    assert!(
        !temp
            .store
            .create("session:markup", &session("eve"), TTL)
            .await
            .unwrap(),
        "a live session Rust cannot read was overwritten"
    );
    // Touch looks at the expiry only; the payload stays as Flask wrote it.
    assert!(temp.store.touch("session:markup", TTL).await.unwrap());
    assert_eq!(common::file(&temp, "session:markup").unwrap().1, foreign);
    // Deleting it (a logout through Rust) works.
    temp.store.delete("session:markup").await.unwrap();
    assert!(!temp.store.file_path("session:markup").exists());

    // A file too short for its header is no session, and a write replaces it.
    std::fs::write(temp.store.file_path("short"), b"\x01\x02").unwrap();
    assert_eq!(temp.store.load("short").await.unwrap(), None);
    assert!(temp
        .store
        .create("short", &session("ann"), TTL)
        .await
        .unwrap());
    assert_eq!(
        temp.store.load("short").await.unwrap().unwrap().value,
        session("ann")
    );
}

#[tokio::test]
async fn cleanup_removes_expired_files_and_stale_temporary_files() {
    let temp = common::temp_store();
    temp.store.create("live", &counter(0), TTL).await.unwrap();
    common::plant(
        &temp,
        "expired",
        1,
        &pickle::dumps(&Value::Map(vec![])).unwrap(),
    );
    common::plant(
        &temp,
        "never",
        0,
        &pickle::dumps(&Value::Map(vec![])).unwrap(),
    );
    std::fs::write(count_path(&temp), count_file(3)).unwrap();
    let stale = temp.dir().join("tmpstale000.__wz_cache");
    let fresh = temp.dir().join("tmpfresh000.__wz_cache");
    std::fs::write(&stale, b"").unwrap();
    std::fs::write(&fresh, b"").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();

    assert_eq!(temp.store.load("expired").await.unwrap(), None);
    assert_eq!(temp.store.cleanup().await.unwrap(), 1);
    assert!(!temp.store.file_path("expired").exists());
    assert!(temp.store.file_path("never").exists());
    assert!(temp.store.file_path("live").exists());
    assert!(
        !stale.exists(),
        "a temporary file from two hours ago was kept"
    );
    assert!(fresh.exists(), "a temporary file being written was removed");
    assert_eq!(temp.store.count().await.unwrap(), 2);
}

#[tokio::test]
async fn entries_that_never_expire_load_with_no_expiry() {
    let temp = common::temp_store();
    common::plant(
        &temp,
        "session:k",
        0,
        &pickle::dumps(&Value::Map(vec![])).unwrap(),
    );
    let entry = temp.store.load("session:k").await.unwrap().unwrap();
    assert_eq!(entry.expires_at, None);
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
