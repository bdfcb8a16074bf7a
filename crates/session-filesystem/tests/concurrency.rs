//! Atomicity across separate `FileStore` handles (separate lock descriptors) in one process.

mod common;

use session_core::testkit::SeedExt as _;
use std::sync::Arc;
use std::time::Duration;

use session_core::SessionStore;
use session_filesystem::FileStore;

const TTL: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_directory_lose_no_increment() {
    let temp = common::temp_store();
    // Two independent opens of the same directory, as two parts of an app might do.
    let first: Arc<dyn SessionStore> = Arc::new(FileStore::open(temp.dir()).unwrap());
    let second: Arc<dyn SessionStore> = Arc::new(FileStore::open(temp.dir()).unwrap());
    first.put("session:counter", b"0", TTL).await.unwrap();

    let (tasks_per_handle, increments) = (4, 25);
    let mut tasks = Vec::new();
    for store in [&first, &second] {
        for _ in 0..tasks_per_handle {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut attempts = 0;
                for _ in 0..increments {
                    attempts += common::increment(&*store, "session:counter", TTL).await;
                }
                attempts
            }));
        }
    }
    let mut attempts = 0;
    for task in tasks {
        attempts += task.await.expect("incrementing task");
    }

    let expected = 2 * tasks_per_handle * increments;
    for store in [&first, &second] {
        let value = store.load("session:counter").await.unwrap().unwrap().value;
        assert_eq!(value, expected.to_string().into_bytes());
    }
    eprintln!("{expected} increments took {attempts} compare-and-set attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_from_two_handles_have_one_winner() {
    let temp = common::temp_store();
    let handles = [
        FileStore::open(temp.dir()).unwrap(),
        FileStore::open(temp.dir()).unwrap(),
    ];
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let store = handles[usize::from(i % 2)].clone();
            tokio::spawn(async move { (i, store.create("session:new", &[i], TTL).await.unwrap()) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (i, created) = task.await.unwrap();
        if created {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = handles[0].load("session:new").await.unwrap().unwrap().value;
    assert_eq!(stored, vec![winners[0]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_racing_writes_keep_exactly_one_copy() {
    // Each round: one task rotates old → new while another increments the old key. Either
    // the rotation sees the value it expects and moves it (then the increment finds nothing
    // to change), or the increment wins and the rotation refuses. Never both, never neither.
    let temp = common::temp_store();
    let store = FileStore::open(temp.dir()).unwrap();
    let other = FileStore::open(temp.dir()).unwrap();
    for round in 0..20 {
        let (old, new) = (format!("session:old{round}"), format!("session:new{round}"));
        store.put(&old, b"1", TTL).await.unwrap();
        let rotate = {
            let (store, old, new) = (store.clone(), old.clone(), new.clone());
            tokio::spawn(async move { store.rotate(&old, b"1", &new, b"1", TTL).await.unwrap() })
        };
        let write = {
            let (other, old) = (other.clone(), old.clone());
            tokio::spawn(async move { other.compare_and_set(&old, b"1", b"2", TTL).await.unwrap() })
        };
        let (rotated, written) = (rotate.await.unwrap(), write.await.unwrap());
        assert!(
            rotated ^ written,
            "round {round}: rotated={rotated} written={written}"
        );
        let old_value = store.load(&old).await.unwrap().map(|e| e.value);
        let new_value = store.load(&new).await.unwrap().map(|e| e.value);
        if rotated {
            assert_eq!((old_value, new_value), (None, Some(b"1".to_vec())));
        } else {
            assert_eq!((old_value, new_value), (Some(b"2".to_vec()), None));
        }
    }
}
