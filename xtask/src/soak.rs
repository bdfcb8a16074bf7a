//! `cargo xtask soak --minutes M`: two processes of the example app on one private store
//! server (Redis, then PostgreSQL), under a mixed load for M minutes each: logins, reads,
//! counter increments, distinct-key writes and logouts, every request alternating between
//! the two processes. Reports requests, errors (anything but 200), lost increments (a
//! session's stored counter below its acknowledged increments; 0 expected), stale reads
//! (the check, made through the other process, trailing the last write until that
//! process's cache invalidation arrives) and the resident memory of each process at the
//! start and the end. Writes `reliability/results/soak.md`; exits non-zero on an error or
//! a lost increment.

use std::fmt::Write as _;
use std::fs;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::faults::{
    build_example, final_counter, increment, login, provenance, request, work_dir, App, Backend,
    Server, Session, MARGIN, STORE_TIMEOUT,
};

/// Concurrent clients, each one user logging in and out again and again.
const CLIENTS: usize = 8;
/// Requests of one login before its counter is checked and it logs out.
const REQUESTS_PER_LOGIN: u64 = 40;
/// How long the check may trail the acknowledged increments before they count as lost.
/// With Redis's client tracking a process serves its cached copy until the invalidation
/// of another process's write reaches it (docs/architecture.md); that takes well under a
/// millisecond unless the process is starved, so a check that has not caught up within
/// this bound means an update lost, or a cache entry that was never invalidated.
const SETTLE_LIMIT: Duration = Duration::from_secs(2);
/// Between two reads of a check that trails.
const SETTLE_POLL: Duration = Duration::from_millis(5);

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
    logins: AtomicU64,
    increments: AtomicU64,
    lost: AtomicU64,
    stale_reads: AtomicU64,
    /// The longest a trailing check took to catch up, in microseconds.
    slowest_settle_us: AtomicU64,
}

struct SoakRow {
    backend: Backend,
    requests: u64,
    errors: u64,
    logins: u64,
    increments: u64,
    lost: u64,
    stale_reads: u64,
    slowest_settle: Duration,
    rss: Vec<(u64, u64)>,
    panicked: bool,
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One client: log in, a mix of requests, check the counter, log out; until `deadline`.
fn client(ports: [u16; 2], id: usize, deadline: Instant, tally: &Tally) {
    let mut round = 0u64;
    let timeout = STORE_TIMEOUT + MARGIN;
    while Instant::now() < deadline {
        round += 1;
        let Ok(session) = login(ports[round as usize % 2], &format!("soak{id}")) else {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        tally.logins.fetch_add(1, Ordering::Relaxed);
        tally.requests.fetch_add(1, Ordering::Relaxed);
        for n in 0..REQUESTS_PER_LOGIN {
            let port = ports[(n % 2) as usize];
            let ok = match n % 4 {
                0 | 1 => {
                    let event = increment(port, &session);
                    event.status == Some(200)
                }
                2 => {
                    let cookie = session.cookie.lock().unwrap().clone();
                    request(port, "GET", "/", Some(&cookie), None, timeout)
                        .is_ok_and(|response| response.status == 200)
                }
                _ => {
                    let cookie = session.cookie.lock().unwrap().clone();
                    let path = format!("/data/k{id}_{round}_{n}");
                    request(port, "PUT", &path, Some(&cookie), Some("1"), timeout)
                        .is_ok_and(|response| response.status == 200)
                }
            };
            tally.requests.fetch_add(1, Ordering::Relaxed);
            if !ok {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let acknowledged = session.acknowledged.load(Ordering::SeqCst);
        tally.increments.fetch_add(acknowledged, Ordering::Relaxed);
        let checker = ports[(round as usize + 1) % 2];
        match final_counter(checker, &session) {
            Ok(stored) if stored >= acknowledged => {}
            Ok(_) => match settle(checker, &session, acknowledged) {
                Ok(took) => {
                    tally.stale_reads.fetch_add(1, Ordering::Relaxed);
                    tally
                        .slowest_settle_us
                        .fetch_max(took.as_micros() as u64, Ordering::Relaxed);
                }
                Err(stored) => {
                    tally
                        .lost
                        .fetch_add(acknowledged.saturating_sub(stored), Ordering::Relaxed);
                }
            },
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let cookie = session.cookie.lock().unwrap().clone();
        let logged_out = request(
            ports[round as usize % 2],
            "POST",
            "/logout",
            Some(&cookie),
            None,
            timeout,
        )
        .is_ok_and(|response| response.status == 200);
        tally.requests.fetch_add(2, Ordering::Relaxed);
        if !logged_out {
            tally.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads the counter through `port` until it holds the `acknowledged` increments: how long
/// that took, or the last value read once [`SETTLE_LIMIT`] has passed.
fn settle(port: u16, session: &Session, acknowledged: u64) -> Result<Duration, u64> {
    let started = Instant::now();
    loop {
        let stored = final_counter(port, session).unwrap_or(0);
        if stored >= acknowledged {
            return Ok(started.elapsed());
        }
        if started.elapsed() > SETTLE_LIMIT {
            return Err(stored);
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

fn soak(
    ctx: &Context,
    binary: &std::path::Path,
    root: &std::path::Path,
    backend: Backend,
    duration: Duration,
) -> Result<SoakRow, String> {
    ctx.log(format!(
        "soak: {} for {:.1} min",
        backend.name(),
        duration.as_secs_f64() / 60.0
    ));
    let server = Server::start(ctx, backend, root)?;
    let name = backend.name().to_lowercase();
    let apps = [
        App::start(
            binary,
            &backend.app_env(&server.app_ports()),
            root.join(format!("app-{name}-1.log")),
        )?,
        App::start(
            binary,
            &backend.app_env(&server.app_ports()),
            root.join(format!("app-{name}-2.log")),
        )?,
    ];
    let ports = [apps[0].port, apps[1].port];
    let start_rss: Vec<u64> = apps.iter().map(|app| rss_kib(app.pid())).collect();
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + duration;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let tally = tally.clone();
            std::thread::spawn(move || client(ports, id, deadline, &tally))
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    let end_rss: Vec<u64> = apps.iter().map(|app| rss_kib(app.pid())).collect();
    drop(server);
    Ok(SoakRow {
        backend,
        requests: tally.requests.load(Ordering::SeqCst),
        errors: tally.errors.load(Ordering::SeqCst),
        logins: tally.logins.load(Ordering::SeqCst),
        increments: tally.increments.load(Ordering::SeqCst),
        lost: tally.lost.load(Ordering::SeqCst),
        stale_reads: tally.stale_reads.load(Ordering::SeqCst),
        slowest_settle: Duration::from_micros(tally.slowest_settle_us.load(Ordering::SeqCst)),
        rss: start_rss.into_iter().zip(end_rss).collect(),
        panicked: apps.iter().any(App::panicked),
    })
}

pub fn command(ctx: &Context, args: &[String]) -> Result<ExitCode, String> {
    let minutes: f64 = match args {
        [] => 1.0,
        [flag, value] if flag == "--minutes" => value
            .parse()
            .ok()
            .filter(|m: &f64| *m > 0.0 && *m <= 24.0 * 60.0)
            .ok_or("--minutes takes a positive number")?,
        _ => return Err("usage: cargo xtask soak [--minutes M]".into()),
    };
    let duration = Duration::from_secs_f64(minutes * 60.0);
    // The commit of the code that runs, not of whatever is checked out at the end.
    let (commit, date) = provenance(ctx);
    let binary = build_example(ctx)?;
    let root = work_dir("soak")?;
    let mut rows = Vec::new();
    for backend in [Backend::Redis, Backend::Postgres] {
        rows.push(soak(ctx, &binary, &root, backend, duration)?);
    }
    let mut text = String::new();
    let _ = writeln!(text, "# Soak\n");
    let _ = writeln!(
        text,
        "`cargo xtask soak --minutes {minutes}` at commit `{commit}`, {date}: per store, two \
         processes of the example app (debug build) on one private server, {CLIENTS} clients \
         each logging in, making {REQUESTS_PER_LOGIN} requests (counter increments, reads, \
         distinct-key writes) alternating between the processes, checking the counter and \
         logging out, for {minutes} minutes. An error is any answer but 200; a lost increment \
         is an acknowledged increment missing from the stored counter. The check reads the \
         counter through each process in turn; a stale read is a check \
         that trailed the acknowledged increments and caught up (read again every \
         {poll} ms) within {limit} s, the time for the other process's cache invalidation \
         to reach it; one that does not catch up counts as lost.\n",
        poll = SETTLE_POLL.as_millis(),
        limit = SETTLE_LIMIT.as_secs()
    );
    let _ = writeln!(
        text,
        "| Store | Requests | Logins | Increments acknowledged | Errors | Lost increments | Stale reads (slowest to catch up) | RSS process 1 start → end (MiB) | RSS process 2 start → end (MiB) | Panic |"
    );
    let _ = writeln!(text, "|---|---|---|---|---|---|---|---|---|---|");
    let mib = |kib: u64| kib as f64 / 1024.0;
    for row in &rows {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} → {:.1} | {:.1} → {:.1} | {} |",
            row.backend.name(),
            row.requests,
            row.logins,
            row.increments,
            row.errors,
            row.lost,
            if row.stale_reads == 0 {
                "0".to_owned()
            } else {
                format!(
                    "{} ({:.1} ms)",
                    row.stale_reads,
                    row.slowest_settle.as_secs_f64() * 1000.0
                )
            },
            mib(row.rss[0].0),
            mib(row.rss[0].1),
            mib(row.rss[1].0),
            mib(row.rss[1].1),
            if row.panicked { "yes" } else { "no" }
        );
    }
    let out = ctx.workspace_root.join("reliability/results/soak.md");
    fs::create_dir_all(out.parent().unwrap()).map_err(|e| e.to_string())?;
    fs::write(&out, &text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    print!("{text}");
    crate::faults::publish(ctx)?;
    let clean = rows
        .iter()
        .all(|row| row.errors == 0 && row.lost == 0 && !row.panicked);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
