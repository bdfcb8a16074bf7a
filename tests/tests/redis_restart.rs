//! The example app on Redis while Redis restarts: 503 while it is down, full recovery
//! afterwards with the same app and store, no panic. Runs its own `redis-server` on a free
//! port (installed by `cargo xtask services up redis`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use session_core::{SessionConfig, SessionManager};
use session_tests::{AxumClient, TestClient};

struct Server {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Server {
    fn start(port: u16, dir: std::path::PathBuf) -> Server {
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): this test starts its own server to stop and \
                     restart it. `cargo xtask services up redis` installs it natively; with \
                     Docker services, install the binary on the host (apt-get install \
                     redis-server, brew install redis)"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            port,
            dir,
            child: Some(child),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn post_counter(app: &AxumClient, sid: &str) -> (u16, String) {
    let request = http::Request::post("/counter")
        .header("cookie", format!("session={sid}"))
        .body(Bytes::new())
        .unwrap();
    let response = app.send(request).await;
    (
        response.status().as_u16(),
        String::from_utf8_lossy(response.body()).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_with_503_while_redis_is_down_and_recover_after() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("sessions-restart-{port}"));
    let mut server = Server::start(port, dir.clone());

    let store = session_tests::any_store(
        &[
            ("SESSION_TYPE", "redis".into()),
            ("SESSION_REDIS_URL", format!("redis://127.0.0.1:{port}")),
        ],
        "redis",
    )
    .await;
    let manager = SessionManager::from_shared(store, SessionConfig::default());
    let app = AxumClient::new(session_example::app(manager));

    let login = app
        .send(
            http::Request::post("/login?user=ann")
                .body(Bytes::new())
                .unwrap(),
        )
        .await;
    assert_eq!(login.status(), 200);
    let sid = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()["session=".len()..]
        .to_owned();
    assert_eq!(post_counter(&app, &sid).await, (200, "1".to_owned()));

    server.kill();
    for _ in 0..5 {
        let (status, body) = post_counter(&app, &sid).await;
        assert_eq!(status, 503, "while Redis is down");
        assert!(body.is_empty(), "no internal detail in the body: {body:?}");
    }

    // Same port, empty data (no persistence): the app must recover without being rebuilt.
    let _server = Server::start(server.port, dir);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = post_counter(&app, &sid).await;
        if status == 200 {
            // The old session died with the server's memory: a new session starts at 1.
            assert_eq!(body, "1");
            break;
        }
        assert_eq!(
            status, 503,
            "only 503 while reconnecting, got {status} {body}"
        );
        assert!(
            Instant::now() < deadline,
            "the app did not recover within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
