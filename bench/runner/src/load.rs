//! The load generator: N keep-alive HTTP/1.1 connections to one server on 127.0.0.1, each
//! sending its next request as soon as the previous answer arrived (closed loop), bounded
//! by a duration and a request count. Latencies go into an HDR histogram; the server's
//! CPU time is read from `/proc/<pid>/stat` at the exact start and end of each measurement.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{COOKIE, HOST, SET_COOKIE};
use hyper::http::HeaderValue;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::args::Args;
use crate::machine::{CpuClock, RedisAdmin};

/// A request that takes longer than this counts as an error and its connection is replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Latencies are recorded in microseconds, up to a minute.
const MAX_LATENCY_US: u64 = 60_000_000;

/// What one measurement found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Measurement {
    /// Responses with status 200.
    pub ok: u64,
    /// Other statuses, transport errors and timeouts.
    pub errors: u64,
    /// Wall time from the first request sent to the last answer received.
    pub elapsed_s: f64,
    /// Median latency of all completed requests, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// The server process's CPU time (user + system) during the measurement.
    pub server_cpu_s: f64,
    /// Redis's CPU time during the measurement, when its pid is known.
    pub redis_cpu_s: Option<f64>,
    /// The load generator's own CPU time during the measurement.
    pub client_cpu_s: f64,
    /// Redis commands executed per successful request, by command name (Lua's
    /// `redis.call`s included), from `INFO commandstats`.
    pub redis_commands_per_request: BTreeMap<String, f64>,
}

impl Measurement {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed_s.max(1e-9)
    }

    /// Server CPU microseconds per successful request.
    pub fn server_cpu_us_per_request(&self) -> f64 {
        self.server_cpu_s * 1e6 / (self.ok.max(1) as f64)
    }

    /// The load generator's CPU microseconds per successful request.
    pub fn client_cpu_us_per_request(&self) -> f64 {
        self.client_cpu_s * 1e6 / (self.ok.max(1) as f64)
    }

    /// Redis CPU microseconds per successful request.
    pub fn redis_cpu_us_per_request(&self) -> Option<f64> {
        self.redis_cpu_s
            .map(|cpu| cpu * 1e6 / (self.ok.max(1) as f64))
    }
}

/// Scenario 3's outcome: how many acknowledged increments the counter lacks.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SharedOutcome {
    /// The measurement itself (warm-up excluded).
    pub measurement: Measurement,
    /// `200` answers to `POST /counter` over warm-up and measurement.
    pub acknowledged: u64,
    /// The counter's value read back with `GET /` afterwards.
    pub final_counter: i64,
}

impl SharedOutcome {
    /// Acknowledged increments missing from the counter.
    pub fn lost(&self) -> i64 {
        self.acknowledged as i64 - self.final_counter
    }
}

/// Everything the load generator measured on one server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServerResults {
    /// Scenario 1: `POST /counter` spread over the distinct sessions.
    pub counter: Measurement,
    /// Scenario 2: `GET /` on the same sessions.
    pub read: Measurement,
    /// Scenario 3: `POST /counter` on one session shared by every connection.
    pub shared: SharedOutcome,
}

impl ServerResults {
    /// Combines several rounds: per scenario, the round with the median req/s (so each
    /// row's numbers come from one measurement); scenario 3's counts are summed, so lost
    /// increments are the total over all rounds.
    pub fn median(mut rounds: Vec<ServerResults>) -> ServerResults {
        fn pick(mut all: Vec<Measurement>) -> Measurement {
            all.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
            let middle = all.len() / 2;
            all.swap_remove(middle)
        }
        if rounds.len() == 1 {
            return rounds.remove(0);
        }
        let counter = pick(rounds.iter().map(|r| r.counter.clone()).collect());
        let read = pick(rounds.iter().map(|r| r.read.clone()).collect());
        let shared = SharedOutcome {
            measurement: pick(
                rounds
                    .iter()
                    .map(|r| r.shared.measurement.clone())
                    .collect(),
            ),
            acknowledged: rounds.iter().map(|r| r.shared.acknowledged).sum(),
            final_counter: rounds.iter().map(|r| r.shared.final_counter).sum(),
        };
        ServerResults {
            counter,
            read,
            shared,
        }
    }
}

/// One of the three scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// 1: `POST /counter` on distinct sessions.
    Counter,
    /// 2: `GET /` on the same sessions.
    Read,
    /// 3: `POST /counter` on one session shared by every connection.
    Shared,
}

impl Scenario {
    /// The three, in the order they run.
    pub const ALL: [Scenario; 3] = [Scenario::Counter, Scenario::Read, Scenario::Shared];

    /// This scenario's measurement in `results`.
    pub fn pick(self, results: &ServerResults) -> &Measurement {
        match self {
            Scenario::Counter => &results.counter,
            Scenario::Read => &results.read,
            Scenario::Shared => &results.shared.measurement,
        }
    }

    /// Whether it is among `scenarios`.
    pub fn measured(self, scenarios: Scenarios) -> bool {
        match self {
            Scenario::Counter => scenarios.counter,
            Scenario::Read => scenarios.read,
            Scenario::Shared => scenarios.shared,
        }
    }

    /// Its number and what it does, for tables and charts.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Counter => "1: POST /counter, distinct sessions",
            Scenario::Read => "2: GET /, read-only",
            Scenario::Shared => "3: POST /counter, one shared session",
        }
    }
}

/// Which scenarios run.
#[derive(Clone, Copy, Debug)]
pub struct Scenarios {
    pub counter: bool,
    pub read: bool,
    pub shared: bool,
}

impl std::str::FromStr for Scenarios {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut scenarios = Scenarios {
            counter: false,
            read: false,
            shared: false,
        };
        for name in list.split(',').map(str::trim) {
            match name {
                "counter" => scenarios.counter = true,
                "read" => scenarios.read = true,
                "shared" => scenarios.shared = true,
                other => {
                    return Err(format!(
                        "unknown scenario {other:?} (counter, read, shared)"
                    ))
                }
            }
        }
        Ok(scenarios)
    }
}

impl std::fmt::Display for Scenarios {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (self.counter, "counter"),
            (self.read, "read"),
            (self.shared, "shared"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        f.write_str(&names.join(","))
    }
}

/// How hard and how long to push.
#[derive(Clone, Debug)]
pub struct LoadParams {
    pub scenarios: Scenarios,
    pub rounds: usize,
    pub connections: usize,
    pub sessions: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub max_requests: u64,
}

impl LoadParams {
    /// Reads the parameters shared by `run` and `load` from `args`.
    pub fn from_args(args: &Args) -> anyhow::Result<LoadParams> {
        let params = LoadParams {
            scenarios: args.get_or(
                "scenarios",
                Scenarios {
                    counter: true,
                    read: true,
                    shared: true,
                },
            )?,
            rounds: args.get_or("rounds", 1)?,
            connections: args.get_or("connections", 32)?,
            sessions: args.get_or("sessions", 1024)?,
            warmup: Duration::from_secs_f64(args.get_or("warmup", 2.0)?),
            duration: Duration::from_secs_f64(args.get_or("duration", 10.0)?),
            max_requests: args.get_or("max-requests", 5_000_000)?,
        };
        if params.connections == 0 || params.sessions < params.connections {
            bail!("need at least one connection and at least as many sessions as connections");
        }
        if params.max_requests == 0 || params.rounds == 0 {
            bail!("--max-requests and --rounds must be positive");
        }
        Ok(params)
    }

    /// The same parameters as flags, for the `load` child process.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--scenarios".into(),
            self.scenarios.to_string(),
            "--connections".into(),
            self.connections.to_string(),
            "--sessions".into(),
            self.sessions.to_string(),
            "--warmup".into(),
            self.warmup.as_secs_f64().to_string(),
            "--duration".into(),
            self.duration.as_secs_f64().to_string(),
            "--max-requests".into(),
            self.max_requests.to_string(),
        ]
    }
}

/// `load`: runs the three scenarios against the server on `--port` and prints
/// [`ServerResults`] as JSON on stdout.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args = Args::parse(args, &[])?;
    let params = LoadParams::from_args(&args)?;
    let port: u16 = args.required("port")?;
    let server_pid: u32 = args.required("server-pid")?;
    let redis_pid: Option<u32> = match args.string("redis-pid") {
        Some(pid) => Some(pid.parse().context("invalid --redis-pid")?),
        None => None,
    };
    let clock = CpuClock::new()?;
    // Only for INFO commandstats at the edges of each measurement.
    let redis = match args.string("redis") {
        Some(url) => Some(Mutex::new(RedisAdmin::connect_url(url)?)),
        None => None,
    };
    // One thread: the load generator owns one core, next to Redis.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let target = Target {
        port,
        host: HeaderValue::try_from(format!("127.0.0.1:{port}"))?,
        server_pid,
        redis_pid,
        clock,
        redis,
    };
    let results = runtime.block_on(run_scenarios(Arc::new(target), &params))?;
    println!("{}", serde_json::to_string(&results)?);
    Ok(())
}

/// The server under load, and how to account for it.
pub(crate) struct Target {
    port: u16,
    host: HeaderValue,
    server_pid: u32,
    redis_pid: Option<u32>,
    clock: CpuClock,
    redis: Option<Mutex<RedisAdmin>>,
}

impl Target {
    /// A target for plain requests, with no CPU or Redis accounting.
    pub(crate) fn http(port: u16, server_pid: u32) -> anyhow::Result<Target> {
        Ok(Target {
            port,
            host: HeaderValue::try_from(format!("127.0.0.1:{port}"))?,
            server_pid,
            redis_pid: None,
            clock: CpuClock::new()?,
            redis: None,
        })
    }

    /// The server's port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub(crate) fn server_pid(&self) -> u32 {
        self.server_pid
    }

    /// Redis's command counters, empty when unknown.
    fn redis_command_calls(&self) -> BTreeMap<String, u64> {
        let Some(redis) = &self.redis else {
            return BTreeMap::new();
        };
        match redis.lock() {
            Ok(mut redis) => redis.command_calls().unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        }
    }
}

pub(crate) type Sender = SendRequest<Empty<Bytes>>;

/// One connection and the sessions it cycles through.
struct Worker {
    sender: Sender,
    cookies: Vec<HeaderValue>,
    next: usize,
}

/// Opens a keep-alive HTTP/1.1 connection to the server on `port` (no Nagle delay).
pub(crate) async fn connect(port: u16) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot connect to 127.0.0.1:{port}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A response, read whole.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub set_cookie: Option<HeaderValue>,
    pub body: Bytes,
}

/// Sends one request with an empty body and reads the whole answer.
pub(crate) async fn send(
    sender: &mut Sender,
    target: &Target,
    method: &Method,
    path: &str,
    cookie: Option<&HeaderValue>,
) -> anyhow::Result<Answer> {
    let mut request = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(HOST, target.host.clone());
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie.clone());
    }
    let request = request.body(Empty::<Bytes>::new())?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let set_cookie = response.headers().get(SET_COOKIE).cloned();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        set_cookie,
        body,
    })
}

/// The `name=value` part of a `Set-Cookie` header, to send back as `Cookie`.
fn cookie_from_set_cookie(set_cookie: &HeaderValue) -> anyhow::Result<HeaderValue> {
    let text = set_cookie.to_str()?;
    let pair = text.split(';').next().unwrap_or_default().trim();
    if !pair.contains('=') {
        bail!("unexpected Set-Cookie {text:?}");
    }
    Ok(HeaderValue::try_from(pair)?)
}

/// Starts a session with `POST /login?user=NAME` and returns its cookie.
pub(crate) async fn login(
    sender: &mut Sender,
    target: &Target,
    user: &str,
) -> anyhow::Result<HeaderValue> {
    let answer = send(
        sender,
        target,
        &Method::POST,
        &format!("/login?user={user}"),
        None,
    )
    .await?;
    if answer.status != StatusCode::OK {
        bail!("POST /login answered {}", answer.status);
    }
    let set_cookie = answer
        .set_cookie
        .ok_or_else(|| anyhow!("POST /login set no cookie"))?;
    cookie_from_set_cookie(&set_cookie)
}

async fn run_scenarios(target: Arc<Target>, params: &LoadParams) -> anyhow::Result<ServerResults> {
    // Sessions are dealt out round-robin: connection c owns sessions c, c+N, c+2N, ..., so
    // no two connections touch the same session in scenarios 1 and 2.
    let mut workers = Vec::with_capacity(params.connections);
    for _ in 0..params.connections {
        workers.push(Worker {
            sender: connect(target.port).await?,
            cookies: Vec::new(),
            next: 0,
        });
    }
    let mut logins = JoinSet::new();
    for (index, mut worker) in workers.into_iter().enumerate() {
        let target = target.clone();
        let (connections, sessions) = (params.connections, params.sessions);
        logins.spawn(async move {
            for session in (index..sessions).step_by(connections) {
                let cookie = login(&mut worker.sender, &target, &format!("user{session}")).await?;
                worker.cookies.push(cookie);
            }
            anyhow::Ok(worker)
        });
    }
    let mut workers: Vec<Worker> = Vec::with_capacity(params.connections);
    while let Some(worker) = logins.join_next().await {
        workers.push(worker??);
    }
    eprintln!("  {} sessions created", params.sessions);

    let counter = Arc::new(Route {
        method: Method::POST,
        path: "/counter",
    });
    let read = Arc::new(Route {
        method: Method::GET,
        path: "/",
    });

    let run = |workers, route, duration| phase(workers, &target, route, duration, params);
    let mut results = ServerResults::default();

    if params.scenarios.counter {
        let (warm, _) = run(workers, &counter, params.warmup).await?;
        let (done, measurement) = run(warm, &counter, params.duration).await?;
        eprintln!("  scenario 1 (counter): {}", summary(&measurement));
        (workers, results.counter) = (done, measurement);
    }

    if params.scenarios.read {
        let (warm, _) = run(workers, &read, params.warmup).await?;
        let (done, measurement) = run(warm, &read, params.duration).await?;
        eprintln!("  scenario 2 (read):    {}", summary(&measurement));
        (workers, results.read) = (done, measurement);
    }

    if params.scenarios.shared {
        let shared_cookie = login(&mut workers[0].sender, &target, "shared").await?;
        for worker in &mut workers {
            worker.cookies = vec![shared_cookie.clone()];
            worker.next = 0;
        }
        let (warm, warmup) = run(workers, &counter, params.warmup).await?;
        let (mut done, measurement) = run(warm, &counter, params.duration).await?;
        let answer = send(
            &mut done[0].sender,
            &target,
            &Method::GET,
            "/",
            Some(&shared_cookie),
        )
        .await?;
        let session: serde_json::Value =
            serde_json::from_slice(&answer.body).with_context(|| {
                format!(
                    "GET / answered {} with a body that is not JSON",
                    answer.status
                )
            })?;
        let final_counter = session
            .get("counter")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        results.shared = SharedOutcome {
            acknowledged: warmup.ok + measurement.ok,
            final_counter,
            measurement,
        };
        eprintln!(
            "  scenario 3 (shared):  {}, {} acknowledged, counter {}, {} lost",
            summary(&results.shared.measurement),
            results.shared.acknowledged,
            results.shared.final_counter,
            results.shared.lost()
        );
    }
    Ok(results)
}

fn summary(m: &Measurement) -> String {
    format!(
        "{:.0} req/s, p50 {} us, p99 {} us, server CPU {:.1} us/req, {} errors",
        m.rps(),
        m.p50_us,
        m.p99_us,
        m.server_cpu_us_per_request(),
        m.errors
    )
}

struct Route {
    method: Method,
    path: &'static str,
}

struct WorkerStats {
    histogram: Histogram<u64>,
    ok: u64,
    errors: u64,
}

/// Drives every worker for `duration` (or until `max_requests` were sent) and measures.
/// Fails when a connection broke and could not be re-established (the server died).
async fn phase(
    workers: Vec<Worker>,
    target: &Arc<Target>,
    route: &Arc<Route>,
    duration: Duration,
    params: &LoadParams,
) -> anyhow::Result<(Vec<Worker>, Measurement)> {
    let max_requests = params.max_requests;
    let budget = Arc::new(AtomicU64::new(0));
    let server_before = target.clock.process_cpu(target.server_pid);
    let redis_before = target.redis_pid.map(|pid| target.clock.process_cpu(pid));
    let client_before = target.clock.process_cpu(std::process::id());
    let commands_before = target.redis_command_calls();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for worker in workers {
        let (target, route, budget) = (target.clone(), route.clone(), budget.clone());
        tasks.spawn(drive(worker, target, route, deadline, budget, max_requests));
    }
    let mut workers = Vec::new();
    let mut histogram = new_histogram();
    let mut measurement = Measurement::default();
    while let Some(joined) = tasks.join_next().await {
        let (worker, stats) = joined.context("a load worker panicked")?;
        let _ = histogram.add(&stats.histogram);
        measurement.ok += stats.ok;
        measurement.errors += stats.errors;
        if let Some(worker) = worker {
            workers.push(worker);
        }
    }
    measurement.elapsed_s = start.elapsed().as_secs_f64();
    let server_after = target.clock.process_cpu(target.server_pid);
    let redis_after = target.redis_pid.map(|pid| target.clock.process_cpu(pid));
    let client_after = target.clock.process_cpu(std::process::id());
    let commands_after = target.redis_command_calls();
    for (name, calls) in commands_after {
        let before = commands_before.get(&name).copied().unwrap_or(0);
        // INFO is the benchmark's own; other traffic on a shared server would show here.
        if calls > before && name != "info" {
            let per_request = (calls - before) as f64 / measurement.ok.max(1) as f64;
            measurement
                .redis_commands_per_request
                .insert(name, per_request);
        }
    }
    measurement.server_cpu_s = server_after - server_before;
    measurement.redis_cpu_s = redis_before.zip(redis_after).map(|(b, a)| a - b);
    measurement.client_cpu_s = client_after - client_before;
    measurement.p50_us = histogram.value_at_quantile(0.50);
    measurement.p99_us = histogram.value_at_quantile(0.99);
    if workers.len() < params.connections {
        bail!(
            "{} of {} connections broke and could not be re-established: did the server stop?",
            params.connections - workers.len(),
            params.connections
        );
    }
    Ok((workers, measurement))
}

fn new_histogram() -> Histogram<u64> {
    // Bounds and precision are constants known to be valid.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// One connection's closed loop. Returns the worker, or `None` when its connection broke
/// and could not be re-established.
async fn drive(
    mut worker: Worker,
    target: Arc<Target>,
    route: Arc<Route>,
    deadline: Instant,
    budget: Arc<AtomicU64>,
    max_requests: u64,
) -> (Option<Worker>, WorkerStats) {
    let mut stats = WorkerStats {
        histogram: new_histogram(),
        ok: 0,
        errors: 0,
    };
    while Instant::now() < deadline && budget.fetch_add(1, Ordering::Relaxed) < max_requests {
        let cookie = &worker.cookies[worker.next % worker.cookies.len()];
        worker.next += 1;
        let sent = Instant::now();
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            send(
                &mut worker.sender,
                &target,
                &route.method,
                route.path,
                Some(cookie),
            ),
        )
        .await;
        let latency = sent.elapsed().as_micros().min(MAX_LATENCY_US as u128) as u64;
        let _ = stats.histogram.record(latency.max(1));
        match answer {
            Ok(Ok(answer)) if answer.status == StatusCode::OK => stats.ok += 1,
            Ok(Ok(_)) => stats.errors += 1,
            Ok(Err(_)) | Err(_) => {
                stats.errors += 1;
                match connect(target.port).await {
                    Ok(sender) => worker.sender = sender,
                    Err(_) => return (None, stats),
                }
            }
        }
    }
    (Some(worker), stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_the_name_value_pair() {
        let set_cookie = HeaderValue::from_static(
            "session=abc-_1; Expires=Thu, 01 Jan 2099 00:00:00 GMT; HttpOnly; Path=/",
        );
        assert_eq!(
            cookie_from_set_cookie(&set_cookie).unwrap(),
            "session=abc-_1"
        );
        assert!(cookie_from_set_cookie(&HeaderValue::from_static("garbage")).is_err());
    }

    #[test]
    fn lost_increments_are_acknowledged_minus_stored() {
        let outcome = SharedOutcome {
            acknowledged: 10,
            final_counter: 7,
            ..SharedOutcome::default()
        };
        assert_eq!(outcome.lost(), 3);
    }
}
