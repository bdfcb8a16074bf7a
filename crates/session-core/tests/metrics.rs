//! Metrics through the `metrics` facade: loads, saves, touches, store errors, latency.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use session_core::{MemoryStore, SessionConfig, SessionManager};

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One request per decision; returns the cookie's id.
async fn requests(manager: &SessionManager) {
    let untouched = manager.open(None);
    manager.finish(&untouched).await.unwrap();

    let new = manager.open(None);
    new.insert("user", "ann").await.unwrap();
    let cookie = manager.finish(&new).await.unwrap().set_cookie.unwrap();
    let id = cookie.split(';').next().unwrap().split_once('=').unwrap().1;

    let reading = manager.open(Some(id));
    reading.get::<String>("user").await.unwrap();
    manager.finish(&reading).await.unwrap();

    let changing = manager.open(Some(id));
    changing.insert("theme", "dark").await.unwrap();
    manager.finish(&changing).await.unwrap();

    let rotating = manager.open(Some(id));
    rotating.regenerate().await.unwrap();
    let cookie = manager.finish(&rotating).await.unwrap().set_cookie.unwrap();
    let id = cookie.split(';').next().unwrap().split_once('=').unwrap().1;

    let leaving = manager.open(Some(id));
    leaving.clear().await.unwrap();
    manager.finish(&leaving).await.unwrap();
}

#[test]
fn metrics_count_loads_saves_touches_and_store_errors() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        current_thread().block_on(async {
            let config = SessionConfig::builder()
                .refresh_threshold(1.0)
                .cache_max_staleness(Duration::from_secs(60))
                .build()
                .unwrap();
            let manager = SessionManager::new(MemoryStore::new(), config);
            requests(&manager).await;
        })
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, label: Option<(&str, &str)>| -> u64 {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| key.key().name() == name)
            .filter(|(key, _, _, _)| {
                label
                    .is_none_or(|(k, v)| key.key().labels().any(|l| l.key() == k && l.value() == v))
            })
            .map(|(_, _, _, value)| match value {
                DebugValue::Counter(n) => *n,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(
        counter("sessions_saves_total", Some(("action", "create"))),
        1
    );
    assert_eq!(
        counter("sessions_saves_total", Some(("action", "compare_and_set"))),
        1
    );
    assert_eq!(
        counter("sessions_saves_total", Some(("action", "rotate"))),
        1
    );
    assert_eq!(
        counter("sessions_saves_total", Some(("action", "delete"))),
        1
    );
    assert_eq!(counter("sessions_touches_total", None), 1);
    assert!(counter("sessions_loads_total", Some(("source", "cache"))) >= 1);
    assert_eq!(counter("sessions_store_errors_total", None), 0);
    // Store latency, one sample per store call, labelled with the call.
    let samples = |operation: &str| -> usize {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| key.key().name() == "sessions_store_duration_seconds")
            .filter(|(key, _, _, _)| {
                key.key()
                    .labels()
                    .any(|l| l.key() == "operation" && l.value() == operation)
            })
            .map(|(_, _, _, value)| match value {
                DebugValue::Histogram(samples) => samples.len(),
                _ => 0,
            })
            .sum()
    };
    assert_eq!(samples("create"), 1);
    assert_eq!(samples("compare_and_set"), 1);
    assert_eq!(samples("rotate"), 1);
    assert_eq!(samples("touch"), 1);
    assert_eq!(samples("delete"), 1);
    // Only the calls these requests make are labelled: a wrong label shows up here.
    let mut operations: Vec<&str> = snapshot
        .iter()
        .filter(|(key, _, _, _)| key.key().name() == "sessions_store_duration_seconds")
        .flat_map(|(key, _, _, _)| key.key().labels())
        .filter(|label| label.key() == "operation")
        .map(|label| label.value())
        .collect();
    operations.sort_unstable();
    assert_eq!(
        operations,
        ["compare_and_set", "create", "delete", "rotate", "touch"]
    );
}
