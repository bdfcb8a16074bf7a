//! Several processes of the example on one Redis, with the cache tier on (the default):
//! overlapping writes through different processes lose nothing, and a write acknowledged
//! by one process is read by every other once its invalidation arrives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PROCESSES: usize = 3;
/// How long another process may take to see a write (the invalidation's trip through
/// Redis) before the test fails; measured in microseconds on loopback.
const DEADLINE: Duration = Duration::from_secs(5);

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// One running example process; killed when dropped, pass or fail.
struct Example {
    child: Child,
    address: String,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(prefix: &str) -> Example {
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-example"))
        .env_clear()
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env("PORT", "0")
        .env("SESSION_TYPE", "redis")
        .env("SESSION_REDIS_URL", redis_url())
        .env("SESSION_KEY_PREFIX", prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting session-example");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while stdout.read_line(&mut line).expect("reading the log") > 0 {
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let address = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            // Keep draining the log so the child never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
            return Example { child, address };
        }
        line.clear();
    }
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .map(|mut e| e.read_to_string(&mut stderr));
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "session-example did not start: {stderr}\n(is Redis up? `cargo xtask services up redis`, \
         and export REDIS_URL from `cargo xtask services env`)"
    );
}

/// One HTTP/1.1 request on a fresh connection; the status, the `Set-Cookie` value's
/// `name=value` part if any, and the body.
fn request(
    address: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (u16, Option<String>, String) {
    let mut stream = TcpStream::connect(address).expect("connecting to the example");
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Content-Length: {}\r\n\
         Content-Type: application/json\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("sending");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reading");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let set_cookie = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("set-cookie").then(|| {
            value
                .trim()
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
    });
    (status, set_cookie, body.to_owned())
}

/// The session as JSON, read through `address`.
fn session_json(address: &str, cookie: &str) -> serde_json::Value {
    let (status, _, body) = request(address, "GET", "/", Some(cookie), "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("GET / answers JSON")
}

/// Reads through `address` until `field` equals `expected`; how long that took.
fn wait_until_seen(
    address: &str,
    cookie: &str,
    field: &str,
    expected: &serde_json::Value,
) -> Duration {
    let started = Instant::now();
    loop {
        let seen = session_json(address, cookie)[field].clone();
        if &seen == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{address} still reads {field}={seen} {DEADLINE:?} after {expected} was written"
        );
        std::thread::yield_now();
    }
}

#[test]
fn processes_on_one_redis_lose_no_update_and_read_each_others_writes() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let prefix = format!("example-processes-{nanos}:");
    let examples: Vec<Example> = (0..PROCESSES).map(|_| start(&prefix)).collect();
    let addresses: Arc<Vec<String>> =
        Arc::new(examples.iter().map(|e| e.address.clone()).collect());

    let (status, cookie, body) = request(&addresses[0], "POST", "/login?user=ann", None, "");
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.expect("login sets the session cookie");
    // Every process reads the session once, so that each one holds it in its cache before
    // the overlapping writes start: a stale entry must not lose an update.
    for address in addresses.iter() {
        assert_eq!(session_json(address, &cookie)["user"], "ann");
    }

    // Overlapping increments, spread over the processes. Each answer is the value stored by
    // that request's write, so with no lost update the answers are exactly 1..=total.
    let (threads, per_thread) = (6, 25);
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let (addresses, cookie) = (Arc::clone(&addresses), cookie.clone());
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| {
                        let address = &addresses[(thread + i) % addresses.len()];
                        let (status, _, body) =
                            request(address, "POST", "/counter", Some(&cookie), "");
                        assert_eq!(status, 200, "{body}");
                        body.trim().parse::<i64>().expect("the counter's value")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut answers: Vec<i64> = workers
        .into_iter()
        .flat_map(|worker| worker.join().expect("a worker thread"))
        .collect();
    answers.sort_unstable();
    let total = i64::try_from(threads * per_thread).expect("a small count");
    assert_eq!(
        answers,
        (1..=total).collect::<Vec<_>>(),
        "an increment was lost"
    );

    // Every process, its cache included, ends up reading the final value.
    for address in addresses.iter() {
        let waited = wait_until_seen(address, &cookie, "counter", &total.into());
        eprintln!("{address} read counter={total} after {waited:?}");
    }

    // A write acknowledged by one process is read by the next one, each of which holds the
    // session in its cache.
    let mut slowest = Duration::ZERO;
    for round in 0..30_usize {
        let writer = &addresses[round % PROCESSES];
        let reader = &addresses[(round + 1) % PROCESSES];
        let value = serde_json::Value::from(round);
        let (status, _, body) = request(
            writer,
            "PUT",
            "/data/step",
            Some(&cookie),
            &value.to_string(),
        );
        assert_eq!(status, 200, "{body}");
        slowest = slowest.max(wait_until_seen(reader, &cookie, "step", &value));
    }
    eprintln!("slowest cross-process visibility of a write: {slowest:?}");

    // A logout in one process ends the session in every other.
    let (status, _, body) = request(&addresses[2], "POST", "/logout", Some(&cookie), "");
    assert_eq!(status, 200, "{body}");
    for address in addresses.iter() {
        wait_until_seen(address, &cookie, "user", &serde_json::Value::Null);
    }
    drop(examples);
}
