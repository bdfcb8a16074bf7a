//! The reply parser driven by arbitrary bytes, for the fuzz targets in the repository's
//! `fuzz/` directory.
//!
//! Not part of the supported API: compiled only with the `fuzzing` feature (and in this
//! crate's unit tests), hidden from the docs, changed without notice.

use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::protocol::{self, Connection, Error};

/// The commands whose replies [`parse_reply`] reads, by the index it takes.
pub const COMMANDS: [&str; 9] = [
    "touch", "delete", "md", "mg", "gets", "stats", "version", "add", "cas",
];

/// The key every command is sent for.
pub const KEY: &str = "k";

/// How a reply was classified when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The reply ended early.
    Io,
    /// An `ERROR`, `CLIENT_ERROR` or `SERVER_ERROR` line.
    Server,
    /// Anything else this client does not understand.
    Protocol,
}

/// What reading one reply did.
#[derive(Debug)]
pub struct Parsed {
    /// The command, from [`COMMANDS`].
    pub command: &'static str,
    /// On success, the length of the value read (`mg` and `gets` hits), if any.
    pub outcome: Result<Option<usize>, Failure>,
    /// Whether the pool would hand the connection out again.
    pub reusable: bool,
    /// The largest value the reply was allowed to announce.
    pub value_limit: usize,
}

/// Sends `COMMANDS[command % COMMANDS.len()]` for [`KEY`] on a connection whose server
/// answers `reply` and then closes, and reads the reply as the store would with a value
/// limit of `max_value_bytes`.
pub fn parse_reply(command: u8, reply: &[u8], max_value_bytes: usize) -> Parsed {
    let name = COMMANDS[usize::from(command) % COMMANDS.len()];
    let mut connection = Connection::new(Replay { reply });
    let outcome = run_ready(run(&mut connection, name, max_value_bytes))
        // The replayed stream never waits, so a pending command cannot happen; treat it as
        // a connection that stalled.
        .unwrap_or(Err(Failure::Io));
    Parsed {
        command: name,
        outcome,
        reusable: connection.is_reusable(),
        value_limit: protocol::reply_value_limit(max_value_bytes),
    }
}

async fn run(
    connection: &mut Connection<Replay<'_>>,
    command: &str,
    max_value_bytes: usize,
) -> Result<Option<usize>, Failure> {
    let result = match command {
        "touch" => connection.touch(KEY, 60).await.map(|_| None),
        "delete" => connection.delete(KEY).await.map(|_| None),
        "md" => connection.delete_if_unchanged(KEY, 7).await.map(|_| None),
        "mg" => connection
            .meta_get(KEY, max_value_bytes)
            .await
            .map(|item| item.map(|item| item.value.len())),
        "gets" => connection
            .gets(KEY, max_value_bytes)
            .await
            .map(|item| item.map(|(value, _)| value.len())),
        "stats" => connection.stats(Some("settings")).await.map(|_| None),
        "version" => connection.version().await.map(|_| None),
        "add" => connection.add(KEY, b"v", 60).await.map(|_| None),
        _ => connection.cas(KEY, b"v", 60, 7).await.map(|_| None),
    };
    result.map_err(|error| match error {
        Error::Io(_) => Failure::Io,
        Error::Server(_) => Failure::Server,
        Error::Protocol(_) => Failure::Protocol,
    })
}

/// Polls `future` once: everything it reads is already in memory.
fn run_ready<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut context) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// A server that has sent `reply` and closed; what is written to it is dropped.
struct Replay<'a> {
    reply: &'a [u8],
}

impl AsyncRead for Replay<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reply).poll_read(context, buf)
    }
}

impl AsyncWrite for Replay<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(name: &str) -> u8 {
        COMMANDS.iter().position(|c| *c == name).unwrap() as u8
    }

    #[test]
    fn replies_are_read_without_a_runtime() {
        let hit = parse_reply(index("mg"), b"VA 3 t10 f0\r\nabc\r\n", 1000);
        assert_eq!(hit.outcome, Ok(Some(3)));
        assert!(hit.reusable);
        let hit = parse_reply(index("gets"), b"VALUE k 0 2 9\r\nab\r\nEND\r\n", 1000);
        assert_eq!(hit.outcome, Ok(Some(2)));
        assert!(hit.reusable);
        let touched = parse_reply(index("touch"), b"TOUCHED\r\n", 1000);
        assert_eq!((touched.outcome, touched.reusable), (Ok(None), true));
        let version = parse_reply(index("version"), b"VERSION 1.6.21\r\n", 1000);
        assert_eq!(version.outcome, Ok(None));
        assert_eq!(
            parse_reply(index("cas"), b"EXISTS\r\n", 1).outcome,
            Ok(None)
        );
        assert_eq!(
            parse_reply(index("stats"), b"ERROR\r\n", 1).outcome,
            Err(Failure::Server)
        );
    }

    #[test]
    fn huge_announced_values_are_protocol_errors() {
        for command in ["mg", "gets"] {
            let reply: &[u8] = if command == "mg" {
                b"VA 4294967296 f0\r\n"
            } else {
                b"VALUE k 0 4294967296 1\r\n"
            };
            let parsed = parse_reply(index(command), reply, 1000);
            assert_eq!(parsed.outcome, Err(Failure::Protocol), "{command}");
            assert!(!parsed.reusable);
            assert_eq!(parsed.value_limit, 1024 * 1024);
        }
    }

    #[test]
    fn a_short_reply_is_an_io_failure() {
        let parsed = parse_reply(index("delete"), b"DELE", 1);
        assert_eq!(parsed.outcome, Err(Failure::Io));
        assert!(!parsed.reusable);
    }
}
