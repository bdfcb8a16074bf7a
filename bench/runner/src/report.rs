//! The Markdown report: machine facts, parameters, charts, one table per scenario with
//! ratios to the hand-written fred handler (b), the targets, the comparisons of ours with
//! tower-sessions + moka and with actix-session, and the memory check.

use std::fmt::Write as _;
use std::process::Command;

use crate::charts::Chart;
use crate::load::{LoadParams, Measurement, Scenario, ServerResults};
use crate::machine::MachineFacts;
use crate::memory::MemoryResult;
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
    /// The cache options ours took from the environment (name, value); empty: defaults.
    pub cache_env: Vec<(String, String)>,
    /// Each round's results, in round order, for per-round ratios.
    pub rounds: Vec<(ServerKind, Vec<ServerResults>)>,
    pub results: Vec<(ServerKind, ServerResults)>,
    /// The memory check, when it ran.
    pub memory: Option<MemoryResult>,
    /// The req/s and CPU charts written next to the report.
    pub charts: Vec<Chart>,
    /// The memory check's chart, next to the report.
    pub memory_chart: Option<Chart>,
}

/// A ratio between two servers of one run: the median of the ratio computed within each
/// round (servers in one round saw the same machine) and its range over the rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundRatio {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rounds: usize,
}

impl RoundRatio {
    /// The median and its range over `values` (one per round); `None` when empty. With
    /// an even count, the mean of the two middle values.
    fn of(mut values: Vec<f64>) -> Option<RoundRatio> {
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        let median = if values.len().is_multiple_of(2) {
            (values.get(middle.checked_sub(1)?)? + values.get(middle)?) / 2.0
        } else {
            *values.get(middle)?
        };
        Some(RoundRatio {
            median,
            min: *values.first()?,
            max: *values.last()?,
            rounds: values.len(),
        })
    }

    /// `0.75×`.
    fn median_text(&self) -> String {
        format!("{:.2}×", self.median)
    }

    /// `0.55×–1.25×`, or "one round".
    fn range_text(&self) -> String {
        if self.rounds < 2 {
            "one round".to_owned()
        } else {
            format!("{:.2}×–{:.2}×", self.min, self.max)
        }
    }

    /// `0.75× (median of rounds; 0.55×–1.25×)`, or `0.75×` for one round.
    fn text(&self) -> String {
        if self.rounds < 2 {
            self.median_text()
        } else {
            format!(
                "{} (median of rounds; {})",
                self.median_text(),
                self.range_text()
            )
        }
    }
}

impl Report {
    /// Each round's results of `kind`.
    pub fn rounds_of(&self, kind: ServerKind) -> Option<&[ServerResults]> {
        self.rounds
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, rounds)| rounds.as_slice())
    }

    /// `value` of `ours` ÷ `value` of `theirs` in `scenario`, per round; `None` when
    /// either server or the scenario was not measured.
    fn ratio(
        &self,
        ours: ServerKind,
        theirs: ServerKind,
        scenario: Scenario,
        value: fn(&Measurement) -> f64,
    ) -> Option<RoundRatio> {
        if !scenario.measured(self.params.scenarios) {
            return None;
        }
        let (ours, theirs) = (self.rounds_of(ours)?, self.rounds_of(theirs)?);
        RoundRatio::of(
            ours.iter()
                .zip(theirs)
                .map(|(a, b)| value(scenario.pick(a)) / value(scenario.pick(b)).max(1e-9))
                .collect(),
        )
    }

    fn get(&self, kind: ServerKind) -> Option<&ServerResults> {
        self.results
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, results)| results)
    }

    /// Lost increments of `kind` over every round, when scenario 3 ran.
    fn lost(&self, kind: ServerKind) -> Option<i64> {
        Scenario::Shared
            .measured(self.params.scenarios)
            .then(|| self.get(kind).map(|r| r.shared.lost()))
            .flatten()
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

/// "Run <date>, commit <hash>." and whether `bench/` had uncommitted changes.
pub fn provenance() -> String {
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    // The run's own output (bench/results) is written before the report: not a change.
    let dirty = command_output(
        "git",
        &["status", "--porcelain", "--", "..", ":(exclude)../results"],
    )
    .is_some_and(|status| !status.is_empty());
    format!(
        "Run {date}, commit {commit}{}.",
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        }
    )
}

/// Renders the report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let facts = &report.facts;
    let params = &report.params;
    let _ = writeln!(out, "## Load benchmark results\n");
    let _ = writeln!(out, "{}\n", provenance());
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

    let cache = if report.cache_env.is_empty() {
        "its defaults: on, kept coherent by Redis's client tracking, at most 10,000 sessions \
         and 64 MiB"
            .to_owned()
    } else {
        report
            .cache_env
            .iter()
            .map(|(name, value)| format!("`{name}={value}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "Ours runs with `SessionConfig::default()`; its in-process cache with {cache}.\n"
    );

    for chart in &report.charts {
        let _ = writeln!(out, "![{}]({})\n", chart.title, chart.file_name());
    }

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
    comparison(
        &mut out,
        report,
        "tower-sessions + moka (a'): ours against tower-sessions' own cache",
        "Ours ÷ (a'), both on axum over the same Redis, (a') with tower-sessions' \
         `CachingSessionStore` and a moka cache of 10,000 sessions in front of the same store \
         as (a)",
        ServerKind::Ours,
        ServerKind::TowerMoka,
    );
    comparison(
        &mut out,
        report,
        "actix-web: ours (session-actix) against actix-session",
        "Ours ÷ actix-session, both on actix-web 4 and Redis",
        ServerKind::OursActix,
        ServerKind::ActixSession,
    );
    if let Some(memory) = &report.memory {
        let _ = writeln!(out, "### Memory check\n");
        memory_section(&mut out, memory, report.memory_chart.as_ref());
    }
    out
}

/// Ours ÷ another server in each scenario, same run: req/s and server CPU per request.
fn comparison(
    out: &mut String,
    report: &Report,
    title: &str,
    what: &str,
    ours: ServerKind,
    theirs: ServerKind,
) {
    if report.get(ours).is_none() || report.get(theirs).is_none() {
        return;
    }
    let _ = writeln!(
        out,
        "### {title}\n\n{what}: higher is better for req/s, lower for CPU.\n"
    );
    let _ = writeln!(
        out,
        "| scenario | req/s | server CPU µs/req | lost increments (ours / theirs) |\n\
         |---|---|---|---|"
    );
    for scenario in Scenario::ALL {
        let text = |value: fn(&Measurement) -> f64| {
            report
                .ratio(ours, theirs, scenario, value)
                .map_or_else(|| "n/a".to_owned(), |r| r.text())
        };
        if !scenario.measured(report.params.scenarios) {
            continue;
        }
        let lost = match (scenario, report.lost(ours), report.lost(theirs)) {
            (Scenario::Shared, Some(a), Some(b)) => format!("{a} / {b}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {lost} |",
            scenario.title(),
            text(Measurement::rps),
            text(Measurement::server_cpu_us_per_request),
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

/// One target: ours ÷ another server in a scenario, at least (req/s) or at most (CPU)
/// `goal`.
struct Target {
    name: &'static str,
    ours: ServerKind,
    theirs: ServerKind,
    scenario: Scenario,
    value: fn(&Measurement) -> f64,
    goal: f64,
    /// Met when the ratio is at least the goal (req/s), otherwise at most (CPU).
    at_least: bool,
    /// Also needs 0 lost increments for `ours` in scenario 3.
    no_lost_increments: bool,
}

/// The targets of the issue, in its order. Each compares medians of per-round ratios.
const TARGETS: [Target; 10] = [
    Target {
        name: "counter: ours ≥ 1.3× tower-sessions, req/s",
        ours: ServerKind::Ours,
        theirs: ServerKind::TowerSessions,
        scenario: Scenario::Counter,
        value: Measurement::rps,
        goal: 1.3,
        at_least: true,
        no_lost_increments: false,
    },
    Target {
        name: "counter: ours ≥ 1.0× (b), req/s",
        ours: ServerKind::Ours,
        theirs: ServerKind::Fred,
        scenario: Scenario::Counter,
        value: Measurement::rps,
        goal: 1.0,
        at_least: true,
        no_lost_increments: false,
    },
    Target {
        name: "counter: ours on actix-web ≥ 1.1× actix-session, req/s",
        ours: ServerKind::OursActix,
        theirs: ServerKind::ActixSession,
        scenario: Scenario::Counter,
        value: Measurement::rps,
        goal: 1.1,
        at_least: true,
        no_lost_increments: false,
    },
    Target {
        name: "read-only: ours ≥ 1.5× (b), req/s",
        ours: ServerKind::Ours,
        theirs: ServerKind::Fred,
        scenario: Scenario::Read,
        value: Measurement::rps,
        goal: 1.5,
        at_least: true,
        no_lost_increments: false,
    },
    Target {
        name: "read-only: ours ≥ 1.5× tower-sessions, req/s",
        ours: ServerKind::Ours,
        theirs: ServerKind::TowerSessions,
        scenario: Scenario::Read,
        value: Measurement::rps,
        goal: 1.5,
        at_least: true,
        no_lost_increments: false,
    },
    Target {
        name: "read-only: ours on actix-web ≥ 1.3× actix-session, req/s",
        ours: ServerKind::OursActix,
        theirs: ServerKind::ActixSession,
        scenario: Scenario::Read,
        value: Measurement::rps,
        goal: 1.3,
        at_least: true,
        no_lost_increments: false,
    },
    Target {
        name: "one shared session: ours ≥ 1.0× tower-sessions, req/s, with 0 lost increments",
        ours: ServerKind::Ours,
        theirs: ServerKind::TowerSessions,
        scenario: Scenario::Shared,
        value: Measurement::rps,
        goal: 1.0,
        at_least: true,
        no_lost_increments: true,
    },
    Target {
        name: "server CPU per request ≤ tower-sessions', scenario 1 (counter)",
        ours: ServerKind::Ours,
        theirs: ServerKind::TowerSessions,
        scenario: Scenario::Counter,
        value: Measurement::server_cpu_us_per_request,
        goal: 1.0,
        at_least: false,
        no_lost_increments: false,
    },
    Target {
        name: "server CPU per request ≤ tower-sessions', scenario 2 (read-only)",
        ours: ServerKind::Ours,
        theirs: ServerKind::TowerSessions,
        scenario: Scenario::Read,
        value: Measurement::server_cpu_us_per_request,
        goal: 1.0,
        at_least: false,
        no_lost_increments: false,
    },
    Target {
        name: "server CPU per request ≤ tower-sessions', scenario 3 (one shared session)",
        ours: ServerKind::Ours,
        theirs: ServerKind::TowerSessions,
        scenario: Scenario::Shared,
        value: Measurement::server_cpu_us_per_request,
        goal: 1.0,
        at_least: false,
        no_lost_increments: false,
    },
];

/// Whether `target` was met by `ratio` (and `lost`, when it counts); `None`: not measured.
fn verdict(target: &Target, ratio: Option<RoundRatio>, lost: Option<i64>) -> Option<bool> {
    let ratio = ratio?;
    let in_goal = if target.at_least {
        ratio.median >= target.goal
    } else {
        ratio.median <= target.goal
    };
    if target.no_lost_increments {
        Some(in_goal && lost? == 0)
    } else {
        Some(in_goal)
    }
}

fn targets(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "### Targets\n\nEach ratio is ours ÷ the other server, computed within each round and \
         the median taken over the rounds (the range over the rounds beside it); req/s \
         targets are met at or above the goal, CPU targets at or below it.\n"
    );
    let _ = writeln!(
        out,
        "| target | median ratio | rounds | lost increments | result |\n|---|---|---|---|---|"
    );
    let met_text = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    for target in &TARGETS {
        let ratio = report.ratio(target.ours, target.theirs, target.scenario, target.value);
        let lost = report.lost(target.ours);
        let lost_text = match (target.no_lost_increments, lost) {
            (true, Some(lost)) => lost.to_string(),
            (true, None) => "n/a".to_owned(),
            (false, _) => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {lost_text} | {} |",
            target.name,
            ratio.map_or_else(|| "n/a".to_owned(), |r| r.median_text()),
            ratio.map_or_else(|| "n/a".to_owned(), |r| r.range_text()),
            met_text(verdict(target, ratio, lost)),
        );
    }
    // 0 lost increments is kept on both frameworks, whatever the speed.
    for kind in [ServerKind::Ours, ServerKind::OursActix] {
        let lost = report.lost(kind);
        let _ = writeln!(
            out,
            "| one shared session: 0 lost increments, {} | | | {} | {} |",
            kind.label(),
            lost.map_or_else(|| "n/a".to_owned(), |l| l.to_string()),
            met_text(lost.map(|l| l == 0)),
        );
    }
    let _ = writeln!(out);
}

/// The memory check's figures, with its chart when there is one.
pub fn memory_section(out: &mut String, memory: &MemoryResult, chart: Option<&Chart>) {
    let params = &memory.params;
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let signed_mib = |kib: i64| format!("{:+.1} MiB", kib as f64 / 1024.0);
    let _ = writeln!(
        out,
        "Ours on Redis with `SESSION_CACHE_MAX_ENTRIES={}` (every other option at its \
         default): {} sessions created with `POST /login`, then each read once with `GET /` \
         (most of them evicted by then, so the reads churn the cache), over {} connections, \
         in {:.1} s. The server's resident set size (`VmRSS`, `/proc/<pid>/status`) is read \
         before the first request and after every batch of requests.\n",
        params.cache_entries, params.sessions, params.connections, memory.elapsed_s
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| entries the cache bound allows | {} (and at most 64 MiB) |",
        params.cache_entries
    );
    let _ = writeln!(
        out,
        "| RSS before (listening, no session) | {} |",
        mib(memory.before.rss_kib)
    );
    let _ = writeln!(
        out,
        "| RSS with the cache full ({} sessions created) | {} ({}) |",
        memory.cache_full_sessions,
        mib(memory.cache_full.rss_kib),
        signed_mib(memory.filling_growth_kib())
    );
    let _ = writeln!(
        out,
        "| RSS after creating all {} sessions | {} |",
        params.sessions,
        mib(memory.after_creates.rss_kib)
    );
    let _ = writeln!(
        out,
        "| RSS after reading each once | {} ({} since the cache was full) |",
        mib(memory.after.rss_kib),
        signed_mib(memory.later_growth_kib())
    );
    let _ = writeln!(
        out,
        "| peak RSS (`VmHWM`) | {} |",
        mib(memory.after.peak_kib)
    );
    let _ = writeln!(
        out,
        "| keys in Redis at the end (each session and its user's owner index) | {} |",
        memory.stored_sessions
    );
    let _ = writeln!(
        out,
        "| errors (non-`200`, or a read without its user) | {} |",
        memory.errors
    );
    let _ = writeln!(
        out,
        "| RSS stayed bounded | {} |\n",
        if memory.bounded() {
            "yes: everything after the cache filled added no more than filling it did"
        } else {
            "**no**: RSS grew more after the cache was full than while it filled"
        }
    );
    if let Some(chart) = chart {
        let _ = writeln!(out, "![{}]({})\n", chart.title, chart.file_name());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::{Scenarios, SharedOutcome};

    /// One round's results: `rps` in every scenario, `cpu_us` per request, `lost` in 3.
    pub(crate) fn results(rps: f64, cpu_us: f64, lost: i64) -> ServerResults {
        let measurement = Measurement {
            ok: (rps * 10.0) as u64,
            elapsed_s: 10.0,
            server_cpu_s: rps * 10.0 * cpu_us / 1e6,
            ..Measurement::default()
        };
        let acknowledged = measurement.ok;
        ServerResults {
            counter: measurement.clone(),
            read: measurement.clone(),
            shared: SharedOutcome {
                measurement,
                acknowledged,
                final_counter: acknowledged as i64 - lost,
            },
        }
    }

    /// A report of `rounds`, each a list of servers' results.
    pub(crate) fn report(rounds: Vec<(ServerKind, Vec<ServerResults>)>) -> Report {
        let count = rounds.first().map_or(1, |(_, r)| r.len());
        Report {
            facts: MachineFacts {
                cores: 2,
                cpu_model: "test".into(),
                kernel: "test".into(),
                redis_version: "7".into(),
                load_average: "0 0 0".into(),
                rustc: "rustc".into(),
            },
            params: LoadParams {
                scenarios: Scenarios {
                    counter: true,
                    read: true,
                    shared: true,
                },
                rounds: count,
                connections: 32,
                sessions: 1024,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(10),
                max_requests: 1000,
            },
            pinned: true,
            redis_pinned: true,
            nice: None,
            realtime: None,
            redis_url: "redis://127.0.0.1:6379/15".into(),
            cache_env: Vec::new(),
            results: rounds
                .iter()
                .map(|(kind, r)| (*kind, ServerResults::median(r.clone())))
                .collect(),
            rounds,
            memory: None,
            charts: Vec::new(),
            memory_chart: None,
        }
    }

    #[test]
    fn a_round_ratio_is_the_median_of_the_rounds() {
        let ratio = RoundRatio::of(vec![1.2, 0.8, 1.0]).unwrap();
        assert_eq!((ratio.median, ratio.min, ratio.max), (1.0, 0.8, 1.2));
        assert_eq!(ratio.text(), "1.00× (median of rounds; 0.80×–1.20×)");
        assert_eq!(
            RoundRatio::of(vec![1.0, 2.0, 1.2, 0.8]).unwrap().median,
            1.1
        );
        assert_eq!(RoundRatio::of(vec![0.5]).unwrap().range_text(), "one round");
        assert_eq!(RoundRatio::of(Vec::new()), None);
    }

    #[test]
    fn targets_compare_within_rounds_and_take_the_median() {
        // Round by round ours is 1.5×, 1.2× and 1.4× tower-sessions' req/s, while the
        // median rows alone (ours 1500 against tower-sessions 1200) would say 1.25×.
        let report = report(vec![
            (
                ServerKind::TowerSessions,
                vec![
                    results(1000.0, 20.0, 90),
                    results(1250.0, 20.0, 90),
                    results(1200.0, 20.0, 90),
                ],
            ),
            (
                ServerKind::Ours,
                vec![
                    results(1500.0, 18.0, 0),
                    results(1500.0, 22.0, 0),
                    results(1680.0, 19.0, 0),
                ],
            ),
        ]);
        let markdown = render(&report);
        assert!(
            markdown.contains(
                "| counter: ours ≥ 1.3× tower-sessions, req/s | 1.40× | 1.20×–1.50× |  | met |"
            ),
            "{markdown}"
        );
        // CPU: 0.90×, 1.10×, 0.95× of tower-sessions': the median is at most 1.0×.
        assert!(markdown.contains(
            "| server CPU per request ≤ tower-sessions', scenario 1 (counter) | 0.95× | \
             0.90×–1.10× |  | met |"
        ));
        assert!(markdown.contains(
            "| one shared session: ours ≥ 1.0× tower-sessions, req/s, with 0 lost increments \
             | 1.40× | 1.20×–1.50× | 0 | met |"
        ));
        // Servers that did not run are not counted as met.
        assert!(
            markdown.contains("| counter: ours ≥ 1.0× (b), req/s | n/a | n/a |  | not measured |")
        );
    }

    #[test]
    fn a_lost_increment_misses_the_shared_target_and_slow_cpu_misses() {
        let report = report(vec![
            (ServerKind::TowerSessions, vec![results(1000.0, 20.0, 90)]),
            (ServerKind::Ours, vec![results(2000.0, 21.0, 1)]),
        ]);
        let markdown = render(&report);
        assert!(markdown.contains(
            "| one shared session: ours ≥ 1.0× tower-sessions, req/s, with 0 lost increments \
             | 2.00× | one round | 1 | **missed** |"
        ));
        assert!(markdown.contains(
            "| server CPU per request ≤ tower-sessions', scenario 2 (read-only) | 1.05× | \
             one round |  | **missed** |"
        ));
    }
}
