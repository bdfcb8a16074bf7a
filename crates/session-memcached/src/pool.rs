//! Connections to one memcached server, pooled with deadpool.

use std::io;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use tokio::net::TcpStream;

use crate::protocol::{Connection, Error};

/// Bytes kept free below the server's `item_size_max` for the key (up to 250 bytes) and
/// memcached's item header (about 60 bytes in memcached 1.6), with room to spare.
pub(crate) const ITEM_OVERHEAD: usize = 512;

/// Opens and checks connections to one server.
pub(crate) struct ServerManager {
    /// Where to connect, `host:port` (IPv6 hosts in brackets).
    pub(crate) address: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    /// When set, each new connection asks the server for `item_size_max` and stores the
    /// largest value it accepts here.
    pub(crate) learned_limit: Option<Arc<AtomicUsize>>,
}

impl ServerManager {
    async fn connect(&self) -> Result<Connection<TcpStream>, Error> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| {
                Error::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {:?}", self.connect_timeout),
                ))
            })?
            .map_err(Error::Io)?;
        // Commands are flushed whole; waiting to coalesce them only adds latency.
        stream.set_nodelay(true).map_err(Error::Io)?;
        let mut connection = Connection::new(stream);
        if let Some(limit) = &self.learned_limit {
            let stats =
                tokio::time::timeout(self.command_timeout, connection.stats(Some("settings")))
                    .await
                    .map_err(|_| {
                        Error::Io(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("stats settings timed out after {:?}", self.command_timeout),
                        ))
                    })?;
            let stats = match stats {
                Ok(stats) => stats,
                // Proxies and some servers refuse `stats settings`; keep the configured limit.
                Err(Error::Server(_)) => Vec::new(),
                Err(error) => return Err(error),
            };
            match stats
                .iter()
                .find(|(name, _)| name == "item_size_max")
                .and_then(|(_, value)| value.parse::<usize>().ok())
            {
                Some(item_size_max) => limit.store(
                    item_size_max.saturating_sub(ITEM_OVERHEAD).max(1),
                    Ordering::Relaxed,
                ),
                None => tracing::debug!(
                    server = %self.address,
                    "memcached reports no item_size_max; keeping the configured value limit"
                ),
            }
        }
        Ok(connection)
    }
}

impl managed::Manager for ServerManager {
    type Type = Connection<TcpStream>;
    type Error = Error;

    async fn create(&self) -> Result<Connection<TcpStream>, Error> {
        self.connect().await
    }

    /// A pooled connection is reused only if its last command completed and the server has
    /// not closed it meanwhile (a restarted server leaves every pooled connection at EOF).
    /// The check is one non-blocking `recv(MSG_PEEK)`, no round trip.
    async fn recycle(
        &self,
        connection: &mut Connection<TcpStream>,
        _: &Metrics,
    ) -> RecycleResult<Error> {
        if !connection.is_reusable() {
            return Err(RecycleError::message("previous command did not complete"));
        }
        let mut byte = [MaybeUninit::<u8>::uninit()];
        match socket2::SockRef::from(connection.stream()).peek(&mut byte) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Ok(0) => Err(RecycleError::message("closed by the server")),
            Ok(_) => Err(RecycleError::message("unexpected data from the server")),
            Err(error) => Err(RecycleError::Backend(Error::Io(error))),
        }
    }
}

/// A pool of connections to one server.
pub(crate) type Pool = managed::Pool<ServerManager>;
