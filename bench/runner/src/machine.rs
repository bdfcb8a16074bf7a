//! Facts about the machine and processes: CPU time from `/proc`, core pinning with
//! `taskset`, and the Redis server the benchmark uses.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};

/// Reads processes' CPU time (user + system) from `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug)]
pub struct CpuClock {
    ticks_per_second: f64,
}

impl CpuClock {
    /// Asks `getconf CLK_TCK` for the unit of `/proc/<pid>/stat` (100 on Linux everywhere
    /// in practice, which is also the fallback).
    pub fn new() -> anyhow::Result<CpuClock> {
        let ticks = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0);
        Ok(CpuClock {
            ticks_per_second: ticks,
        })
    }

    /// CPU seconds `pid` has used so far, all threads included; 0 when it cannot be read.
    pub fn process_cpu(&self, pid: u32) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0.0;
        };
        // The command name (field 2) is in parentheses and may hold spaces: count from
        // the last ')'. utime and stime are fields 14 and 15.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return 0.0;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |index: usize| {
            fields
                .get(index)
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) / self.ticks_per_second
    }
}

/// A process's memory from `/proc/<pid>/status`, in KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessMemory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// The largest resident set size so far (`VmHWM`).
    pub peak_kib: u64,
}

impl ProcessMemory {
    /// Reads `pid`'s memory; `None` when its status cannot be read (the process is gone).
    pub fn of(pid: u32) -> Option<ProcessMemory> {
        parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
    }
}

/// `VmRSS:   1234 kB` and `VmHWM:` lines of a `/proc/<pid>/status` text.
fn parse_status(status: &str) -> Option<ProcessMemory> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?.trim();
            value.strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    Some(ProcessMemory {
        rss_kib: field("VmRSS")?,
        peak_kib: field("VmHWM")?,
    })
}

/// What the report says about the machine.
#[derive(Clone, Debug)]
pub struct MachineFacts {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub redis_version: String,
    pub load_average: String,
    pub rustc: String,
}

impl MachineFacts {
    /// Collects the facts; `redis_version` comes from the server's `INFO`.
    pub fn collect(redis_version: String) -> MachineFacts {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                (name.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned())
        };
        let load_average = read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let rustc = Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|text| text.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        MachineFacts {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease"),
            redis_version,
            load_average,
            rustc,
        }
    }
}

/// Whether `taskset` can be run.
pub fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The CPU list a process may run on (`Cpus_allowed_list` in `/proc/<pid>/status`).
pub fn cpu_affinity(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix("Cpus_allowed_list:")
            .map(|list| list.trim().to_owned())
    })
}

/// Pins every thread of `pid` to the CPUs in `list` (taskset syntax, e.g. `1` or `0-1`).
pub fn set_cpu_affinity(pid: u32, list: &str) -> anyhow::Result<()> {
    let output = Command::new("taskset")
        .args(["--all-tasks", "--cpu-list", "--pid", list, &pid.to_string()])
        .output()
        .context("cannot run taskset")?;
    if !output.status.success() {
        bail!(
            "taskset -a -c -p {list} {pid} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The nice value of `pid` (field 19 of `/proc/<pid>/stat`).
pub fn nice_value(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(16)?.parse().ok()
}

/// Sets the nice value of `pid` with `renice`.
pub fn set_nice_value(pid: u32, nice: i32) -> anyhow::Result<()> {
    let output = Command::new("renice")
        .args(["-n", &nice.to_string(), "-p", &pid.to_string()])
        .output()
        .context("cannot run renice")?;
    if !output.status.success() {
        bail!(
            "renice -n {nice} -p {pid} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Whether this process may raise priorities (a negative nice value needs root or
/// CAP_SYS_NICE).
pub fn can_raise_priority(nice: i32) -> bool {
    Command::new("nice")
        .args(["-n", &nice.to_string(), "true"])
        .output()
        .is_ok_and(|out| out.status.success() && out.stderr.is_empty())
}

/// A scheduling policy and priority, as `chrt` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheduling {
    /// The `chrt` flag of the policy: `--other`, `--fifo`, `--rr`, `--batch` or `--idle`.
    pub policy: &'static str,
    /// The real-time priority (0 for the non-real-time policies).
    pub priority: u32,
}

/// The scheduling policy of `pid` (fields 40 and 41 of `/proc/<pid>/stat`).
pub fn scheduling(pid: u32) -> Option<Scheduling> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let priority = fields.get(37)?.parse().ok()?;
    let policy = match fields.get(38)?.parse::<u32>().ok()? {
        0 => "--other",
        1 => "--fifo",
        2 => "--rr",
        3 => "--batch",
        5 => "--idle",
        _ => return None,
    };
    Some(Scheduling { policy, priority })
}

/// Applies `scheduling` to every thread of `pid` with `chrt`.
pub fn set_scheduling(pid: u32, scheduling: Scheduling) -> anyhow::Result<()> {
    let output = Command::new("chrt")
        .args([
            "--all-tasks",
            scheduling.policy,
            "--pid",
            &scheduling.priority.to_string(),
            &pid.to_string(),
        ])
        .output()
        .context("cannot run chrt")?;
    if !output.status.success() {
        bail!(
            "chrt {} -p {} {pid} failed: {}",
            scheduling.policy,
            scheduling.priority,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Whether this process may use a real-time policy (root or `CAP_SYS_NICE`).
pub fn can_use_realtime(priority: u32) -> bool {
    Command::new("chrt")
        .args(["--rr", &priority.to_string(), "true"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The Redis server the benchmark talks to, through a plain synchronous connection.
pub struct RedisAdmin {
    connection: redis::Connection,
    /// The URL the servers use: `REDIS_URL` with the benchmark's database.
    pub url: String,
}

/// Server facts from `INFO server`.
pub struct RedisInfo {
    pub version: String,
    pub pid: Option<u32>,
}

impl RedisAdmin {
    /// Connects to `base_url` and selects `db`. Fails with instructions when Redis does not
    /// answer, and refuses any host but this machine's loopback.
    pub fn connect(base_url: &str, db: u32) -> anyhow::Result<RedisAdmin> {
        let url = with_database(base_url, db)?;
        let client = redis::Client::open(url.as_str())
            .with_context(|| format!("invalid REDIS_URL {base_url:?}"))?;
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .with_context(|| {
                format!(
                    "Redis is not reachable at {base_url} (REDIS_URL). Start it with \
                     `cargo xtask services up redis`, or with `redis-server --bind 127.0.0.1 \
                     --port 6379 --daemonize yes --save '' --appendonly no` \
                     (Debian: `apt-get install -y redis-server`)"
                )
            })?;
        let mut admin = RedisAdmin { connection, url };
        let pong: String = redis::cmd("PING")
            .query(&mut admin.connection)
            .context("Redis did not answer PING")?;
        if pong != "PONG" {
            bail!("Redis answered PING with {pong:?}");
        }
        Ok(admin)
    }

    /// Connects to a URL that [`RedisAdmin::connect`] already checked.
    pub fn connect_url(url: &str) -> anyhow::Result<RedisAdmin> {
        let client = redis::Client::open(url).context("invalid Redis URL")?;
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .with_context(|| format!("Redis is not reachable at {url}"))?;
        Ok(RedisAdmin {
            connection,
            url: url.to_owned(),
        })
    }

    /// Calls per command so far, from `INFO commandstats` (server-wide).
    pub fn command_calls(&mut self) -> anyhow::Result<BTreeMap<String, u64>> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.connection)?;
        Ok(parse_command_calls(&info))
    }

    /// Version and process id, from `INFO server`.
    pub fn info(&mut self) -> anyhow::Result<RedisInfo> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut self.connection)?;
        let field = |name: &str| {
            info.lines().find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .map(|value| value.trim().to_owned())
            })
        };
        Ok(RedisInfo {
            version: field("redis_version").unwrap_or_else(|| "unknown".to_owned()),
            pid: field("process_id").and_then(|pid| pid.parse().ok()),
        })
    }

    /// How many keys the benchmark's database holds.
    pub fn key_count(&mut self) -> anyhow::Result<u64> {
        Ok(redis::cmd("DBSIZE").query(&mut self.connection)?)
    }

    /// Empties the benchmark's database (and only it).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        let () = redis::cmd("FLUSHDB").query(&mut self.connection)?;
        Ok(())
    }
}

/// `cmdstat_get:calls=12,usec=...` lines to `{"get": 12}`.
fn parse_command_calls(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// `url` with its database path replaced by `/db`. Only loopback hosts are accepted: the
/// benchmark sends its load to this machine alone.
fn with_database(url: &str, db: u32) -> anyhow::Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("REDIS_URL {url:?} is not a redis:// URL");
    };
    if scheme != "redis" {
        bail!("REDIS_URL must be a plain redis:// URL for the benchmark, not {scheme}://");
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("REDIS_URL must point at this machine (127.0.0.1, localhost or ::1), not {host:?}");
    }
    Ok(format!("redis://{authority}/{db}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_and_hosts_are_checked() {
        assert_eq!(
            with_database("redis://127.0.0.1:6379", 15).unwrap(),
            "redis://127.0.0.1:6379/15"
        );
        assert_eq!(
            with_database("redis://:pw@localhost:6380/3", 15).unwrap(),
            "redis://:pw@localhost:6380/15"
        );
        assert!(with_database("redis://10.0.0.1:6379", 15).is_err());
        assert!(with_database("rediss://127.0.0.1:6379", 15).is_err());
    }

    #[test]
    fn own_nice_value_and_policy_are_readable() {
        assert!(nice_value(std::process::id()).is_some());
        let own = scheduling(std::process::id()).unwrap();
        assert!(["--other", "--batch", "--idle", "--fifo", "--rr"].contains(&own.policy));
    }

    #[test]
    fn command_stats_are_parsed() {
        let info = "# Commandstats\r\ncmdstat_get:calls=12,usec=30,usec_per_call=2.50,\
                    rejected_calls=0,failed_calls=0\r\ncmdstat_evalsha:calls=3,usec=9\r\n";
        let calls = parse_command_calls(info);
        assert_eq!(calls.get("get"), Some(&12));
        assert_eq!(calls.get("evalsha"), Some(&3));
        assert_eq!(calls.len(), 2);
    }

    #[test]
    fn memory_status_is_parsed() {
        let status = "Name:\tbench-runner\nVmHWM:\t   20480 kB\nVmRSS:\t   16384 kB\n";
        assert_eq!(
            parse_status(status),
            Some(ProcessMemory {
                rss_kib: 16384,
                peak_kib: 20480
            })
        );
        assert_eq!(parse_status("Name:\tkthreadd\n"), None);
        let own = ProcessMemory::of(std::process::id()).unwrap();
        assert!(own.rss_kib > 0 && own.peak_kib >= own.rss_kib);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let clock = CpuClock::new().unwrap();
        let before = clock.process_cpu(std::process::id());
        // Spin until the kernel has accounted at least one tick more, or give up.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut x = 0u64;
        while clock.process_cpu(std::process::id()) <= before {
            assert!(std::time::Instant::now() < deadline, "CPU time never grew");
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        assert!(clock.process_cpu(std::process::id()) > before);
    }
}
