//! The servers under test: five on axum, two on actix-web, and a reference (e) on axum that
//! keeps its sessions in the process. Each serves the same routes with a cookie-held session
//! id, over Redis except the reference:
//!
//! | route | effect | response |
//! |---|---|---|
//! | `POST /login?user=NAME` | starts a session holding `user` | `200`, `Set-Cookie` |
//! | `POST /counter` | reads `counter`, adds 1, stores it | `200`, the new value as text |
//! | `GET /` | reads the session, changes nothing | `200`, the session as a JSON object |

mod actix;
mod handwritten;
pub mod ours;
mod tower;

use std::fmt;
use std::io::Write as _;
use std::str::FromStr;

use anyhow::{bail, Context as _};

use crate::args::Args;

/// Which server to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// (b) the baseline: hand-written handlers on a fred pool, last writer wins.
    Fred,
    /// (c) the same handlers on a redis-rs `ConnectionManager`.
    RedisRs,
    /// (a) tower-sessions with tower-sessions-redis-store, as its documentation shows.
    TowerSessions,
    /// (a') the same, behind tower-sessions' `CachingSessionStore` with a moka cache in
    /// front of the Redis store: tower-sessions' own answer to caching.
    TowerMoka,
    /// The library: `session_example::app` on `session_redis::RedisStore` (built by
    /// session-any from `SESSION_TYPE=redis`), default config.
    Ours,
    /// (d) actix-session with its Redis store, as its documentation shows.
    ActixSession,
    /// The library on actix-web: `session_example_actix::app` on the same store and config.
    OursActix,
    /// (e) a reference, not a competitor: (b)'s handlers on an in-process map instead of
    /// Redis. What an axum server that never waits for a store can serve on this machine;
    /// only with `--servers memory`, never in the default set or the targets.
    Memory,
}

impl ServerKind {
    /// Every server, the baseline first.
    pub const ALL: [ServerKind; 7] = [
        ServerKind::Fred,
        ServerKind::RedisRs,
        ServerKind::TowerSessions,
        ServerKind::TowerMoka,
        ServerKind::Ours,
        ServerKind::ActixSession,
        ServerKind::OursActix,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Fred => "fred",
            ServerKind::RedisRs => "redis-rs",
            ServerKind::TowerSessions => "tower-sessions",
            ServerKind::TowerMoka => "tower-moka",
            ServerKind::Ours => "ours",
            ServerKind::ActixSession => "actix-session",
            ServerKind::OursActix => "ours-actix",
            ServerKind::Memory => "memory",
        }
    }

    /// The name used in the report.
    pub fn label(self) -> &'static str {
        match self {
            ServerKind::Fred => "(b) hand-written, fred",
            ServerKind::RedisRs => "(c) hand-written, redis-rs",
            ServerKind::TowerSessions => "(a) tower-sessions",
            ServerKind::TowerMoka => "(a') tower-sessions + moka",
            ServerKind::Ours => "ours, axum (session-redis)",
            ServerKind::ActixSession => "(d) actix-session, actix-web",
            ServerKind::OursActix => "ours, actix-web (session-redis)",
            ServerKind::Memory => "(e) reference: (b) on an in-process map",
        }
    }

    /// Whether the server runs on actix-web (otherwise on axum).
    pub fn is_actix(self) -> bool {
        matches!(self, ServerKind::ActixSession | ServerKind::OursActix)
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Every server of the default set, and the reference, which runs only when named.
        ServerKind::ALL
            .into_iter()
            .chain([ServerKind::Memory])
            .find(|kind| kind.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown server {s:?} (known: fred, redis-rs, tower-sessions, tower-moka, \
                     ours, actix-session, ours-actix, memory)"
                )
            })
    }
}

/// `serve`: runs one server on 127.0.0.1, on a port the OS picks, and prints the port as
/// the first line of stdout once it accepts connections.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args = Args::parse(args, &[])?;
    let kind: ServerKind = args.required("server")?;
    let redis_url: String = args.required("redis")?;
    if kind.is_actix() {
        return actix::main(kind, &redis_url);
    }
    // The default multi-threaded runtime, as `#[tokio::main]` builds it: pinned to one core
    // with taskset, it has one worker thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(serve(kind, &redis_url))
}

async fn serve(kind: ServerKind, redis_url: &str) -> anyhow::Result<()> {
    let router = match kind {
        ServerKind::Ours => ours::router(redis_url).await?,
        ServerKind::TowerSessions => tower::router(redis_url).await?,
        ServerKind::TowerMoka => tower::caching_router(redis_url).await?,
        ServerKind::Fred => handwritten::fred_router(redis_url).await?,
        ServerKind::RedisRs => handwritten::redis_rs_router(redis_url).await?,
        ServerKind::Memory => handwritten::memory_router(),
        ServerKind::ActixSession | ServerKind::OursActix => {
            bail!("{kind} runs on actix-web, not axum")
        }
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("cannot listen on 127.0.0.1")?;
    let port = listener.local_addr()?.port();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{port}")?;
    stdout.flush()?;
    axum::serve(listener, router).await?;
    bail!("the server stopped")
}
