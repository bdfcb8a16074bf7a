//! End-to-end load benchmark of the session library against tower-sessions (with and
//! without its moka cache), actix-session and two hand-written Redis handlers, and a check
//! of the in-process cache's memory bound. See `bench/README.md` for the method.
//!
//! ```text
//! bench-runner [run] [OPTIONS]        the full benchmark (the default command)
//! bench-runner serve --server NAME --redis URL
//!                                     one server on 127.0.0.1 (a free port, printed on stdout)
//! bench-runner load --port PORT --server-pid PID [OPTIONS]
//!                                     the load generator for one server, JSON on stdout
//! bench-runner memory [OPTIONS]       the memory check alone
//! bench-runner callgrind [OPTIONS]    instructions per request of each server (valgrind)
//! ```

#![forbid(unsafe_code)]

mod args;
mod callgrind;
mod charts;
mod load;
mod machine;
mod memory;
mod report;
mod run;
mod servers;

use std::process::ExitCode;

const USAGE: &str = "\
usage: bench-runner [run] [OPTIONS]
       bench-runner serve --server NAME --redis URL
       bench-runner load --port PORT --server-pid PID [OPTIONS]
       bench-runner memory [--memory-sessions N] [--cache-entries N] [--connections N]
                           [--out PATH]
       bench-runner callgrind [--servers LIST] [--out PATH]
                           user-space instructions per request of each server under
                           valgrind's callgrind, `GET /` and `POST /counter`
                           [all seven; bench/results/callgrind.md]

run options (defaults in brackets):
  --servers LIST       comma-separated, of: fred, redis-rs, tower-sessions, tower-moka,
                       ours, actix-session, ours-actix [all seven]
  --scenarios LIST     comma-separated, of: counter, read, shared [all three]
  --connections N      concurrent keep-alive connections [32]
  --sessions N         distinct sessions of scenarios 1 and 2 [1024]
  --warmup SECONDS     warm-up before each measurement [2]
  --duration SECONDS   length of each measurement [10]
  --max-requests N     cap on requests per measurement [5000000]
  --rounds N           repeat everything N times, servers interleaved; report the
                       median round per scenario [1]
  --out PATH           where the Markdown report goes, the SVG charts beside it as
                       <name>-rps.svg, -cpu.svg, -rss.svg [bench/results/latest.md;
                       memory: bench/results/memory.md]
  --no-memory          skip the memory check that ends a run
  --memory-sessions N  sessions the memory check creates, then reads once [100000]
  --cache-entries N    SESSION_CACHE_MAX_ENTRIES of ours in the memory check [10000]
  --no-pin             do not pin processes to cores with taskset
  --no-nice            do not raise the benchmark's priority (nice -10, when allowed)
  --realtime           run server, load generator and Redis as SCHED_RR 10 (needs root):
                       stable numbers on a busy machine, but it starves other work

environment:
  REDIS_URL            the Redis server, on this machine [redis://127.0.0.1:6379]
  BENCH_REDIS_DB       the database the benchmark uses and empties [15]
  SESSION_CACHE, SESSION_CACHE_MAX_ENTRIES, SESSION_CACHE_MAX_BYTES,
  SESSION_CACHE_MAX_STALENESS
                       ours' cache options in the load runs (e.g. SESSION_CACHE=false);
                       the memory check sets its own [the library's defaults]
";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.first().map(String::as_str) {
        Some("serve" | "load" | "run" | "memory" | "callgrind") => args.remove(0),
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => "run".to_owned(),
    };
    let result = match command.as_str() {
        "serve" => servers::main(&args),
        "load" => load::main(&args),
        "memory" => memory::main(&args),
        "callgrind" => callgrind::main(&args),
        _ => run::main(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-runner {command}: {error:#}");
            ExitCode::FAILURE
        }
    }
}
