//! The `session-example-actix` binary: configuration errors and a real start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};

fn example() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-example-actix"));
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
    for (name, value) in [
        ("SESSION_ID_LENGTH", "0"),
        ("SESSION_PERMANENT", "maybe"),
        ("SESSION_TYPE", "bogus"),
        ("PORT", "http"),
        ("HOST", "not a host"),
        ("PERMANENT_SESSION_LIFETIME", "18446744073709551615"),
        ("SESSION_ID_LENGTH", "8"),
        ("SESSION_COOKIE_SAMESITE", "None"),
    ] {
        let output = example()
            .env("SESSION_TYPE", "memory")
            .env(name, value)
            .output()
            .expect("running session-example-actix");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}={value} was accepted");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

/// The address the server says it listens on, read from its log, and the log (kept open
/// so that the server can go on writing to it).
fn listening_address(child: &mut Child) -> (Option<String>, Option<BufReader<ChildStdout>>) {
    let Some(stdout) = child.stdout.take() else {
        return (None, None);
    };
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let address = rest.split_whitespace().next().map(str::to_owned);
            return (address, Some(stdout));
        }
        line.clear();
    }
    (None, Some(stdout))
}

fn exchange(address: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).expect("connecting");
    stream.write_all(request).expect("sending");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reading");
    response.to_ascii_lowercase()
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
        .expect("starting session-example-actix");
    let (address, _log) = listening_address(&mut child);
    let result = std::panic::catch_unwind(|| {
        let address = address.expect("the server never said where it listens");
        let response = exchange(
            &address,
            b"PUT /data/name HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
              Connection: close\r\n\r\n\"ann\"",
        );
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
        let response = exchange(
            &address,
            b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        assert!(response.starts_with("http/1.1 200"), "{response}");
        assert!(!response.contains("set-cookie"), "{response}");
    });
    // Stop the child this test started, pass or fail.
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
