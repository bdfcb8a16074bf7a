//! One memcached connection: the commands memcache-async 0.10 provides, plus the ones a
//! session store needs that it lacks.
//!
//! memcache-async's [`Protocol`] owns its stream, so this module owns the buffered stream
//! instead and lends it to a short-lived [`Protocol`] for each of memcache-async's commands
//! (`add`, `cas`, `version`). That works because memcached answers only what it is
//! asked: with one request in flight per connection, nothing is ever left in a reader's
//! buffer when the command returns.
//!
//! Added here, in the same text protocol (each is a candidate for memcache-async itself):
//!
//! | command | why |
//! |---|---|
//! | `set` waiting for `STORED` | memcache-async sends `set … noreply`, so a refused or lost write (`SERVER_ERROR object too large`, out of memory, a dead connection) would go unnoticed |
//! | `delete` waiting for `DELETED`/`NOT_FOUND` | same: memcache-async's `delete` is `noreply`; a logout must not silently fail |
//! | `touch` | missing; the cheap expiry extension of unchanged sessions |
//! | meta get `mg <key> v t f` | value, flags and remaining TTL in one round trip, so the store can report when a session expires |
//! | meta delete `md <key> C<cas>` | delete only if unchanged since `gets`; makes id rotation safe against concurrent writers |
//! | `stats [group]` | reads `item_size_max` so values can be checked against the server's limit |
//! | `gets` (replacing memcache-async's) | memcache-async allocates whatever size the server announces (`VALUE k 0 4294967296 1` is a 4 GiB allocation); this one refuses sizes over [`reply_value_limit`] unread, and checks the key and the closing `END` |
//!
//! Every reply carrying a value (`gets`, meta get) is bounded the same way: a size over the
//! limit is a protocol error before anything is allocated, and the connection is not reused.
//!
//! Every command marks the connection out of sync until its reply has been read in full,
//! so a caller that gives up mid-command (a timeout, a dropped request future) leaves a
//! connection that the pool discards instead of reading a stale reply as the next answer.

use std::fmt;
use std::io;

use memcache_async::ascii::Protocol;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};

use crate::pool::ITEM_OVERHEAD;

/// Longest reply line accepted (memcached's are far shorter; this bounds memory use).
const MAX_LINE: u64 = 8 * 1024;

/// memcached's default item size limit (`-I 1m`).
const DEFAULT_ITEM_SIZE_MAX: usize = 1024 * 1024;

/// The largest value a reply may announce to a store that writes values of up to
/// `max_value_bytes`: that plus [`ITEM_OVERHEAD`] (what a server with exactly that item size
/// limit can hold), and never less than memcached's default item size, so entries written
/// by other clients (Flask-Session has no value limit) stay readable whatever the write
/// limit. Larger announcements are refused before anything is allocated.
pub(crate) fn reply_value_limit(max_value_bytes: usize) -> usize {
    max_value_bytes
        .saturating_add(ITEM_OVERHEAD)
        .max(DEFAULT_ITEM_SIZE_MAX)
}

/// The buffered stream under a connection: reads and writes are both buffered, so a
/// command goes out in one write when it is flushed.
pub(crate) type Stream<S> = BufReader<BufWriter<S>>;

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Error {
    /// The connection failed: refused, reset, closed mid-reply.
    Io(io::Error),
    /// The server answered `ERROR`, `CLIENT_ERROR …` or `SERVER_ERROR …`.
    Server(String),
    /// The server answered something this client does not understand.
    Protocol(String),
}

impl Error {
    /// The server refused a value as larger than its item size limit.
    pub(crate) fn is_too_large(&self) -> bool {
        matches!(self, Error::Server(line) if line.contains("too large"))
    }

    fn protocol(what: impl Into<String>) -> Error {
        Error::Protocol(what.into())
    }

    fn closed() -> Error {
        Error::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed by the server",
        ))
    }

    /// Sorts an error from memcache-async: its server replies arrive as
    /// `ErrorKind::Other` carrying the reply line, its parse failures as `InvalidData`.
    fn from_memcache_async(error: io::Error) -> Error {
        if error.raw_os_error().is_some() {
            return Error::Io(error);
        }
        match error.kind() {
            io::ErrorKind::Other => {
                let line = error.to_string();
                let line = line.trim_end();
                if is_error_line(line) {
                    Error::Server(line.to_owned())
                } else {
                    Error::Protocol(format!("unexpected reply {line:?}"))
                }
            }
            io::ErrorKind::InvalidData => Error::Protocol(format!("malformed reply: {error}")),
            _ => Error::Io(error),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(error) => write!(f, "connection failed: {error}"),
            Error::Server(line) => write!(f, "server answered {line:?}"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(error) => Some(error),
            _ => None,
        }
    }
}

fn is_error_line(line: &str) -> bool {
    line == "ERROR"
        || line.starts_with("ERROR ")
        || line.starts_with("CLIENT_ERROR")
        || line.starts_with("SERVER_ERROR")
}

/// An item read with meta get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MetaItem {
    /// The stored bytes.
    pub(crate) value: Vec<u8>,
    /// The client flags stored with the item.
    pub(crate) flags: u32,
    /// Seconds left before the item expires; `None` when it never expires.
    pub(crate) ttl: Option<u64>,
}

/// What `md <key> C<cas>` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CasDelete {
    /// The item was unchanged and is gone now.
    Deleted,
    /// The item changed since its CAS token was read; it was kept.
    Changed,
    /// There was no item.
    Missing,
}

/// A memcached connection over any byte stream (a `TcpStream` in the store, an in-memory
/// pipe in the unit tests).
pub(crate) struct Connection<S> {
    io: Stream<S>,
    line: Vec<u8>,
    in_sync: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a connected stream.
    pub(crate) fn new(stream: S) -> Connection<S> {
        Connection {
            io: BufReader::new(BufWriter::new(stream)),
            line: Vec::with_capacity(128),
            in_sync: true,
        }
    }

    /// The underlying stream.
    pub(crate) fn stream(&self) -> &S {
        self.io.get_ref().get_ref()
    }

    /// Whether the last command completed and left nothing unread, so the next reply read
    /// belongs to the next command.
    pub(crate) fn is_reusable(&self) -> bool {
        self.in_sync && self.io.buffer().is_empty() && self.io.get_ref().buffer().is_empty()
    }

    /// memcache-async's protocol on this connection, for one command.
    fn ascii(&mut self) -> Protocol<&mut Stream<S>> {
        Protocol::new(&mut self.io)
    }

    fn begin(&mut self) {
        self.in_sync = false;
    }

    fn done<T>(&mut self, value: T) -> Result<T, Error> {
        self.in_sync = true;
        Ok(value)
    }

    async fn send(&mut self, parts: &[&[u8]]) -> Result<(), Error> {
        for part in parts {
            self.io.write_all(part).await.map_err(Error::Io)?;
        }
        self.io.flush().await.map_err(Error::Io)
    }

    /// Reads one reply line and returns it without its `\r\n`.
    async fn read_line(&mut self) -> Result<&str, Error> {
        self.line.clear();
        let read = (&mut self.io)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)
            .await
            .map_err(Error::Io)?;
        if read == 0 {
            return Err(Error::closed());
        }
        let Some(line) = self.line.strip_suffix(b"\r\n") else {
            return Err(if self.line.len() as u64 >= MAX_LINE {
                Error::protocol("reply line too long")
            } else {
                Error::closed()
            });
        };
        std::str::from_utf8(line).map_err(|_| Error::protocol("reply line is not UTF-8"))
    }

    /// Reads a reply line that must be one of `expected`; an error line or anything else
    /// is an error.
    async fn read_status(&mut self, expected: &[&'static str]) -> Result<&'static str, Error> {
        let line = self.read_line().await?;
        if let Some(status) = expected.iter().find(|status| **status == line) {
            return Ok(*status);
        }
        Err(if is_error_line(line) {
            Error::Server(line.to_owned())
        } else {
            Error::protocol(format!("unexpected reply {line:?}"))
        })
    }

    /// `add` (memcache-async): `false` when the key already holds a live item.
    pub(crate) async fn add(
        &mut self,
        key: &str,
        value: &[u8],
        exptime: u32,
    ) -> Result<bool, Error> {
        self.begin();
        match self.ascii().add(key, value, exptime).await {
            Ok(()) => self.done(true),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => self.done(false),
            Err(error) => Err(Error::from_memcache_async(error)),
        }
    }

    /// `gets`: the value and its CAS token, `None` on a miss. A value larger than
    /// [`reply_value_limit`]`(max_value_bytes)` is a protocol error, never an allocation.
    pub(crate) async fn gets(
        &mut self,
        key: &str,
        max_value_bytes: usize,
    ) -> Result<Option<(Vec<u8>, u64)>, Error> {
        self.begin();
        self.send(&[b"gets ", key.as_bytes(), b"\r\n"]).await?;
        let (size, cas) = {
            let line = self.read_line().await?;
            if line == "END" {
                return self.done(None);
            }
            if is_error_line(line) {
                return Err(Error::Server(line.to_owned()));
            }
            parse_value_header(line, key)?
        };
        let value = self.read_value(size, max_value_bytes).await?;
        // Not `read_status`: that quotes the line, and another `VALUE` line holds a key.
        if self.read_line().await? != "END" {
            return Err(Error::protocol("gets reply not closed by END"));
        }
        self.done(Some((value, cas)))
    }

    /// `cas` (memcache-async): `false` when the item changed or is gone.
    pub(crate) async fn cas(
        &mut self,
        key: &str,
        value: &[u8],
        exptime: u32,
        cas: u64,
    ) -> Result<bool, Error> {
        self.begin();
        match self.ascii().cas(key, value, cas, exptime).await {
            Ok(stored) => self.done(stored),
            // memcache-async 0.10.1 looks for "NOT FOUND" (with a space), so memcached's
            // "NOT_FOUND" reaches us as an error carrying the line.
            Err(error)
                if error.kind() == io::ErrorKind::Other
                    && error.raw_os_error().is_none()
                    && error.to_string().trim_end() == "NOT_FOUND" =>
            {
                self.done(false)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => self.done(false),
            Err(error) => Err(Error::from_memcache_async(error)),
        }
    }

    /// `version` (memcache-async).
    pub(crate) async fn version(&mut self) -> Result<String, Error> {
        self.begin();
        match self.ascii().version().await {
            Ok(version) => self.done(version),
            Err(error) => Err(Error::from_memcache_async(error)),
        }
    }

    /// `touch`: `false` when there is no live item.
    pub(crate) async fn touch(&mut self, key: &str, exptime: u32) -> Result<bool, Error> {
        self.begin();
        let command = format!("touch {key} {exptime}\r\n");
        self.send(&[command.as_bytes()]).await?;
        let touched = self.read_status(&["TOUCHED", "NOT_FOUND"]).await? == "TOUCHED";
        self.done(touched)
    }

    /// `delete`, waiting for the reply: `false` when there was no item.
    pub(crate) async fn delete(&mut self, key: &str) -> Result<bool, Error> {
        self.begin();
        self.send(&[b"delete ", key.as_bytes(), b"\r\n"]).await?;
        let deleted = self.read_status(&["DELETED", "NOT_FOUND"]).await? == "DELETED";
        self.done(deleted)
    }

    /// Meta delete with a CAS check: `md <key> C<cas>`.
    pub(crate) async fn delete_if_unchanged(
        &mut self,
        key: &str,
        cas: u64,
    ) -> Result<CasDelete, Error> {
        self.begin();
        let command = format!("md {key} C{cas}\r\n");
        self.send(&[command.as_bytes()]).await?;
        let outcome = match self.read_status(&["HD", "EX", "NF"]).await? {
            "HD" => CasDelete::Deleted,
            "EX" => CasDelete::Changed,
            _ => CasDelete::Missing,
        };
        self.done(outcome)
    }

    /// Meta get `mg <key> v t f`: value, flags and remaining TTL in one round trip. A value
    /// larger than [`reply_value_limit`]`(max_value_bytes)` is a protocol error, never an
    /// allocation.
    pub(crate) async fn meta_get(
        &mut self,
        key: &str,
        max_value_bytes: usize,
    ) -> Result<Option<MetaItem>, Error> {
        self.begin();
        self.send(&[b"mg ", key.as_bytes(), b" v t f\r\n"]).await?;
        let (size, flags, ttl) = {
            let line = self.read_line().await?;
            if line == "EN" {
                return self.done(None);
            }
            if is_error_line(line) {
                return Err(Error::Server(line.to_owned()));
            }
            parse_meta_value_header(line)?
        };
        let value = self.read_value(size, max_value_bytes).await?;
        self.done(Some(MetaItem { value, flags, ttl }))
    }

    /// Reads a data block of `size` bytes and its `\r\n`, after checking `size` against
    /// [`reply_value_limit`]: the size comes from the server, so it is not trusted with an
    /// allocation until then.
    async fn read_value(&mut self, size: usize, max_value_bytes: usize) -> Result<Vec<u8>, Error> {
        let limit = reply_value_limit(max_value_bytes);
        if size > limit {
            return Err(Error::protocol(format!(
                "reply announces a value of {size} bytes, over the limit of {limit}"
            )));
        }
        let mut value = vec![0; size];
        self.io.read_exact(&mut value).await.map_err(Error::Io)?;
        let mut end = [0u8; 2];
        self.io.read_exact(&mut end).await.map_err(Error::Io)?;
        if &end != b"\r\n" {
            return Err(Error::protocol("value not followed by \\r\\n"));
        }
        Ok(value)
    }

    /// `stats` or `stats <group>`: the `STAT name value` lines, in order.
    pub(crate) async fn stats(
        &mut self,
        group: Option<&str>,
    ) -> Result<Vec<(String, String)>, Error> {
        self.begin();
        match group {
            Some(group) => self.send(&[b"stats ", group.as_bytes(), b"\r\n"]).await?,
            None => self.send(&[b"stats\r\n"]).await?,
        }
        let mut stats = Vec::new();
        loop {
            let line = self.read_line().await?;
            if line == "END" {
                break;
            }
            if is_error_line(line) {
                // A stats request carries no data, so an error line is its whole reply.
                let error = Error::Server(line.to_owned());
                self.in_sync = true;
                return Err(error);
            }
            let mut parts = line.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("STAT"), Some(name), Some(value)) => {
                    stats.push((name.to_owned(), value.to_owned()));
                }
                _ => return Err(Error::protocol(format!("unexpected stats line {line:?}"))),
            }
        }
        self.done(stats)
    }
}

/// Parses `VALUE <key> <flags> <bytes> <cas>` as answered to `gets <key>`: the size and the
/// CAS token. Another key means the reply belongs to another command. The line is not
/// quoted in errors: it holds the key, which holds a session id.
fn parse_value_header(line: &str, key: &str) -> Result<(usize, u64), Error> {
    let mut tokens = line.split(' ');
    let header = (
        tokens.next(),
        tokens.next(),
        tokens.next().and_then(|flags| flags.parse::<u32>().ok()),
        tokens.next().and_then(|size| size.parse::<usize>().ok()),
        tokens.next().and_then(|cas| cas.parse::<u64>().ok()),
        tokens.next(),
    );
    match header {
        (Some("VALUE"), Some(got), Some(_flags), Some(size), Some(cas), None) if got == key => {
            Ok((size, cas))
        }
        (Some("VALUE"), Some(got), ..) if got != key => {
            Err(Error::protocol("gets reply is for another key"))
        }
        _ => Err(Error::protocol("malformed gets reply header")),
    }
}

/// Parses `VA <size> <flags>*` as answered to `mg <key> v t f`.
fn parse_meta_value_header(line: &str) -> Result<(usize, u32, Option<u64>), Error> {
    let malformed = || Error::protocol(format!("unexpected meta get reply {line:?}"));
    let mut tokens = line.split(' ');
    if tokens.next() != Some("VA") {
        return Err(malformed());
    }
    let size = tokens
        .next()
        .and_then(|size| size.parse().ok())
        .ok_or_else(malformed)?;
    let (mut flags, mut ttl) = (0, None);
    for token in tokens {
        match token.split_at_checked(1) {
            Some(("f", value)) => flags = value.parse().map_err(|_| malformed())?,
            Some(("t", "-1")) => ttl = None,
            Some(("t", value)) => ttl = Some(value.parse().map_err(|_| malformed())?),
            // Flags this client did not ask for are ignored, as the protocol allows.
            _ => {}
        }
    }
    Ok((size, flags, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, DuplexStream};
    use tokio::task::JoinHandle;

    /// The store's default write limit.
    const MAX: usize = crate::DEFAULT_MAX_VALUE_BYTES;

    /// A connection to a scripted server that, like memcached, answers one request at a
    /// time: for each step it reads exactly the expected request, checks it, then replies.
    fn serve(script: &[(&[u8], &[u8])]) -> (Connection<DuplexStream>, JoinHandle<()>) {
        let (client, mut server) = duplex(4 << 20);
        let script: Vec<(Vec<u8>, Vec<u8>)> = script
            .iter()
            .map(|(request, reply)| (request.to_vec(), reply.to_vec()))
            .collect();
        let task = tokio::spawn(async move {
            for (request, reply) in script {
                let mut received = vec![0; request.len()];
                server.read_exact(&mut received).await.expect("request");
                assert_eq!(
                    String::from_utf8_lossy(&received),
                    String::from_utf8_lossy(&request)
                );
                server.write_all(&reply).await.expect("reply");
            }
        });
        (Connection::new(client), task)
    }

    #[tokio::test]
    async fn touch_waits_for_its_reply() {
        let (mut c, server) = serve(&[(b"touch k 60\r\n", b"TOUCHED\r\n")]);
        assert!(c.touch("k", 60).await.unwrap());
        assert!(c.is_reusable());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn server_errors_are_reported() {
        let (mut c, _server) = serve(&[(
            b"touch k 60\r\n",
            b"SERVER_ERROR object too large for cache\r\n",
        )]);
        let error = c.touch("k", 60).await.unwrap_err();
        assert!(error.is_too_large(), "{error}");
        assert!(!c.is_reusable());
        let (mut c, _server) = serve(&[(
            b"touch k 60\r\n",
            b"SERVER_ERROR out of memory storing object\r\n",
        )]);
        let error = c.touch("k", 60).await.unwrap_err();
        assert!(matches!(error, Error::Server(_)) && !error.is_too_large());
    }

    #[tokio::test]
    async fn a_closed_connection_is_an_io_error() {
        let (client, server) = duplex(64);
        drop(server);
        let mut c = Connection::new(client);
        assert!(matches!(c.touch("k", 1).await, Err(Error::Io(_))));
        // Closed in the middle of a reply.
        let (mut c, server) = serve(&[(b"touch k 1\r\n", b"TOUC")]);
        let result = c.touch("k", 1).await;
        server.await.unwrap();
        assert!(matches!(result, Err(Error::Io(_))), "{result:?}");
        assert!(!c.is_reusable());
    }

    #[tokio::test]
    async fn add_reports_whether_it_stored() {
        let (mut c, server) = serve(&[
            (b"add k 0 5 3\r\none\r\n", b"STORED\r\n"),
            (b"add k 0 5 3\r\ntwo\r\n", b"NOT_STORED\r\n"),
        ]);
        assert!(c.add("k", b"one", 5).await.unwrap());
        assert!(!c.add("k", b"two", 5).await.unwrap());
        assert!(c.is_reusable());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn gets_and_cas() {
        let (mut c, server) = serve(&[
            (b"gets k\r\n", b"VALUE k 0 2 41\r\nv1\r\nEND\r\n"),
            (b"cas k 0 9 2 41\r\nv2\r\n", b"STORED\r\n"),
            (b"gets k\r\n", b"END\r\n"),
            (b"cas k 0 9 2 41\r\nv3\r\n", b"EXISTS\r\n"),
            (b"cas k 0 9 2 41\r\nv3\r\n", b"NOT_FOUND\r\n"),
        ]);
        assert_eq!(c.gets("k", MAX).await.unwrap(), Some((b"v1".to_vec(), 41)));
        assert!(c.cas("k", b"v2", 9, 41).await.unwrap());
        assert_eq!(c.gets("k", MAX).await.unwrap(), None);
        assert!(!c.cas("k", b"v3", 9, 41).await.unwrap(), "EXISTS");
        assert!(!c.cas("k", b"v3", 9, 41).await.unwrap(), "NOT_FOUND");
        assert!(c.is_reusable());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn touch_and_delete() {
        let (mut c, server) = serve(&[
            (b"touch k 2000000000\r\n", b"TOUCHED\r\n"),
            (b"touch k 10\r\n", b"NOT_FOUND\r\n"),
            (b"delete k\r\n", b"DELETED\r\n"),
            (b"delete k\r\n", b"NOT_FOUND\r\n"),
        ]);
        assert!(c.touch("k", 2_000_000_000).await.unwrap());
        assert!(!c.touch("k", 10).await.unwrap());
        assert!(c.delete("k").await.unwrap());
        assert!(!c.delete("k").await.unwrap());
        assert!(c.is_reusable());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn delete_if_unchanged() {
        let (mut c, server) = serve(&[
            (b"md k C7\r\n", b"HD\r\n"),
            (b"md k C7\r\n", b"EX\r\n"),
            (b"md k C7\r\n", b"NF\r\n"),
        ]);
        assert_eq!(
            c.delete_if_unchanged("k", 7).await.unwrap(),
            CasDelete::Deleted
        );
        assert_eq!(
            c.delete_if_unchanged("k", 7).await.unwrap(),
            CasDelete::Changed
        );
        assert_eq!(
            c.delete_if_unchanged("k", 7).await.unwrap(),
            CasDelete::Missing
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn meta_get_reads_value_flags_and_ttl() {
        let (mut c, server) = serve(&[
            (
                b"mg session:a v t f\r\n",
                b"VA 4 t2678400 f0\r\n\x81\xa1a\x01\r\n",
            ),
            (b"mg session:b v t f\r\n", b"EN\r\n"),
            (b"mg session:c v t f\r\n", b"VA 0 t-1 f3 k\r\n\r\n"),
        ]);
        assert_eq!(
            c.meta_get("session:a", MAX).await.unwrap(),
            Some(MetaItem {
                value: b"\x81\xa1a\x01".to_vec(),
                flags: 0,
                ttl: Some(2_678_400)
            })
        );
        assert_eq!(c.meta_get("session:b", MAX).await.unwrap(), None);
        assert_eq!(
            c.meta_get("session:c", MAX).await.unwrap(),
            Some(MetaItem {
                value: Vec::new(),
                flags: 3,
                ttl: None
            })
        );
        assert!(c.is_reusable());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn meta_get_rejects_garbage() {
        for reply in [
            &b"VALUE k 0 1\r\nx\r\nEND\r\n"[..],
            b"VA x t1\r\n",
            b"VA 1 tz\r\nx\r\n",
            b"VA 1\r\nxyz",
        ] {
            let (mut c, _server) = serve(&[(b"mg k v t f\r\n", reply)]);
            let error = c.meta_get("k", MAX).await.unwrap_err();
            assert!(matches!(error, Error::Protocol(_)), "{reply:?}: {error}");
            assert!(!c.is_reusable());
        }
        let (mut c, _server) = serve(&[(
            b"mg k v t f\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
        )]);
        assert!(matches!(c.meta_get("k", MAX).await, Err(Error::Server(_))));
    }

    #[tokio::test]
    async fn overlong_reply_lines_are_refused() {
        let mut reply = vec![b'X'; (MAX_LINE + 10) as usize];
        reply.extend_from_slice(b"\r\n");
        let (mut c, _server) = serve(&[(b"touch k 1\r\n", &reply)]);
        assert!(matches!(c.touch("k", 1).await, Err(Error::Protocol(_))));
    }

    #[tokio::test]
    async fn stats_lines() {
        let (mut c, server) = serve(&[
            (
                b"stats settings\r\n",
                b"STAT item_size_max 1048576\r\nSTAT evictions on\r\nEND\r\n",
            ),
            (b"stats nonsense\r\n", b"ERROR\r\n"),
        ]);
        let stats = c.stats(Some("settings")).await.unwrap();
        assert_eq!(
            stats,
            vec![
                ("item_size_max".to_owned(), "1048576".to_owned()),
                ("evictions".to_owned(), "on".to_owned())
            ]
        );
        assert!(matches!(
            c.stats(Some("nonsense")).await,
            Err(Error::Server(_))
        ));
        assert!(c.is_reusable(), "an error line is the whole reply to stats");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn version_and_server_errors_from_memcache_async() {
        let (mut c, server) = serve(&[
            (b"version\r\n", b"VERSION 1.6.18\r\n"),
            (b"add k 0 1 1\r\nv\r\n", b"SERVER_ERROR busy\r\n"),
        ]);
        assert_eq!(c.version().await.unwrap(), "1.6.18");
        assert!(
            matches!(c.add("k", b"v", 1).await, Err(Error::Server(line)) if line == "SERVER_ERROR busy")
        );
        assert!(!c.is_reusable());
        server.await.unwrap();
    }

    /// A command abandoned while waiting for its reply leaves the connection marked, so the
    /// pool never hands it out to read that reply as the answer to another command.
    #[tokio::test]
    async fn an_abandoned_command_leaves_the_connection_unusable() {
        let (client, _server) = duplex(1024);
        let mut c = Connection::new(client);
        tokio::select! {
            biased;
            _ = c.meta_get("k", MAX) => panic!("no reply was sent"),
            _ = std::future::ready(()) => {}
        }
        assert!(!c.is_reusable());
    }

    /// A server announcing a huge value gets a protocol error before anything is allocated
    /// (before the bound, `vec![0; size]` took 4 GiB here, and `usize::MAX` panicked).
    #[tokio::test]
    async fn announced_sizes_over_the_limit_are_refused_unread() {
        for size in ["4294967296", "18446744073709551615", "1048577"] {
            let reply = format!("VA {size} t60 f0\r\nshort\r\n");
            let (mut c, _server) = serve(&[(b"mg k v t f\r\n", reply.as_bytes())]);
            let error = c.meta_get("k", MAX).await.unwrap_err();
            assert!(matches!(error, Error::Protocol(_)), "mg {size}: {error}");
            assert!(!c.is_reusable());

            let reply = format!("VALUE k 0 {size} 7\r\nshort\r\nEND\r\n");
            let (mut c, _server) = serve(&[(b"gets k\r\n", reply.as_bytes())]);
            let error = c.gets("k", MAX).await.unwrap_err();
            assert!(matches!(error, Error::Protocol(_)), "gets {size}: {error}");
            assert!(!c.is_reusable());
        }
    }

    #[test]
    fn the_reply_limit_follows_the_write_limit_but_never_drops_below_a_default_item() {
        assert_eq!(reply_value_limit(MAX), 1024 * 1024);
        assert_eq!(
            reply_value_limit(1),
            1024 * 1024,
            "other clients' items stay readable"
        );
        assert_eq!(reply_value_limit(2 * 1024 * 1024 - 512), 2 * 1024 * 1024);
        assert_eq!(reply_value_limit(usize::MAX), usize::MAX);
    }

    /// A value right at the limit is read; one byte more is refused.
    #[tokio::test]
    async fn a_value_at_the_limit_is_read() {
        let max = 3 * 1024 * 1024;
        let limit = reply_value_limit(max);
        let mut reply = format!("VA {limit} f0\r\n").into_bytes();
        reply.extend(std::iter::repeat_n(b'x', limit));
        reply.extend_from_slice(b"\r\n");
        let (mut c, server) = serve(&[(b"mg k v t f\r\n", &reply)]);
        let item = c.meta_get("k", max).await.unwrap().expect("an item");
        assert_eq!(item.value.len(), limit);
        assert!(c.is_reusable());
        server.await.unwrap();

        let reply = format!("VALUE k 0 {} 1\r\n", limit + 1);
        let (mut c, _server) = serve(&[(b"gets k\r\n", reply.as_bytes())]);
        assert!(matches!(c.gets("k", max).await, Err(Error::Protocol(_))));
    }

    #[tokio::test]
    async fn gets_rejects_garbage_without_quoting_the_key() {
        for reply in [
            &b"VALUE other 0 1 7\r\nx\r\nEND\r\n"[..],
            b"VALUE k 0 1\r\nx\r\nEND\r\n",
            b"VALUE k 0 1 7 9\r\nx\r\nEND\r\n",
            b"VALUE k x 1 7\r\nx\r\nEND\r\n",
            b"VALUE k 0 -1 7\r\n",
            b"VALUE k 0 1 7\r\nxy\r\nEND\r\n",
            b"VALUE k 0 1 7\r\nx\r\nVALUE k 0 1 7\r\n",
            b"STORED\r\n",
        ] {
            let (mut c, _server) = serve(&[(b"gets k\r\n", reply)]);
            let error = c.gets("k", MAX).await.unwrap_err();
            assert!(matches!(error, Error::Protocol(_)), "{reply:?}: {error}");
            assert!(!error.to_string().contains("VALUE"), "{error}");
            assert!(!c.is_reusable());
        }
        let (mut c, _server) = serve(&[(b"gets k\r\n", b"SERVER_ERROR busy\r\n")]);
        assert!(matches!(c.gets("k", MAX).await, Err(Error::Server(_))));
    }
}
