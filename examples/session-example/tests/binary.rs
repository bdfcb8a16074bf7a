//! The `session-example` binary: configuration errors and a real start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn example() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-example"));
    command
        .env_clear()
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

/// Invalid settings stop the program with a message naming the setting.
#[test]
fn configuration_errors_name_the_option_and_exit_non_zero() {
    for (session_type, name, value) in [
        ("memory", "SESSION_ID_LENGTH", "0"),
        ("memory", "SESSION_PERMANENT", "maybe"),
        ("memory", "SESSION_TYPE", "bogus"),
        ("redis", "SESSION_REDIS_URL", "http://127.0.0.1:1"),
        ("memory", "PORT", "http"),
        // Used to start and then kill the connection at the first login (a panic on
        // SystemTime + ttl); now refused at start-up, naming the option.
        (
            "memory",
            "PERMANENT_SESSION_LIFETIME",
            "18446744073709551615",
        ),
        ("memory", "SESSION_ID_LENGTH", "8"),
        ("memory", "SESSION_COOKIE_SAMESITE", "None"),
        // Memcached keys cannot hold a space: refused at start-up, not on every write.
        ("memcached", "SESSION_KEY_PREFIX", "my app:"),
    ] {
        let output = example()
            .env("SESSION_TYPE", session_type)
            .env(name, value)
            .output()
            .expect("running session-example");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}={value} was accepted");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

/// The binary serves the app with the filesystem store by default.
#[test]
fn serves_with_the_filesystem_store_by_default() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = temp.path().join("sessions");
    let mut child = example()
        .env("PORT", "0")
        .env("SESSION_FILE_DIR", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting session-example");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut address = None;
    let mut line = String::new();
    while stdout.read_line(&mut line).expect("reading the log") > 0 {
        if let Some(rest) = line.split("listening on http://").nth(1) {
            address = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
        line.clear();
    }
    let result = std::panic::catch_unwind(|| {
        let address = address.expect("the server never said where it listens");
        let mut stream = TcpStream::connect(&address).expect("connecting");
        stream
            .write_all(
                b"PUT /data/name HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
                  Connection: close\r\n\r\n\"ann\"",
            )
            .expect("sending");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("reading");
        let response = response.to_ascii_lowercase();
        assert!(response.starts_with("http/1.1 200"), "{response}");
        assert!(response.contains("\r\nset-cookie: session="), "{response}");
        assert!(
            std::fs::read_dir(&dir)
                .expect("the session directory")
                .count()
                > 0,
            "nothing was written to {}",
            dir.display()
        );
    });
    // Stop the child this test started, pass or fail.
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
