//! Write batching (`src/batch.rs`) against a private `redis-server`, whose command
//! statistics count only this test's calls: concurrent compare-and-sets of different keys
//! on one connection go out as few script calls, each write gets its own key's answer,
//! a cancelled write holds up no other, the writer starts again on a new runtime when
//! the runtime it ran on has shut down, and on current-thread runtimes each thread's
//! writes have a writer of their own.

mod common;

use std::ops::Range;
use std::task::Poll;
use std::time::{Duration, Instant};

use fred::interfaces::{ClientLike, KeysInterface, ListInterface};
use fred::types::{ClusterHash, CustomCommand, Expiration, Value};
use session_core::{SessionStore, StoreError};
use session_redis::RedisStore;
use tokio::task::JoinSet;

const TTL: Duration = Duration::from_secs(300);

/// A store with one connection, so that every write goes through the same writer.
async fn store_for(server: &common::PrivateRedis) -> RedisStore {
    RedisStore::builder()
        .url(server.url())
        .pool_size(1)
        .connect()
        .await
        .expect("connect to the private server")
}

/// Calls and failed calls of `command` (lower case, as `INFO commandstats` names it) that
/// Redis has counted so far.
async fn command_counts(store: &RedisStore, command: &str) -> (u64, u64) {
    let info: String = store
        .pool()
        .next()
        .info(Some(fred::types::InfoKind::CommandStats))
        .await
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|stats| {
            let field = |name: &str| {
                stats
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|value| value.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            (field("calls"), field("failed_calls"))
        })
        .unwrap_or((0, 0))
}

/// Calls of `command` that Redis has counted so far, from scripts too.
async fn command_calls(store: &RedisStore, command: &str) -> u64 {
    command_counts(store, command).await.0
}

/// `EVALSHA` and `EVAL` as counted by Redis so far: calls, and completed runs (calls that
/// found their script), so that a batch or single write runs once whether or not the
/// server's script cache had the script.
async fn script_counts(store: &RedisStore) -> (u64, u64) {
    let (evalsha, evalsha_failed) = command_counts(store, "evalsha").await;
    let (eval, eval_failed) = command_counts(store, "eval").await;
    (
        evalsha + eval,
        evalsha + eval - evalsha_failed - eval_failed,
    )
}

/// Script calls Redis has run so far (`EVALSHA` and its `EVAL` fallback).
async fn script_calls(store: &RedisStore) -> u64 {
    script_counts(store).await.0
}

/// Script runs Redis has completed so far (see [`script_counts`]).
async fn script_runs(store: &RedisStore) -> u64 {
    script_counts(store).await.1
}

/// Stores `old-{i}` under `{prefix}{i}` for each `i` in `range`.
async fn seed(store: &RedisStore, prefix: &str, range: Range<usize>) {
    for i in range {
        set(
            store,
            &format!("{prefix}{i}"),
            format!("old-{i}").as_bytes(),
        )
        .await;
    }
}

async fn set(store: &RedisStore, key: &str, value: &[u8]) {
    let _: () = store
        .pool()
        .set(key, value, Some(Expiration::EX(300)), None, false)
        .await
        .expect("SET");
}

async fn get(store: &RedisStore, key: &str) -> Option<Vec<u8>> {
    let value: Option<fred::bytes::Bytes> = store.pool().get(key).await.expect("GET");
    value.map(|bytes| bytes.to_vec())
}

/// Spawns the compare-and-sets of keys `{prefix}{i}` from `old-{i}` to `new-{i}` for each
/// `i` in `range`; none runs before the caller waits.
fn spawn_writes(
    store: &RedisStore,
    prefix: &str,
    range: Range<usize>,
) -> JoinSet<(usize, Result<bool, StoreError>)> {
    let mut writes = JoinSet::new();
    for i in range {
        let store = store.clone();
        let key = format!("{prefix}{i}");
        writes.spawn(async move {
            let old = format!("old-{i}");
            let new = format!("new-{i}");
            let answer = store
                .compare_and_set(&key, old.as_bytes(), new.as_bytes(), TTL)
                .await;
            (i, answer)
        });
    }
    writes
}

/// Every write's answer, in key order.
async fn answers(
    mut writes: JoinSet<(usize, Result<bool, StoreError>)>,
) -> Vec<Result<bool, StoreError>> {
    let mut answers = Vec::new();
    while let Some(joined) = writes.join_next().await {
        answers.push(joined.expect("write task"));
    }
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

/// [`spawn_writes`], then whether each was written, in key order; fails on any error.
async fn concurrent_writes(store: &RedisStore, prefix: &str, range: Range<usize>) -> Vec<bool> {
    answers(spawn_writes(store, prefix, range))
        .await
        .into_iter()
        .map(|answer| answer.expect("compare-and-set"))
        .collect()
}

#[tokio::test]
async fn concurrent_writes_on_one_connection_go_out_in_batches() {
    let server = common::PrivateRedis::start().await;
    let store = store_for(&server).await;
    seed(&store, "session:batch", 0..64).await;
    let before = script_calls(&store).await;
    let answers = concurrent_writes(&store, "session:batch", 0..64).await;
    let calls = script_calls(&store).await - before;

    assert!(answers.iter().all(|written| *written), "{answers:?}");
    for i in 0..64 {
        assert_eq!(
            get(&store, &format!("session:batch{i}")).await,
            Some(format!("new-{i}").into_bytes())
        );
    }
    // The first write finds the connection idle and goes out alone; the 63 that overlap
    // it go in batches of at most 8: 9 script calls, and at most as many `EVAL` fallbacks
    // while the new server's script cache is empty. One call per write would be 64.
    assert!(
        (9..=18).contains(&calls),
        "{calls} script calls for 64 writes"
    );
}

#[tokio::test]
async fn each_write_of_a_batch_gets_its_own_keys_answer() {
    let server = common::PrivateRedis::start().await;
    writes_get_their_own_keys_answers(&store_for(&server).await).await;
}

/// A server without `GETEX` (Redis before 6.2, or an ACL that refuses it): the scripts
/// compare with `GET` instead and answer as on any other server.
#[tokio::test]
async fn without_getex_the_scripts_compare_with_get() {
    let server =
        common::PrivateRedis::start_with(&["--rename-command", "GETEX", "getex-renamed-by-test"])
            .await;
    let store = store_for(&server).await;
    writes_get_their_own_keys_answers(&store).await;
    assert_eq!(command_calls(&store, "getex").await, 0);
    assert!(command_calls(&store, "get").await >= 8);
    // A write that goes out alone uses the single-key script, which falls back too.
    set(&store, "session:alone", b"old").await;
    assert!(store
        .compare_and_set("session:alone", b"old", b"new", TTL)
        .await
        .expect("compare-and-set"));
    assert!(!store
        .compare_and_set("session:alone", b"old", b"newer", TTL)
        .await
        .expect("compare-and-set"));
    assert_eq!(get(&store, "session:alone").await, Some(b"new".to_vec()));
}

/// Redis tracks the keys of read commands, and before 7.2 a read inside a script tracks
/// every key the script was given. The scripts compare with `GETEX` (a write command to
/// Redis, so tracked by no one) and track what they wrote with one `EXISTS` per call.
#[tokio::test]
async fn a_batch_tracks_its_keys_with_one_read() {
    let server = common::PrivateRedis::start().await;
    let store = store_for(&server).await;
    seed(&store, "session:track", 0..8).await;
    let (gets, getexes, existses) = (
        command_calls(&store, "get").await,
        command_calls(&store, "getex").await,
        command_calls(&store, "exists").await,
    );
    let runs = script_runs(&store).await;
    let answers = concurrent_writes(&store, "session:track", 0..8).await;
    assert_eq!(answers, vec![true; 8]);
    let runs = script_runs(&store).await - runs;
    assert_eq!(command_calls(&store, "get").await - gets, 0);
    assert_eq!(command_calls(&store, "getex").await - getexes, 8);
    // One `EXISTS` per script run (two or three: the first write alone, the rest batched),
    // where the former scripts made one per key.
    let existses = command_calls(&store, "exists").await - existses;
    assert_eq!(existses, runs);
    assert!(runs < 8, "{runs} script runs for 8 writes");
}

/// Every key written in a batch stays tracked for the writing connection: another
/// connection's write of any of them is reported to it (client tracking's NOLOOP hides
/// the batch's own writes). Each wait is for the invalidation itself.
#[tokio::test]
async fn another_connections_write_of_a_batched_key_is_reported() {
    let server = common::PrivateRedis::start().await;
    let (here, there) = (store_for(&server).await, store_for(&server).await);
    seed(&here, "session:seen", 0..8).await;
    let mut watch = here.invalidations().expect("tracking is on").watch();
    let before = script_runs(&here).await;
    assert_eq!(
        concurrent_writes(&here, "session:seen", 0..8).await,
        vec![true; 8]
    );
    assert!(
        script_runs(&here).await - before < 8,
        "the writes were not batched"
    );
    watch.borrow_and_update();
    for i in 0..8 {
        set(&there, &format!("session:seen{i}"), b"from elsewhere").await;
        tokio::time::timeout(Duration::from_secs(10), watch.changed())
            .await
            .unwrap_or_else(|_| panic!("no invalidation for key {i} within 10 s"))
            .expect("the feed closed");
        let seen = *watch.borrow_and_update();
        assert!(seen > 0, "{seen}");
    }
}

/// Writes of eight keys in different states, one alone and seven batched, each answered
/// for its own key: written, stale, missing, or the error of a key of another type.
async fn writes_get_their_own_keys_answers(store: &RedisStore) {
    // 0, 1, 2: hold the expected bytes; 3: holds other bytes (another writer came first);
    // 4: missing; 5: a list, which GET refuses; 6, 7: hold the expected bytes.
    for i in [0, 1, 2, 6, 7] {
        set(
            store,
            &format!("session:mixed{i}"),
            format!("old-{i}").as_bytes(),
        )
        .await;
    }
    set(store, "session:mixed3", b"someone else's").await;
    let _: i64 = store.pool().rpush("session:mixed5", "x").await.unwrap();

    let before = script_calls(store).await;
    let answers = answers(spawn_writes(store, "session:mixed", 0..8)).await;
    let calls = script_calls(store).await - before;

    for i in [0, 1, 2, 6, 7] {
        assert!(matches!(answers[i], Ok(true)), "{i}: {:?}", answers[i]);
        assert_eq!(
            get(store, &format!("session:mixed{i}")).await,
            Some(format!("new-{i}").into_bytes())
        );
    }
    assert!(matches!(answers[3], Ok(false)), "{:?}", answers[3]);
    assert_eq!(
        get(store, "session:mixed3").await,
        Some(b"someone else's".to_vec())
    );
    assert!(matches!(answers[4], Ok(false)), "{:?}", answers[4]);
    assert_eq!(get(store, "session:mixed4").await, None);
    match &answers[5] {
        Err(StoreError::Backend(error)) => {
            assert!(error.to_string().contains("WRONGTYPE"), "{error}")
        }
        other => panic!("a list under a session key gave {other:?}"),
    }
    let list: Vec<String> = store.pool().lrange("session:mixed5", 0, -1).await.unwrap();
    assert_eq!(list, ["x"]);
    // Write 0 alone, then one batch of the other seven (each perhaps with its `EVAL`
    // fallback on the new server).
    assert!(
        (2..=4).contains(&calls),
        "{calls} script calls for 8 writes"
    );
}

#[tokio::test]
async fn a_cancelled_write_holds_up_no_other_and_still_goes_out() {
    let server = common::PrivateRedis::start().await;
    let store = store_for(&server).await;
    seed(&store, "session:cancel", 0..10).await;
    set(&store, "session:cancel-first", b"old").await;
    // A write in flight first, so that the next ones overlap it and are queued for the
    // writer. On this single-threaded runtime it stays in flight until this task waits.
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .compare_and_set("session:cancel-first", b"old", b"new", TTL)
                .await
        })
    };
    tokio::task::yield_now().await;
    // Writes 0 to 4 are queued (polled once) and then dropped, as a request cancelled or
    // timed out while it waits is.
    for i in 0..5 {
        let key = format!("session:cancel{i}");
        let old = format!("old-{i}");
        let new = format!("new-{i}");
        let mut write = store.compare_and_set(&key, old.as_bytes(), new.as_bytes(), TTL);
        let polled = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        assert!(polled.is_pending(), "{polled:?}");
        drop(write);
    }
    let writes = spawn_writes(&store, "session:cancel", 5..10);
    let answered = tokio::time::timeout(Duration::from_secs(10), answers(writes)).await;
    let answered = answered.expect("writes behind cancelled ones were not answered");
    assert!(
        answered.iter().all(|answer| matches!(answer, Ok(true))),
        "{answered:?}"
    );
    assert!(first.await.expect("write task").expect("compare-and-set"));
    // The cancelled writes were queued, so they reach Redis too.
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..5 {
        let key = format!("session:cancel{i}");
        while get(&store, &key).await != Some(format!("new-{i}").into_bytes()) {
            assert!(
                Instant::now() < deadline,
                "the cancelled write {i} never reached Redis"
            );
            tokio::task::yield_now().await;
        }
    }
}

/// Has Redis hold write commands (scripts included) for 200 ms, so that the first of the
/// writes made next is still in flight when the others are made. In the test below the
/// store's replies are read on another runtime's thread; without the pause the writes
/// overlapped only until the first reply came back, and in about one run in a hundred
/// neither runtime batched anything.
async fn hold_writes(store: &RedisStore) {
    let pause = CustomCommand::new_static("CLIENT", ClusterHash::FirstKey, false);
    let _: Value = store
        .pool()
        .next()
        .custom(
            pause,
            vec![Value::from("PAUSE"), 200.into(), "WRITE".into()],
        )
        .await
        .expect("CLIENT PAUSE");
}

/// A private server and a store whose connection tasks run on a runtime of their own (the
/// returned one, which must outlive them), with `old-{i}` stored under `{prefix}{i}` for
/// `i` in 0..16.
fn store_on_a_runtime_of_its_own(
    prefix: &str,
) -> (tokio::runtime::Runtime, common::PrivateRedis, RedisStore) {
    let home = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (server, store) = home.block_on(async {
        let server = common::PrivateRedis::start().await;
        let store = store_for(&server).await;
        seed(&store, prefix, 0..16).await;
        (server, store)
    });
    (home, server, store)
}

/// A runtime like an actix-web worker's.
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_writer_starts_again_when_its_runtime_has_shut_down() {
    let (home, server, store) = store_on_a_runtime_of_its_own("session:rt");
    // Overlapping writes start the writer on a runtime that then shuts down with it.
    let first = current_thread_runtime();
    let answers = first.block_on(async {
        hold_writes(&store).await;
        concurrent_writes(&store, "session:rt", 0..3).await
    });
    assert_eq!(answers, vec![true; 3]);
    drop(first);

    // The next writes, on another runtime, start a new writer there and are batched again.
    let second = current_thread_runtime();
    let (answers, runs, counts) = second.block_on(async {
        let before = script_runs(&store).await;
        hold_writes(&store).await;
        let answers = concurrent_writes(&store, "session:rt", 3..16).await;
        let counts = [
            command_counts(&store, "evalsha").await,
            command_counts(&store, "eval").await,
        ];
        (answers, script_runs(&store).await - before, counts)
    });
    assert_eq!(answers, vec![true; 13]);
    // Without a new writer every write would go out on its own: 13 script runs. With it
    // they are batched (8 + 5 when the runtime runs them in spawn order; how the first
    // runtime's wake-ups from the store's own runtime interleaved decides whether the
    // scripts were cached, hence runs rather than calls).
    assert!(
        runs < 13,
        "{runs} script runs for 13 writes; (calls, failed) since the server started: \
         EVALSHA {:?}, EVAL {:?}",
        counts[0],
        counts[1]
    );
    drop(second);
    home.block_on(async move {
        drop(store);
        drop(server);
    });
}

#[test]
fn a_worker_blocked_in_a_handler_holds_up_no_other_workers_writes() {
    // As in actix-web: the store lives on a runtime of its own, and each worker thread
    // runs a current-thread runtime.
    let (home, server, store) = store_on_a_runtime_of_its_own("session:worker");
    // The first worker's overlapping writes start a writer on its runtime; then one of
    // its handlers blocks the thread (the runtime stays alive, but nothing drives it).
    let (wrote, first_answers) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let first_store = store.clone();
    let first = std::thread::spawn(move || {
        current_thread_runtime().block_on(async {
            hold_writes(&first_store).await;
            let answers = concurrent_writes(&first_store, "session:worker", 0..3).await;
            wrote.send(answers).expect("the test waits for the answers");
            released.recv().expect("the test releases the worker");
        })
    });
    let answers = first_answers.recv().expect("the first worker's answers");
    assert_eq!(answers, vec![true; 3]);

    // The second worker's writes are batched on its own runtime, without waiting for the
    // first worker.
    let (answers, runs) = current_thread_runtime().block_on(async {
        let before = script_runs(&store).await;
        hold_writes(&store).await;
        let writes = concurrent_writes(&store, "session:worker", 3..16);
        let answers = tokio::time::timeout(Duration::from_secs(10), writes).await;
        (answers, script_runs(&store).await - before)
    });
    release.send(()).expect("the first worker waits");
    first.join().expect("the first worker");
    let answers = answers.expect("the second worker's writes waited 10 s for the blocked one");
    assert_eq!(answers, vec![true; 13]);
    assert!(
        runs < 13,
        "{runs} script runs for 13 writes: none was batched"
    );
    home.block_on(async move {
        drop(store);
        drop(server);
    });
}

#[tokio::test]
async fn large_values_are_written_alone_and_intact() {
    let server = common::PrivateRedis::start().await;
    let store = store_for(&server).await;
    let value = |i: usize, round: u8| vec![round.wrapping_add(i as u8); 300 * 1024];
    for i in 0..4 {
        set(&store, &format!("session:large{i}"), &value(i, 0)).await;
    }
    let before = script_calls(&store).await;
    let mut writes = JoinSet::new();
    for i in 0..4 {
        let store = store.clone();
        writes.spawn(async move {
            let key = format!("session:large{i}");
            store
                .compare_and_set(&key, &value(i, 0), &value(i, 1), TTL)
                .await
        });
    }
    while let Some(joined) = writes.join_next().await {
        assert!(joined.expect("write task").expect("compare-and-set"));
    }
    let calls = script_calls(&store).await - before;
    for i in 0..4 {
        assert_eq!(
            get(&store, &format!("session:large{i}")).await,
            Some(value(i, 1))
        );
    }
    // Values above the batching limit go out one script call each (each perhaps with its
    // `EVAL` fallback on the new server).
    assert!(
        (4..=8).contains(&calls),
        "{calls} script calls for 4 large writes"
    );
}

#[tokio::test]
async fn without_write_batching_each_write_is_a_call_of_its_own() {
    let server = common::PrivateRedis::start().await;
    let store = RedisStore::builder()
        .url(server.url())
        .pool_size(1)
        .write_batching(false)
        .connect()
        .await
        .expect("connect to the private server");
    seed(&store, "session:alone", 0..16).await;
    let before = script_calls(&store).await;
    let answers = concurrent_writes(&store, "session:alone", 0..16).await;
    let calls = script_calls(&store).await - before;
    assert!(answers.iter().all(|written| *written), "{answers:?}");
    // One call per write, each perhaps with its `EVAL` fallback on the new server.
    assert!(
        (16..=32).contains(&calls),
        "{calls} script calls for 16 writes"
    );
}
