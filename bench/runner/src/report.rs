//! The Markdown report: machine facts, parameters, one table per scenario with ratios to
//! the hand-written fred handler (b), and the targets.

use std::fmt::Write as _;
use std::process::Command;

use crate::load::{LoadParams, Measurement, ServerResults};
use crate::machine::MachineFacts;
use crate::servers::ServerKind;

/// Everything one run produced.
pub struct Report {
    pub facts: MachineFacts,
    pub params: LoadParams,
    pub pinned: bool,
    pub redis_pinned: bool,
    pub nice: Option<i32>,
    pub realtime: Option<u32>,
    pub redis_url: String,
    /// Each round's results, in round order, for per-round ratios.
    pub rounds: Vec<(ServerKind, Vec<ServerResults>)>,
    pub results: Vec<(ServerKind, ServerResults)>,
}

impl Report {
    fn rounds_of(&self, kind: ServerKind) -> Option<&[ServerResults]> {
        self.rounds
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, rounds)| rounds.as_slice())
    }

    /// A ratio between results of one run: with several rounds, the median of the ratio
    /// computed within each round (servers in one round saw the same machine) and its
    /// range; with one round, `single`.
    fn ratio(&self, single: f64, per_round: impl Fn(usize) -> Option<f64>) -> (f64, String) {
        let count = self.params.rounds;
        let mut values: Vec<f64> = (0..count).filter_map(per_round).collect();
        if count < 2 || values.len() < count {
            return (single, format!("{single:.2}×"));
        }
        values.sort_by(f64::total_cmp);
        let median = values[values.len() / 2];
        let (min, max) = (values[0], values[values.len() - 1]);
        (
            median,
            format!("{median:.2}× (median of rounds; {min:.2}×–{max:.2}×)"),
        )
    }

    fn get(&self, kind: ServerKind) -> Option<&ServerResults> {
        self.results
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, results)| results)
    }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn ratio(value: f64, baseline: Option<f64>) -> String {
    match baseline {
        Some(base) if base > 0.0 => format!("{:.2}×", value / base),
        _ => "n/a".to_owned(),
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// Renders the report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let facts = &report.facts;
    let params = &report.params;
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = command_output("git", &["status", "--porcelain", "--", ".."])
        .is_some_and(|status| !status.is_empty());

    let _ = writeln!(out, "## Load benchmark results\n");
    let _ = writeln!(
        out,
        "Run {date}, commit {commit}{}.\n",
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "| machine | |\n|---|---|");
    let _ = writeln!(out, "| cores (nproc) | {} |", facts.cores);
    let _ = writeln!(out, "| CPU | {} |", facts.cpu_model);
    let _ = writeln!(out, "| kernel | {} |", facts.kernel);
    let _ = writeln!(
        out,
        "| Redis | {} ({}) |",
        facts.redis_version, report.redis_url
    );
    let _ = writeln!(out, "| rustc | {} |", facts.rustc);
    let _ = writeln!(out, "| load average at start | {} |", facts.load_average);
    let pinning = match (report.pinned, report.redis_pinned) {
        (true, true) => "server on core 0; load generator and Redis on core 1 (taskset)",
        (true, false) => "server on core 0, load generator on core 1 (taskset); Redis not pinned",
        (false, _) => "none",
    };
    let _ = writeln!(out, "| pinning | {pinning} |");
    let priority = match (report.realtime, report.nice) {
        (Some(rt), _) => format!("server, load generator and Redis real-time (SCHED_RR {rt})"),
        (None, Some(nice)) => format!("server, load generator and Redis at nice {nice}"),
        (None, None) => "default".to_owned(),
    };
    let _ = writeln!(out, "| priority | {priority} |\n");
    let _ = writeln!(
        out,
        "Parameters: {} keep-alive HTTP/1.1 connections (closed loop), {} sessions in \
         scenarios 1 and 2 (each connection cycles through its own {}), {:.0} s warm-up then \
         {:.0} s measured per scenario, at most {} requests per measurement, {}. Latency: \
         hdrhistogram, µs precision. CPU: utime + stime from /proc/<pid>/stat over the \
         measurement, divided by successful requests (\"core busy\": CPU time / wall time). \
         \"× (b)\" is the value divided by (b)'s: higher is better for req/s, lower for \
         latency and CPU.\n",
        params.connections,
        params.sessions,
        params.sessions / params.connections,
        params.warmup.as_secs_f64(),
        params.duration.as_secs_f64(),
        params.max_requests,
        if params.rounds == 1 {
            "one round".to_owned()
        } else {
            format!(
                "{} rounds with the servers interleaved, each row the round with the median \
                 req/s (lost increments: the sum over all rounds)",
                params.rounds
            )
        },
    );

    let busiest = report
        .results
        .iter()
        .map(|(_, r)| r.counter.server_cpu_s / r.counter.elapsed_s.max(1e-9))
        .fold(0.0, f64::max);
    if params.scenarios.counter && busiest < 0.8 {
        let _ = writeln!(
            out,
            "**Caution:** no server used more than {:.0}% of its core in scenario 1, so req/s \
             and latency were limited by something else (other work on the machine: see the \
             load average; or the load generator's core). CPU per request is the number to \
             compare in this run.\n",
            busiest * 100.0
        );
    }

    let baseline = report.get(ServerKind::Fred);
    let scenarios = params.scenarios;
    if scenarios.counter {
        scenario_table(
            &mut out,
            report,
            "Scenario 1: `POST /counter`, distinct sessions",
            |r| &r.counter,
            baseline.map(|b| &b.counter),
            false,
        );
    }
    if scenarios.read {
        scenario_table(
            &mut out,
            report,
            "Scenario 2: `GET /`, read-only, same sessions",
            |r| &r.read,
            baseline.map(|b| &b.read),
            false,
        );
    }
    if scenarios.shared {
        scenario_table(
            &mut out,
            report,
            "Scenario 3: `POST /counter`, one session shared by every connection",
            |r| &r.shared.measurement,
            baseline.map(|b| &b.shared.measurement),
            true,
        );
    }
    commands(&mut out, report);
    targets(&mut out, report);
    actix(&mut out, report);
    out
}

/// The actix-web comparison: ours on session-actix against actix-session, same run.
fn actix(out: &mut String, report: &Report) {
    let (Some(ours), Some(theirs)) = (
        report.get(ServerKind::OursActix),
        report.get(ServerKind::ActixSession),
    ) else {
        return;
    };
    let (ours_rounds, their_rounds) = (
        report.rounds_of(ServerKind::OursActix),
        report.rounds_of(ServerKind::ActixSession),
    );
    let _ = writeln!(
        out,
        "### actix-web: ours (session-actix) against actix-session\n\n\
         Ours ÷ actix-session, both on actix-web 4 and Redis: higher is better for req/s, \
         lower for CPU.\n"
    );
    let _ = writeln!(
        out,
        "| scenario | req/s | server CPU µs/req | lost increments (ours / actix-session) |\n\
         |---|---|---|---|"
    );
    let scenarios = report.params.scenarios;
    type Pick = fn(&ServerResults) -> &Measurement;
    let rows: [(&str, bool, Pick, bool); 3] = [
        (
            "1: `POST /counter`",
            scenarios.counter,
            |r| &r.counter,
            false,
        ),
        ("2: `GET /`", scenarios.read, |r| &r.read, false),
        (
            "3: shared `POST /counter`",
            scenarios.shared,
            |r| &r.shared.measurement,
            true,
        ),
    ];
    for (name, measured, pick, shared) in rows {
        if !measured {
            continue;
        }
        let per_round = |value: fn(&Measurement) -> f64| {
            let single = value(pick(ours)) / value(pick(theirs)).max(1e-9);
            report
                .ratio(single, |i| {
                    let ours = pick(ours_rounds?.get(i)?);
                    let theirs = pick(their_rounds?.get(i)?);
                    Some(value(ours) / value(theirs).max(1e-9))
                })
                .1
        };
        let lost = if shared {
            format!("{} / {}", ours.shared.lost(), theirs.shared.lost())
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {lost} |",
            per_round(Measurement::rps),
            per_round(Measurement::server_cpu_us_per_request),
        );
    }
    let _ = writeln!(out);
}

fn commands(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "### Redis commands per request\n\nFrom `INFO commandstats` (commands run by Lua \
         scripts included).\n"
    );
    let _ = writeln!(
        out,
        "| server | scenario 1 | scenario 2 | scenario 3 |\n|---|---|---|---|"
    );
    let list = |m: &Measurement| {
        if m.redis_commands_per_request.is_empty() {
            return "n/a".to_owned();
        }
        m.redis_commands_per_request
            .iter()
            .map(|(name, calls)| format!("{name} {calls:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (kind, results) in &report.results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            kind.label(),
            list(&results.counter),
            list(&results.read),
            list(&results.shared.measurement)
        );
    }
    let _ = writeln!(out);
}

fn scenario_table(
    out: &mut String,
    report: &Report,
    title: &str,
    pick: impl Fn(&ServerResults) -> &Measurement,
    baseline: Option<&Measurement>,
    shared: bool,
) {
    let _ = writeln!(out, "### {title}\n");
    let _ = write!(
        out,
        "| server | req/s | × (b) | p50 ms | × (b) | p99 ms | × (b) | server CPU µs/req | × (b) \
         | server core busy | client CPU µs/req | Redis CPU µs/req | errors |"
    );
    if shared {
        let _ = write!(out, " acknowledged | final counter | lost increments |");
    }
    let _ = writeln!(out);
    let columns = if shared { 16 } else { 13 };
    let _ = writeln!(out, "|{}", "---|".repeat(columns));
    for (kind, results) in &report.results {
        let m = pick(results);
        let redis = m
            .redis_cpu_us_per_request()
            .map_or_else(|| "n/a".to_owned(), |us| format!("{us:.1}"));
        let _ = write!(
            out,
            "| {} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {} | {:.0}% | {:.1} | {} | {} |",
            kind.label(),
            m.rps(),
            ratio(m.rps(), baseline.map(Measurement::rps)),
            ms(m.p50_us),
            ratio(m.p50_us as f64, baseline.map(|b| b.p50_us as f64)),
            ms(m.p99_us),
            ratio(m.p99_us as f64, baseline.map(|b| b.p99_us as f64)),
            m.server_cpu_us_per_request(),
            ratio(
                m.server_cpu_us_per_request(),
                baseline.map(Measurement::server_cpu_us_per_request)
            ),
            100.0 * m.server_cpu_s / m.elapsed_s.max(1e-9),
            m.client_cpu_us_per_request(),
            redis,
            m.errors,
        );
        if shared {
            let _ = write!(
                out,
                " {} | {} | {} |",
                results.shared.acknowledged,
                results.shared.final_counter,
                results.shared.lost()
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out);
}

fn targets(out: &mut String, report: &Report) {
    let _ = writeln!(out, "### Targets\n");
    let _ = writeln!(out, "| target | measured | |\n|---|---|---|");
    let ours = report.get(ServerKind::Ours);
    let scenarios = report.params.scenarios;
    let mut line = |name: &str, measured: Option<(String, bool)>| {
        let (value, met) = match measured {
            Some((value, met)) => (value, if met { "met" } else { "**missed**" }),
            None => ("not measured".to_owned(), "n/a"),
        };
        let _ = writeln!(out, "| {name} | {value} | {met} |");
    };
    let ours_rounds = report.rounds_of(ServerKind::Ours);
    let rate_ratio = |other: ServerKind, goal: f64| {
        let (ours, other_results) = (ours.filter(|_| scenarios.counter)?, report.get(other)?);
        let single = ours.counter.rps() / other_results.counter.rps().max(1e-9);
        let other_rounds = report.rounds_of(other);
        let (value, text) = report.ratio(single, |i| {
            let ours = ours_rounds?.get(i)?;
            let other = other_rounds?.get(i)?;
            Some(ours.counter.rps() / other.counter.rps().max(1e-9))
        });
        Some((text, value >= goal))
    };
    line(
        "ours ≥ 1.3× tower-sessions, counter req/s",
        rate_ratio(ServerKind::TowerSessions, 1.3),
    );
    line(
        "ours ≥ 1.0× the redis-rs handler, counter req/s",
        rate_ratio(ServerKind::RedisRs, 1.0),
    );
    line(
        "ours: read-only req/s ≥ 1.8× counter req/s",
        ours.filter(|_| scenarios.counter && scenarios.read)
            .map(|ours| {
                let single = ours.read.rps() / ours.counter.rps().max(1e-9);
                let (value, text) = report.ratio(single, |i| {
                    let round = ours_rounds?.get(i)?;
                    Some(round.read.rps() / round.counter.rps().max(1e-9))
                });
                (text, value >= 1.8)
            }),
    );
    line(
        "ours: 0 lost increments on one shared session",
        ours.filter(|_| scenarios.shared).map(|ours| {
            let lost = ours.shared.lost();
            (
                format!("{lost} lost ({} errors)", ours.shared.measurement.errors),
                lost == 0,
            )
        }),
    );
    let _ = writeln!(out);
}
