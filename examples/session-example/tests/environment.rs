//! Flask-Session's environment names, from the variable to the HTTP response of the
//! example binary: each test runs the binary with and without the option, so it fails
//! when the option stops reaching the response.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// One running example process on a filesystem store in its own temporary directory;
/// killed when dropped, pass or fail.
struct Example {
    child: Child,
    address: String,
    /// The log lines written before the server listened (start-up warnings).
    startup_log: String,
    dir: tempfile::TempDir,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(vars: &[(&str, &str)]) -> Example {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-example"));
    command
        .env_clear()
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env("PORT", "0")
        .env("SESSION_TYPE", "filesystem")
        // A folder the store creates itself (0700): it refuses tempdir's 0755.
        .env("SESSION_FILE_DIR", dir.path().join("sessions"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("starting session-example");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut startup_log = String::new();
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
            return Example {
                child,
                address,
                startup_log,
                dir,
            };
        }
        startup_log.push_str(&line);
        line.clear();
    }
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .map(|mut e| e.read_to_string(&mut stderr));
    let _ = child.kill();
    let _ = child.wait();
    panic!("session-example did not start with {vars:?}: {stderr}");
}

/// An HTTP response: the status, every `Set-Cookie` header's value, the body.
struct Response {
    status: u16,
    set_cookies: Vec<String>,
    body: String,
}

impl Response {
    /// The one `Set-Cookie` header, which the test expects.
    fn set_cookie(&self) -> &str {
        assert_eq!(self.set_cookies.len(), 1, "{:?}", self.set_cookies);
        &self.set_cookies[0]
    }

    /// The `name=value` part of the one `Set-Cookie` header.
    fn cookie(&self) -> String {
        self.set_cookie()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The cookie's attribute names, lower-cased (`httponly`, `path=/`, …).
    fn attributes(&self) -> Vec<String> {
        self.set_cookie()
            .split(';')
            .skip(1)
            .map(|a| a.trim().to_ascii_lowercase())
            .collect()
    }
}

impl Example {
    fn request(&self, method: &str, path: &str, cookie: Option<&str>, body: &str) -> Response {
        let mut stream = TcpStream::connect(&self.address).expect("connecting to the example");
        let cookie = cookie
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Content-Length: {}\r\n\
             Content-Type: application/json\r\nAccept: application/json\r\n\
             Connection: close\r\n\r\n{body}",
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
        let set_cookies = head
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("set-cookie")
                    .then(|| value.trim().to_owned())
            })
            .collect();
        Response {
            status,
            set_cookies,
            body: body.to_owned(),
        }
    }

    /// Stores `"ann"` under `name` in a new session: the response that made it.
    fn login(&self) -> Response {
        let response = self.request("PUT", "/data/name", None, "\"ann\"");
        assert_eq!(response.status, 200, "{}", response.body);
        response
    }
}

/// The attributes of the cookie a new session gets with `vars` set.
fn cookie_attributes(vars: &[(&str, &str)]) -> Vec<String> {
    start(vars).login().attributes()
}

#[test]
fn session_cookie_domain_sets_the_domain() {
    assert!(!cookie_attributes(&[])
        .iter()
        .any(|a| a.starts_with("domain=")));
    let attributes = cookie_attributes(&[("SESSION_COOKIE_DOMAIN", "example.test")]);
    assert!(
        attributes.iter().any(|a| a == "domain=example.test"),
        "{attributes:?}"
    );
}

#[test]
fn session_cookie_path_and_application_root_set_the_path() {
    assert!(cookie_attributes(&[]).contains(&"path=/".to_owned()));
    for (vars, path) in [
        (&[("SESSION_COOKIE_PATH", "/app")][..], "path=/app"),
        // Flask's rule: APPLICATION_ROOT when SESSION_COOKIE_PATH is unset.
        (&[("APPLICATION_ROOT", "/root")][..], "path=/root"),
        (
            &[
                ("APPLICATION_ROOT", "/root"),
                ("SESSION_COOKIE_PATH", "/app"),
            ][..],
            "path=/app",
        ),
    ] {
        let attributes = cookie_attributes(vars);
        assert!(
            attributes.contains(&path.to_owned()),
            "{vars:?}: {attributes:?}"
        );
    }
}

#[test]
fn session_cookie_httponly_false_lets_scripts_read_the_cookie() {
    assert!(cookie_attributes(&[]).contains(&"httponly".to_owned()));
    let attributes = cookie_attributes(&[("SESSION_COOKIE_HTTPONLY", "false")]);
    assert!(
        !attributes.contains(&"httponly".to_owned()),
        "{attributes:?}"
    );
}

#[test]
fn session_cookie_partitioned_adds_the_attribute() {
    let secure = [("SESSION_COOKIE_SECURE", "true")];
    assert!(!cookie_attributes(&secure).contains(&"partitioned".to_owned()));
    let attributes = cookie_attributes(&[
        ("SESSION_COOKIE_SECURE", "true"),
        ("SESSION_COOKIE_PARTITIONED", "true"),
    ]);
    assert!(
        attributes.contains(&"partitioned".to_owned()),
        "{attributes:?}"
    );
    assert!(attributes.contains(&"secure".to_owned()), "{attributes:?}");
}

#[test]
fn session_refresh_each_request_false_sends_the_cookie_only_when_modified() {
    // Default (true): a permanent session's cookie is sent again on every request (with
    // SESSION_REFRESH_THRESHOLD=1, Flask's behaviour; ours skips early refreshes).
    let example = start(&[("SESSION_REFRESH_THRESHOLD", "1")]);
    let cookie = example.login().cookie();
    let read = example.request("GET", "/", Some(&cookie), "");
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.set_cookies.len(), 1, "refreshed by default");

    let example = start(&[
        ("SESSION_REFRESH_THRESHOLD", "1"),
        ("SESSION_REFRESH_EACH_REQUEST", "false"),
    ]);
    let cookie = example.login().cookie();
    let read = example.request("GET", "/", Some(&cookie), "");
    assert_eq!(read.status, 200, "{}", read.body);
    assert!(read.body.contains("ann"), "{}", read.body);
    assert!(read.set_cookies.is_empty(), "{:?}", read.set_cookies);
    // A modification still sends it.
    let write = example.request("PUT", "/data/name", Some(&cookie), "\"bob\"");
    assert_eq!(write.set_cookies.len(), 1, "{}", write.body);
}

#[test]
fn session_id_length_reaches_new_ids() {
    // base64url without padding: 32 bytes are 43 characters, 48 bytes 64.
    for (vars, characters) in [
        (&[][..], 43),
        (&[("SESSION_ID_LENGTH", "48")][..], 64),
        (&[("SESSION_ID_LENGTH", "24")][..], 32),
    ] {
        let cookie = start(vars).login().cookie();
        let id = cookie.strip_prefix("session=").expect("the session cookie");
        assert_eq!(id.len(), characters, "{vars:?}: {id}");
    }
}

/// Whether any file under `dir` holds `needle`.
fn some_file_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir)
        .expect("reading the store's directory")
        .flatten()
        .any(|entry| {
            let path = entry.path();
            if path.is_dir() {
                return some_file_contains(&path, needle);
            }
            std::fs::read(&path)
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
}

#[test]
fn session_serialization_format_json_stores_json() {
    let needle = br#""name":"ann""#;
    let example = start(&[]);
    let cookie = example.login().cookie();
    assert!(
        !some_file_contains(example.dir.path(), needle),
        "msgpack by default"
    );

    let example = start(&[("SESSION_SERIALIZATION_FORMAT", "json")]);
    let cookie_json = example.login().cookie();
    assert!(
        some_file_contains(example.dir.path(), needle),
        "no JSON in {}",
        example.dir.path().display()
    );
    // And it reads back.
    let read = example.request("GET", "/", Some(&cookie_json), "");
    assert!(read.body.contains("ann"), "{}", read.body);
    assert_ne!(cookie, cookie_json);
}

#[test]
fn an_unread_session_variable_is_a_start_up_warning_naming_it() {
    let example = start(&[("SESSION_COOKIE_SECUR", "true")]);
    let log = &example.startup_log;
    assert!(
        log.contains("SESSION_COOKIE_SECUR is set but nothing reads it")
            && log.contains("did you mean SESSION_COOKIE_SECURE?"),
        "{log}"
    );
    assert!(log.contains("WARN"), "{log}");
    // Names that are read are not warned about.
    let example = start(&[("SESSION_COOKIE_SECURE", "false")]);
    assert!(
        !example.startup_log.contains("nothing reads it"),
        "{}",
        example.startup_log
    );
}
