//! `run`: the whole benchmark. For each server in turn: empty the benchmark's Redis
//! database, start the server pinned to core 0, run the load generator pinned to core 1
//! (next to Redis), stop the server. Then the memory check, the charts, and the report,
//! printed and written to a file.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::args::Args;
use crate::charts;
use crate::load::{LoadParams, ServerResults};
use crate::machine::{
    can_raise_priority, can_use_realtime, cpu_affinity, nice_value, scheduling, set_cpu_affinity,
    set_nice_value, set_scheduling, taskset_available, MachineFacts, RedisAdmin, Scheduling,
};
use crate::memory::{self, MemoryParams};
use crate::report::{self, Report};
use crate::servers::ours::CACHE_ENV_NAMES;
use crate::servers::ServerKind;

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const DEFAULT_DB: u32 = 15;
/// How long a server may take to connect to Redis and start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const SERVER_CORE: &str = "0";
const LOAD_CORE: &str = "1";
/// The benchmark's processes run at this nice value when allowed, so that other work on
/// the machine (a build) disturbs the measurement less.
const BENCH_NICE: i32 = -10;
/// With `--realtime`: SCHED_RR at this priority, which other (normal) processes cannot
/// preempt. The kernel's real-time throttling still leaves them 5 % of each core.
const BENCH_RT_PRIORITY: u32 = 10;

/// Runs the benchmark as configured by `args` and the environment.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args = Args::parse(args, &["no-pin", "no-nice", "realtime", "no-memory"])?;
    let params = LoadParams::from_args(&args)?;
    let memory_params = if args.switch("no-memory") {
        None
    } else {
        Some(MemoryParams::from_args(&args)?)
    };
    let servers = servers_arg(&args)?;
    let out = args
        .string("out")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/latest.md"));
    let (base_url, db) = redis_settings()?;
    let mut admin = RedisAdmin::connect(&base_url, db)?;
    let info = admin.info()?;
    let facts = MachineFacts::collect(info.version.clone());
    let pin = !args.switch("no-pin") && facts.cores >= 2 && taskset_available();
    if !args.switch("no-pin") && !pin {
        eprintln!("bench: not pinning (needs 2 cores and taskset); results are noisier");
    }
    // Redis shares the load generator's core. Its pid is only visible when it runs in
    // this machine's process namespace; its previous affinity is restored at the end.
    let redis_pid = info
        .pid
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    let _redis_pin = match (pin, redis_pid) {
        (true, Some(pid)) => Some(AffinityGuard::pin(pid, LOAD_CORE)?),
        _ => None,
    };
    let nice = (!args.switch("no-nice") && can_raise_priority(BENCH_NICE)).then_some(BENCH_NICE);
    let _redis_nice = match (nice, redis_pid) {
        (Some(nice), Some(pid)) => Some(NiceGuard::set(pid, nice)?),
        _ => None,
    };
    let realtime = args.switch("realtime");
    if realtime && !can_use_realtime(BENCH_RT_PRIORITY) {
        bail!("--realtime needs permission to use SCHED_RR (root or CAP_SYS_NICE)");
    }
    let rt = Scheduling {
        policy: "--rr",
        priority: BENCH_RT_PRIORITY,
    };
    let _redis_rt = match (realtime, redis_pid) {
        (true, Some(pid)) => Some(SchedulingGuard::set(pid, rt)?),
        _ => None,
    };
    let launch = Launch {
        pin,
        nice,
        realtime: realtime.then_some(rt),
    };

    let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
    let mut rounds: Vec<(ServerKind, Vec<ServerResults>)> =
        servers.iter().map(|&kind| (kind, Vec::new())).collect();
    for round in 0..params.rounds {
        // Each round starts with the next server, so slow drifts in the machine's
        // background load do not always hit the same one.
        for offset in 0..rounds.len() {
            let index = (round + offset) % rounds.len();
            let kind = rounds[index].0;
            eprintln!(
                "bench: round {}/{}: {}",
                round + 1,
                params.rounds,
                kind.label()
            );
            admin.flush()?;
            let result = run_server(&exe, kind, &admin.url, redis_pid, &params, launch)
                .with_context(|| format!("benchmark of {} failed", kind.name()))?;
            rounds[index].1.push(result);
        }
    }
    admin.flush()?;
    let memory = match &memory_params {
        Some(memory_params) => Some(
            memory::check(&exe, &mut admin, memory_params).context("the memory check failed")?,
        ),
        None => None,
    };
    let results = rounds
        .iter()
        .map(|(kind, results)| (*kind, ServerResults::median(results.clone())))
        .collect();

    let cache_env = CACHE_ENV_NAMES
        .iter()
        .filter_map(|&name| Some((name.to_owned(), std::env::var(name).ok()?)))
        .collect();
    let mut report = Report {
        facts,
        params,
        pinned: pin,
        redis_pinned: pin && redis_pid.is_some(),
        nice,
        realtime: launch.realtime.map(|rt| rt.priority),
        redis_url: admin.url.clone(),
        cache_env,
        results,
        rounds,
        memory,
        charts: Vec::new(),
        memory_chart: None,
    };
    create_parent(&out)?;
    report.charts = charts::results(&report, &out)?;
    if let Some(memory) = &report.memory {
        report.memory_chart = Some(charts::memory(memory, &charts::path_next_to(&out, "rss"))?);
    }
    let markdown = report::render(&report);
    print!("{markdown}");
    write_report(&out, &markdown)
}

/// `REDIS_URL` (or the default) and `BENCH_REDIS_DB` (or 15).
pub fn redis_settings() -> anyhow::Result<(String, u32)> {
    let base_url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    let db: u32 = match std::env::var("BENCH_REDIS_DB") {
        Ok(db) => db.trim().parse().context("invalid BENCH_REDIS_DB")?,
        Err(_) => DEFAULT_DB,
    };
    Ok((base_url, db))
}

/// Creates the directory `out` goes in.
pub fn create_parent(out: &std::path::Path) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// Writes the Markdown report to `out` (its directory created if needed).
pub fn write_report(out: &std::path::Path, markdown: &str) -> anyhow::Result<()> {
    create_parent(out)?;
    std::fs::write(out, markdown).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("bench: report written to {}", out.display());
    Ok(())
}

/// How the benchmark's processes are started.
#[derive(Clone, Copy, Debug)]
struct Launch {
    pin: bool,
    nice: Option<i32>,
    realtime: Option<Scheduling>,
}

/// A command for this executable, pinned to `core`, reniced and real-time when asked.
/// `chrt`, `nice` and `taskset` all exec their command, so the child's pid is this
/// executable's.
fn command(exe: &std::path::Path, launch: Launch, core: &str) -> Command {
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if let Some(rt) = launch.realtime {
        argv.extend([
            "chrt".into(),
            rt.policy.into(),
            rt.priority.to_string().into(),
        ]);
    }
    if let Some(nice) = launch.nice {
        argv.extend(["nice".into(), "-n".into(), nice.to_string().into()]);
    }
    if launch.pin {
        argv.extend(["taskset".into(), "--cpu-list".into(), core.into()]);
    }
    argv.push(exe.into());
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}

fn run_server(
    exe: &std::path::Path,
    kind: ServerKind,
    redis_url: &str,
    redis_pid: Option<u32>,
    params: &LoadParams,
    launch: Launch,
) -> anyhow::Result<ServerResults> {
    let (mut server, port) = start_server(command(exe, launch, SERVER_CORE), kind, redis_url)?;

    let mut load = command(exe, launch, LOAD_CORE);
    load.args(["load", "--port", &port.to_string()])
        .args(["--server-pid", &server.0.id().to_string()])
        .args(params.to_args());
    load.args(["--redis", redis_url]);
    if let Some(pid) = redis_pid {
        load.args(["--redis-pid", &pid.to_string()]);
    }
    let output = load
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the load generator")?;
    if let Some(status) = server.0.try_wait()? {
        bail!("the server exited during the run ({status})");
    }
    if !output.status.success() {
        bail!("the load generator failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout).context("the load generator's output is not its JSON")
}

/// The servers `--servers LIST` names, or all of them.
pub fn servers_arg(args: &Args) -> anyhow::Result<Vec<ServerKind>> {
    match args.string("servers") {
        None => Ok(ServerKind::ALL.to_vec()),
        Some(list) => list
            .split(',')
            .map(|name| name.trim().parse().map_err(anyhow::Error::msg))
            .collect(),
    }
}

/// Runs `command` (this executable, or a wrapper that execs it: taskset, chrt, valgrind)
/// as the `serve` of `kind` on `redis_url`, and waits for the port it listens on. The
/// caller sets the command's environment and stderr.
pub fn start_server(
    mut command: Command,
    kind: ServerKind,
    redis_url: &str,
) -> anyhow::Result<(ChildGuard, u16)> {
    let child = command
        .args(["serve", "--server", kind.name(), "--redis", redis_url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the server")?;
    let mut server = ChildGuard(child);
    let port = read_port(&mut server.0)?;
    Ok((server, port))
}

/// Waits for the server's first stdout line: the port it listens on.
pub fn read_port(child: &mut Child) -> anyhow::Result<u16> {
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = send.send(read.map(|_| line));
    });
    match receive.recv_timeout(START_TIMEOUT) {
        Ok(Ok(line)) if !line.trim().is_empty() => line
            .trim()
            .parse()
            .with_context(|| format!("the server printed {line:?} instead of its port")),
        Ok(_) => bail!("the server exited before listening (see its error above)"),
        Err(_) => bail!("the server did not start listening within {START_TIMEOUT:?}"),
    }
}

/// Kills (by its own pid) and reaps the child when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pins a process to a CPU list and restores its previous list when dropped.
struct AffinityGuard {
    pid: u32,
    previous: String,
}

impl AffinityGuard {
    fn pin(pid: u32, list: &str) -> anyhow::Result<AffinityGuard> {
        let previous = cpu_affinity(pid).context("cannot read Redis's CPU affinity")?;
        set_cpu_affinity(pid, list)?;
        Ok(AffinityGuard { pid, previous })
    }
}

impl Drop for AffinityGuard {
    fn drop(&mut self) {
        if let Err(error) = set_cpu_affinity(self.pid, &self.previous) {
            eprintln!(
                "bench: could not restore Redis's CPU affinity {}: {error:#}",
                self.previous
            );
        }
    }
}

/// Sets a process's nice value and restores the previous one when dropped.
struct NiceGuard {
    pid: u32,
    previous: i32,
}

impl NiceGuard {
    fn set(pid: u32, nice: i32) -> anyhow::Result<NiceGuard> {
        let previous = nice_value(pid).context("cannot read Redis's nice value")?;
        set_nice_value(pid, nice)?;
        Ok(NiceGuard { pid, previous })
    }
}

impl Drop for NiceGuard {
    fn drop(&mut self) {
        if let Err(error) = set_nice_value(self.pid, self.previous) {
            eprintln!(
                "bench: could not restore Redis's nice value {}: {error:#}",
                self.previous
            );
        }
    }
}

/// Sets a process's scheduling policy and restores the previous one when dropped.
struct SchedulingGuard {
    pid: u32,
    previous: Scheduling,
}

impl SchedulingGuard {
    fn set(pid: u32, scheduling_policy: Scheduling) -> anyhow::Result<SchedulingGuard> {
        let previous = scheduling(pid).context("cannot read Redis's scheduling policy")?;
        set_scheduling(pid, scheduling_policy)?;
        Ok(SchedulingGuard { pid, previous })
    }
}

impl Drop for SchedulingGuard {
    fn drop(&mut self) {
        if let Err(error) = set_scheduling(self.pid, self.previous) {
            eprintln!(
                "bench: could not restore Redis's scheduling policy {:?}: {error:#}",
                self.previous
            );
        }
    }
}
