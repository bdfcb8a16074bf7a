//! Starting detached server processes, remembering them in pid files, stopping them again.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::context::Context;

extern "C" {
    fn setsid() -> i32;
    fn kill(pid: i32, signal: i32) -> i32;
}

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

/// Starts `program` in its own session (no terminal signals reach it, it outlives xtask) with
/// stdout and stderr in `log`, and records it in `pid_file`.
pub fn spawn_detached(
    program: impl AsRef<OsStr>,
    args: &[impl AsRef<OsStr>],
    log: &Path,
    pid_file: &Path,
) -> Result<Child, String> {
    let program = program.as_ref();
    // A fresh log per start, so that failure reports show this run only.
    let log_file =
        File::create(log).map_err(|e| format!("cannot create log {}: {e}", log.display()))?;
    let log_file_too = log_file
        .try_clone()
        .map_err(|e| format!("cannot open log {}: {e}", log.display()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_file_too);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.to_string_lossy()))?;
    let start_time = process_start_time(child.id()).unwrap_or(0);
    fs::write(pid_file, format!("{} {start_time}\n", child.id()))
        .map_err(|e| format!("cannot write {}: {e}", pid_file.display()))?;
    Ok(child)
}

/// Starts a server with [`spawn_detached`] and waits until `ready`. A server that exits or does
/// not answer in time is stopped again (and forgotten), so the next attempt starts clean.
pub fn start_server(
    ctx: &Context,
    what: &str,
    program: impl AsRef<OsStr>,
    args: &[impl AsRef<OsStr>],
    log: &Path,
    pid_file: &Path,
    ready: impl FnMut() -> bool,
) -> Result<Child, String> {
    let mut child = spawn_detached(program, args, log, pid_file)?;
    if let Err(error) = wait_until(ctx, what, log, Some(&mut child), ready) {
        let _ = signal(child.id(), SIGTERM);
        if !wait_gone(child.id(), Duration::from_secs(10)) {
            let _ = child.kill();
        }
        let _ = child.wait();
        let _ = fs::remove_file(pid_file);
        return Err(error);
    }
    Ok(child)
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot): with the pid it
/// identifies a process even after the pid is reused.
fn process_start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The fields of /proc/PID/stat after the command name (state is the first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(String::from).collect())
}

/// Running and not a zombie. This machine's init reaps orphans slowly, and a zombie still
/// answers `kill -0`.
pub fn running(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|fields| fields.first().cloned())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// The pid recorded in `pid_file`, if that very process still runs.
pub fn tracked_pid(pid_file: &Path) -> Option<u32> {
    let text = fs::read_to_string(pid_file).ok()?;
    let mut parts = text.split_whitespace();
    let pid: u32 = parts.next()?.parse().ok()?;
    let start_time: u64 = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    let same_process = start_time == 0 || process_start_time(pid) == Some(start_time);
    (same_process && running(pid)).then_some(pid)
}

/// Stops the process recorded in `pid_file` (SIGTERM, then SIGKILL after 30 s) and removes the
/// file. Returns whether a process was stopped.
pub fn stop_tracked(ctx: &Context, name: &str, pid_file: &Path) -> Result<bool, String> {
    let Some(pid) = tracked_pid(pid_file) else {
        let _ = fs::remove_file(pid_file);
        return Ok(false);
    };
    signal(pid, SIGTERM)?;
    if !wait_gone(pid, Duration::from_secs(30)) {
        ctx.log(format!(
            "{name}: pid {pid} ignored SIGTERM for 30s, sending SIGKILL"
        ));
        signal(pid, SIGKILL)?;
        if !wait_gone(pid, Duration::from_secs(5)) {
            return Err(format!("{name}: pid {pid} survived SIGKILL"));
        }
    }
    let _ = fs::remove_file(pid_file);
    ctx.log(format!("{name}: stopped (pid {pid})"));
    Ok(true)
}

fn signal(pid: u32, signal: i32) -> Result<(), String> {
    let pid_number = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { kill(pid_number, signal) } == -1 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(3) {
            // ESRCH: already gone, which is what we want.
            return Err(format!("cannot signal pid {pid}: {error}"));
        }
    }
    Ok(())
}

fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while running(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(50));
    }
    true
}

/// Polls `ready` every 100 ms until it holds, `child` exits or the deadline passes. Failures
/// name the service and show the end of its log.
pub fn wait_until(
    ctx: &Context,
    what: &str,
    log: &Path,
    mut child: Option<&mut Child>,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + ctx.timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{what} exited during start-up ({status}); log {}:\n{}",
                    log.display(),
                    tail(log, 25)
                ));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{what} did not answer within {}s; log {}:\n{}",
                ctx.timeout.as_secs(),
                log.display(),
                tail(log, 25)
            ));
        }
        sleep(Duration::from_millis(100));
    }
}

/// The last `lines` lines of a (possibly large, possibly missing) log file, indented.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return "    (no log file)".into();
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(16 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let shown = &all[all.len().saturating_sub(lines)..];
    if shown.is_empty() {
        return "    (log is empty)".into();
    }
    shown
        .iter()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a command to completion, capturing its output. Errors carry the output.
pub fn run(what: &str, command: &mut Command) -> Result<String, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", command.get_program()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{what} failed ({}):\n{}",
            output.status,
            indent(text.trim_end())
        ))
    }
}

/// Runs a command with `input` on stdin, capturing its output. Errors carry the output.
pub fn run_with_input(what: &str, command: &mut Command, input: &str) -> Result<String, String> {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", command.get_program()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("{what}: cannot write to stdin: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{what}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{what} failed ({}):\n{}",
            output.status,
            indent(text.trim_end())
        ))
    }
}

/// Runs a command, giving up (and killing it) after `limit`. `None` when it could not run or
/// timed out; otherwise whether it succeeded.
pub fn succeeds_within(command: &mut Command, limit: Duration) -> Option<bool> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.success());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        sleep(Duration::from_millis(50));
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Finds a program on PATH or in the sbin directories (root's tools are not always on PATH).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// A regular file with an execute bit.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_running_and_has_a_start_time() {
        let pid = std::process::id();
        assert!(running(pid));
        assert!(process_start_time(pid).is_some_and(|t| t > 0));
    }

    #[test]
    fn pid_file_of_a_reused_pid_is_not_tracked() {
        let dir = std::env::temp_dir().join(format!("xtask-pid-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("p.pid");
        let pid = std::process::id();
        let start = process_start_time(pid).unwrap();
        fs::write(&pid_file, format!("{pid} {start}\n")).unwrap();
        assert_eq!(tracked_pid(&pid_file), Some(pid));
        fs::write(&pid_file, format!("{pid} {}\n", start + 1)).unwrap();
        assert_eq!(tracked_pid(&pid_file), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tail_shows_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("xtask-tail-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("x.log");
        fs::write(&log, "one\ntwo\nthree\n").unwrap();
        assert_eq!(tail(&log, 2), "    two\n    three");
        assert_eq!(tail(&dir.join("missing.log"), 2), "    (no log file)");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_command_reports_its_output() {
        let error = run("listing", Command::new("ls").arg("/definitely/not/here")).unwrap_err();
        assert!(error.starts_with("listing failed"), "{error}");
        assert!(error.contains("/definitely/not/here"), "{error}");
    }
}
