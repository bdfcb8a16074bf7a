//! What core decided is visible: one debug event per finished request. (A test binary of
//! its own: tracing caches per call site whether anyone listens, which a test without a
//! subscriber running alongside would spoil.)

use std::io::Write;
use std::sync::{Arc, Mutex};

use session_core::{MemoryStore, SessionConfig, SessionManager};

/// Everything the subscriber writes, for assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

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
fn every_finished_request_says_what_core_decided() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        current_thread().block_on(async {
            let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
            requests(&manager).await;
        })
    });
    let decisions: Vec<String> = captured
        .lines()
        .into_iter()
        .filter(|line| line.contains("session finished"))
        .collect();
    let expected = [
        "decision=\"nothing\" reason=\"the handler never used the session\" attempts=0",
        "decision=\"create\" reason=\"a new session\" attempts=1",
        "decision=\"nothing\" reason=\"unchanged; more than SESSION_REFRESH_THRESHOLD",
        "decision=\"compare-and-set\" reason=\"the handler changed the session\" attempts=1",
        "decision=\"rotate\" reason=\"regenerate() gave the session a new id\" attempts=1",
        "decision=\"delete\" reason=\"the handler emptied the session (logout)\"",
    ];
    assert_eq!(decisions.len(), expected.len(), "{:#?}", captured.lines());
    for (line, expected) in decisions.iter().zip(expected) {
        assert!(line.contains(expected), "{line}\nexpected {expected}");
        assert!(line.contains("DEBUG"), "{line}");
    }
    // The bytes written are said; a session id never is.
    assert!(decisions[1].contains("bytes="));
    assert!(captured
        .lines()
        .iter()
        .all(|line| !line.contains("session=")));
}
