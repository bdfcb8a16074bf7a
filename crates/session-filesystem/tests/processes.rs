//! Several processes sharing one directory lose no update.
//!
//! The test re-runs its own test binary as worker processes: with `WORKER_DIR_ENV` set,
//! the same test function acts as a worker running a compare-and-set increment loop;
//! without it, it is the coordinator that starts the workers and checks the total.

mod common;

use session_core::testkit::SeedExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use session_core::SessionStore;
use session_filesystem::FileStore;

const WORKER_DIR_ENV: &str = "SESSION_FILESYSTEM_TEST_WORKER_DIR";
const WORKERS: u32 = 3;
const INCREMENTS: u32 = 40;
const KEY: &str = "session:shared-counter";
const TTL: Duration = Duration::from_secs(300);

#[test]
fn several_processes_lose_no_increment() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match std::env::var_os(WORKER_DIR_ENV) {
        Some(dir) => runtime.block_on(work(FileStore::open(dir).unwrap())),
        None => runtime.block_on(coordinate()),
    }
}

async fn work(store: FileStore) {
    // Two concurrent loops per process, so threads and processes contend at once.
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..INCREMENTS / 2 {
                    common::increment(&store, KEY, TTL).await;
                }
            })
        })
        .collect();
    for task in loops {
        task.await.expect("worker loop");
    }
}

async fn coordinate() {
    let temp = common::temp_store();
    temp.store.put(KEY, b"0", TTL).await.unwrap();
    let exe = std::env::current_exe().expect("path of the test binary");
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "several_processes_lose_no_increment",
                    "--nocapture",
                ])
                .env(WORKER_DIR_ENV, temp.dir())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a worker process")
        })
        .collect();
    for worker in workers {
        let output = tokio::task::spawn_blocking(move || worker.wait_with_output())
            .await
            .unwrap()
            .expect("wait for a worker process");
        assert!(
            output.status.success(),
            "worker failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // Make sure the child really ran the worker, not zero tests.
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("1 passed"), "worker ran no test:\n{stdout}");
    }
    let total = temp.store.load(KEY).await.unwrap().expect("counter").value;
    assert_eq!(total, (WORKERS * INCREMENTS).to_string().into_bytes());
}
