//! `callgrind`: user-space instructions per request of each server, counted by valgrind's
//! callgrind rather than timed, so the figures repeat exactly whatever else the machine
//! does. Each server runs under `valgrind --tool=callgrind` twice, once for a small and
//! once for a large number of requests on the same 32 sessions; the difference of the two
//! totals divided by the difference of the request counts cancels start-up, connection
//! set-up and session creation.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::args::Args;
use crate::machine::RedisAdmin;
use crate::run::{redis_settings, servers_arg, start_server, write_report};
use crate::servers::ServerKind;

/// The scenarios measured: the two that differ in what the session layer does.
const SCENARIOS: [&str; 2] = ["read", "counter"];

/// Requests of the small and the large run.
const SMALL: u64 = 500;
const LARGE: u64 = 2500;

/// Sessions (and connections) of each run: every request finds its session in place.
const SESSIONS: &str = "32";

/// `bench-runner callgrind [--servers LIST] [--out PATH]`.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args = Args::parse(args, &[])?;
    let servers = servers_arg(&args)?;
    let out = args.string("out").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/callgrind.md")
    });
    let valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .context("valgrind is not installed (apt install valgrind)")?;
    let (base_url, db) = redis_settings()?;
    let mut admin = RedisAdmin::connect(&base_url, db)?;
    let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
    let work = std::env::temp_dir().join(format!("bench-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;

    let mut rows = Vec::new();
    for kind in servers {
        let mut per_scenario = Vec::new();
        for scenario in SCENARIOS {
            let mut totals = [0u64; 2];
            for (total, requests) in totals.iter_mut().zip([SMALL, LARGE]) {
                admin.flush()?;
                let file = work.join(format!("{}-{scenario}-{requests}.out", kind.name()));
                *total = instructions(&exe, kind, &admin.url, scenario, requests, &file)
                    .with_context(|| format!("callgrind of {} ({scenario}) failed", kind.name()))?;
            }
            let per_request = totals[1].saturating_sub(totals[0]) / (LARGE - SMALL);
            eprintln!(
                "bench: callgrind {} {scenario}: {per_request} instructions per request",
                kind.name()
            );
            per_scenario.push(per_request);
        }
        rows.push((kind, per_scenario));
    }
    admin.flush()?;
    let _ = std::fs::remove_dir_all(&work);

    let version = String::from_utf8_lossy(&valgrind.stdout).trim().to_owned();
    let markdown = render(&rows, &version);
    print!("{markdown}");
    write_report(&out, &markdown)
}

/// Total instructions of one server process that answered `requests` requests of
/// `scenario`: the `totals:` line callgrind writes when the server exits on `SIGTERM`.
fn instructions(
    exe: &Path,
    kind: ServerKind,
    redis_url: &str,
    scenario: &str,
    requests: u64,
    file: &Path,
) -> anyhow::Result<u64> {
    let mut valgrind = Command::new("valgrind");
    valgrind
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg(exe)
        .stderr(Stdio::null());
    let (mut server, port) = start_server(valgrind, kind, redis_url)?;
    // valgrind runs the program in its own process: the pid is the server's.
    let pid = server.0.id().to_string();
    let load = Command::new(exe)
        .args(["load", "--port", &port.to_string(), "--server-pid", &pid])
        .args(["--scenarios", scenario, "--sessions", SESSIONS])
        .args([
            "--connections",
            SESSIONS,
            "--warmup",
            "0",
            "--duration",
            "1000",
        ])
        .args(["--max-requests", &requests.to_string()])
        .args(["--redis", redis_url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .context("cannot run the load generator")?;
    if !load.success() {
        bail!("the load generator failed ({load})");
    }
    // SIGTERM, not the guard's SIGKILL: callgrind writes its counts when the program exits.
    let stopped = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .context("cannot run kill")?;
    if !stopped.success() {
        bail!("cannot stop the server ({stopped})");
    }
    server.0.wait().context("cannot reap the server")?;
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("callgrind wrote no {}", file.display()))?;
    total_from(&text).with_context(|| format!("no totals in {}", file.display()))
}

/// The instruction count of a callgrind output file (`totals:`, or `summary:` in older
/// versions).
fn total_from(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn render(rows: &[(ServerKind, Vec<u64>)], valgrind: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "## Instructions per request (callgrind)\n");
    let _ = writeln!(out, "{}\n", crate::report::provenance());
    let _ = writeln!(
        out,
        "User-space instructions of the server process per request, from `{valgrind}`: \
         (instructions of a run of {LARGE} requests − those of a run of {SMALL}) ÷ {}, \
         {SESSIONS} connections on {SESSIONS} sessions, a fresh server for each run. \
         System calls and time spent waiting are not counted.\n",
        LARGE - SMALL
    );
    let _ = writeln!(out, "| server | `GET /` | `POST /counter` |");
    let _ = writeln!(out, "|---|---:|---:|");
    for (kind, counts) in rows {
        let cells: Vec<String> = counts
            .iter()
            .map(|count| format!("{:.1} k", *count as f64 / 1000.0))
            .collect();
        let _ = writeln!(out, "| {} | {} |", kind.label(), cells.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_read_from_either_header() {
        assert_eq!(total_from("events: Ir\ntotals: 123456\n"), Some(123456));
        assert_eq!(total_from("summary: 42\n"), Some(42));
        assert_eq!(total_from("events: Ir\n"), None);
    }
}
