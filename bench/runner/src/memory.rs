//! `memory`: the in-process cache's bound, end to end. Ours starts on Redis with
//! `SESSION_CACHE_MAX_ENTRIES` set (10,000 by default); many more sessions than that are
//! created with `POST /login`, then each is read once with `GET /`, and the server's
//! resident set size (`VmRSS` in `/proc/<pid>/status`) is read before, after each batch of
//! requests, and at the end. A cache that kept every session would grow with the number of
//! sessions; a bounded one stops growing once it is full.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use hyper::http::HeaderValue;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::args::Args;
use crate::load::{self, Sender, Target};
use crate::machine::{ProcessMemory, RedisAdmin};
use crate::servers::ours::CACHE_ENV_NAMES;
use crate::servers::ServerKind;

/// What the memory check does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemoryParams {
    /// Sessions created, then each read once.
    pub sessions: usize,
    /// `SESSION_CACHE_MAX_ENTRIES` given to the server.
    pub cache_entries: u64,
    /// Concurrent keep-alive connections.
    pub connections: usize,
}

impl MemoryParams {
    /// `--memory-sessions`, `--cache-entries` and `--connections` from `args`.
    pub fn from_args(args: &Args) -> anyhow::Result<MemoryParams> {
        let params = MemoryParams {
            sessions: args.get_or("memory-sessions", 100_000)?,
            cache_entries: args.get_or("cache-entries", 10_000)?,
            connections: args.get_or("connections", 32)?,
        };
        if params.connections == 0 || params.cache_entries == 0 {
            bail!("--connections and --cache-entries must be positive");
        }
        if params.sessions as u64 <= params.cache_entries {
            bail!("--memory-sessions must exceed --cache-entries, or the bound is never reached");
        }
        Ok(params)
    }

    /// Requests between two readings of the server's memory: ten per phase, and never
    /// more than the cache holds, so one reading falls right after the cache filled up.
    fn batch(&self) -> usize {
        (self.sessions / 10).min(self.cache_entries as usize).max(1)
    }
}

/// One reading of the server's memory.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct MemorySample {
    /// Requests answered so far: logins first, then reads.
    pub requests: u64,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
}

/// What the memory check found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemoryResult {
    pub params: MemoryParams,
    /// The server listening, before any request.
    pub before: ProcessMemory,
    /// Right after the first `cache_entries` sessions were created: the cache is full.
    pub cache_full: ProcessMemory,
    /// Sessions created when `cache_full` was read.
    pub cache_full_sessions: u64,
    /// After every session was created.
    pub after_creates: ProcessMemory,
    /// After every session was read once.
    pub after: ProcessMemory,
    /// Every reading, in order.
    pub samples: Vec<MemorySample>,
    /// Keys in the benchmark's Redis database at the end: each session and, since login
    /// sets the session's owner, its user's owner index.
    pub stored_sessions: u64,
    /// Answers other than `200`, and reads that did not return their session's user.
    pub errors: u64,
    /// Wall time of the requests.
    pub elapsed_s: f64,
}

impl MemoryResult {
    /// RSS growth, KiB, while the first `cache_full_sessions` sessions filled the cache.
    pub fn filling_growth_kib(&self) -> i64 {
        self.cache_full.rss_kib as i64 - self.before.rss_kib as i64
    }

    /// RSS growth, KiB, from the full cache to the end: the remaining sessions created
    /// and every session read once.
    pub fn later_growth_kib(&self) -> i64 {
        self.after.rss_kib as i64 - self.cache_full.rss_kib as i64
    }

    /// RSS stayed bounded: everything after the cache filled (nine times as many sessions
    /// with the defaults, and all the reads) added no more memory than filling it did. A
    /// cache that kept every session would have grown about nine times as much instead.
    pub fn bounded(&self) -> bool {
        self.later_growth_kib() <= self.filling_growth_kib().max(0)
    }
}

/// `memory`: the check on its own, with its report and chart.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args = Args::parse(args, &[])?;
    let params = MemoryParams::from_args(&args)?;
    let out = args
        .string("out")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/memory.md"));
    let (base_url, db) = crate::run::redis_settings()?;
    let mut admin = RedisAdmin::connect(&base_url, db)?;
    let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
    let result = check(&exe, &mut admin, &params)?;
    let mut markdown = format!("## Memory check\n\n{}\n\n", crate::report::provenance());
    crate::run::create_parent(&out)?;
    let chart = crate::charts::memory(&result, &crate::charts::path_next_to(&out, "rss"))?;
    crate::report::memory_section(&mut markdown, &result, Some(&chart));
    print!("{markdown}");
    crate::run::write_report(&out, &markdown)
}

/// Runs the check against a fresh server on the benchmark's Redis database.
pub fn check(
    exe: &std::path::Path,
    admin: &mut RedisAdmin,
    params: &MemoryParams,
) -> anyhow::Result<MemoryResult> {
    admin.flush()?;
    let mut command = std::process::Command::new(exe);
    // The bound under test, and every other cache option at its default whatever the
    // environment says.
    for name in CACHE_ENV_NAMES {
        command.env_remove(name);
    }
    command.env(
        "SESSION_CACHE_MAX_ENTRIES",
        params.cache_entries.to_string(),
    );
    let (mut server, port) = crate::run::start_server(command, ServerKind::Ours, &admin.url)?;
    let pid = server.0.id();
    eprintln!(
        "bench: memory check: {} sessions through a cache of {} entries",
        params.sessions, params.cache_entries
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let target = Arc::new(Target::http(port, pid)?);
    let mut result = runtime.block_on(drive(target, params))?;
    if let Some(status) = server.0.try_wait()? {
        bail!("the server exited during the memory check ({status})");
    }
    drop(server);
    result.stored_sessions = admin.key_count()?;
    admin.flush()?;
    eprintln!(
        "bench: memory check: RSS {} KiB before, {} KiB with the cache full, {} KiB after; \
         {} errors",
        result.before.rss_kib, result.cache_full.rss_kib, result.after.rss_kib, result.errors
    );
    Ok(result)
}

fn memory_of(pid: u32) -> anyhow::Result<ProcessMemory> {
    ProcessMemory::of(pid).context("cannot read the server's /proc/<pid>/status: did it stop?")
}

async fn drive(target: Arc<Target>, params: &MemoryParams) -> anyhow::Result<MemoryResult> {
    let mut connections = Vec::with_capacity(params.connections);
    for _ in 0..params.connections {
        connections.push(load::connect(target.port()).await?);
    }
    let pid = target.server_pid();
    let before = memory_of(pid)?;
    let mut samples = vec![MemorySample {
        requests: 0,
        rss_kib: before.rss_kib,
    }];
    let mut cookies: Vec<Option<HeaderValue>> = vec![None; params.sessions];
    let mut errors = 0;
    let mut cache_full = None;
    let batch = params.batch();
    let start = Instant::now();

    // Phase 1: create every session.
    for first in (0..params.sessions).step_by(batch) {
        let end = (first + batch).min(params.sessions);
        let (back, created, failed) = run_batch(connections, &target, first..end, None).await?;
        connections = back;
        errors += failed;
        for (index, cookie) in created {
            cookies[index] = Some(cookie);
        }
        let memory = memory_of(pid)?;
        samples.push(MemorySample {
            requests: end as u64,
            rss_kib: memory.rss_kib,
        });
        if cache_full.is_none() && end as u64 >= params.cache_entries {
            cache_full = Some((memory, end as u64));
        }
    }
    let after_creates = memory_of(pid)?;

    // Phase 2: read each session once; most were evicted, so this churns the cache.
    let cookies = Arc::new(cookies);
    for first in (0..params.sessions).step_by(batch) {
        let end = (first + batch).min(params.sessions);
        let (back, _, failed) =
            run_batch(connections, &target, first..end, Some(cookies.clone())).await?;
        connections = back;
        errors += failed;
        samples.push(MemorySample {
            requests: (params.sessions + end) as u64,
            rss_kib: memory_of(pid)?.rss_kib,
        });
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let after = memory_of(pid)?;
    let (cache_full, cache_full_sessions) = cache_full.unwrap_or((after_creates, 0));
    Ok(MemoryResult {
        params: params.clone(),
        before,
        cache_full,
        cache_full_sessions,
        after_creates,
        after,
        samples,
        stored_sessions: 0,
        errors,
        elapsed_s,
    })
}

type BatchOutcome = (Vec<Sender>, Vec<(usize, HeaderValue)>, u64);

/// Sessions `range`, dealt out round-robin over the connections: logins when `cookies`
/// is `None` (returning the new cookies), otherwise one `GET /` each, checked against the
/// user its login stored.
async fn run_batch(
    connections: Vec<Sender>,
    target: &Arc<Target>,
    range: std::ops::Range<usize>,
    cookies: Option<Arc<Vec<Option<HeaderValue>>>>,
) -> anyhow::Result<BatchOutcome> {
    let count = connections.len();
    let mut tasks = JoinSet::new();
    for (offset, mut connection) in connections.into_iter().enumerate() {
        let (target, cookies, range) = (target.clone(), cookies.clone(), range.clone());
        tasks.spawn(async move {
            let mut created = Vec::new();
            let mut errors = 0u64;
            for index in range.skip(offset).step_by(count) {
                let user = format!("user{index}");
                match &cookies {
                    None => match load::login(&mut connection, &target, &user).await {
                        Ok(cookie) => created.push((index, cookie)),
                        Err(_) => errors += 1,
                    },
                    Some(cookies) => {
                        let Some(cookie) = &cookies[index] else {
                            errors += 1;
                            continue;
                        };
                        let answer =
                            load::send(&mut connection, &target, &Method::GET, "/", Some(cookie))
                                .await
                                .context("GET / failed: did the server stop?")?;
                        if answer.status != StatusCode::OK || !holds_user(&answer.body, &user) {
                            errors += 1;
                        }
                    }
                }
            }
            anyhow::Ok((connection, created, errors))
        });
    }
    let mut back = Vec::with_capacity(count);
    let mut created = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (connection, mut made, failed) = joined.context("a memory-check task panicked")??;
        back.push(connection);
        created.append(&mut made);
        errors += failed;
    }
    Ok((back, created, errors))
}

/// Whether a `GET /` body is a JSON object whose `user` is `user`.
fn holds_user(body: &[u8], user: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|session| session.get("user")?.as_str().map(|u| u == user))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(before: u64, full: u64, after: u64) -> MemoryResult {
        let memory = |rss_kib| ProcessMemory {
            rss_kib,
            peak_kib: rss_kib,
        };
        MemoryResult {
            params: MemoryParams {
                sessions: 100_000,
                cache_entries: 10_000,
                connections: 32,
            },
            before: memory(before),
            cache_full: memory(full),
            cache_full_sessions: 10_000,
            after_creates: memory(after),
            after: memory(after),
            samples: Vec::new(),
            stored_sessions: 100_000,
            errors: 0,
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn growth_past_the_bound_decides() {
        // Filling the cache took 8 MiB; 2 MiB more after that is allocator slack.
        assert!(result(10_000, 18_000, 20_000).bounded());
        // Growing on with every session is what an unbounded cache does.
        assert!(!result(10_000, 18_000, 90_000).bounded());
    }

    #[test]
    fn a_batch_boundary_falls_on_the_bound() {
        let params = MemoryParams {
            sessions: 100_000,
            cache_entries: 10_000,
            connections: 32,
        };
        assert_eq!(params.batch(), 10_000);
        let small = MemoryParams {
            cache_entries: 3_000,
            ..params
        };
        assert_eq!(small.batch(), 3_000);
    }

    #[test]
    fn reads_are_checked_against_the_user() {
        assert!(holds_user(br#"{"user":"user7","counter":1}"#, "user7"));
        assert!(!holds_user(br#"{"user":"user8"}"#, "user7"));
        assert!(!holds_user(b"not json", "user7"));
    }
}
