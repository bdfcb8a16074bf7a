//! Native services: each server runs as a plain process bound to 127.0.0.1, started without
//! systemd, tracked with a pid file in the run directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::context::{is_root, Context};
use crate::install::postgres_version;
use crate::probe;
use crate::process::{self, find_program, start_server, stop_tracked, tracked_pid, wait_until};
use crate::redis_topology;
use crate::service::{
    Service, CLUSTER_PORTS, HOST, SENTINEL_MASTER_NAME, SENTINEL_MASTER_PORT, SENTINEL_PORT,
    SQL_DATABASE, SQL_PASSWORD, SQL_USER,
};
use crate::venv;

/// Starts `service` unless it already answers, then makes sure it is usable (cluster formed,
/// SQL role and database present).
pub fn start(ctx: &Context, service: Service) -> Result<(), String> {
    match service {
        Service::Redis => start_redis_node(ctx, "redis", service.main_port(), &[]).map(|_| ()),
        Service::RedisCluster => start_redis_cluster(ctx),
        Service::RedisSentinel => start_redis_sentinel(ctx),
        Service::Memcached => start_memcached(ctx),
        Service::Postgres => start_postgres(ctx),
        Service::Mariadb => start_mariadb(ctx),
        Service::Dynamodb => start_dynamodb(ctx),
        Service::Mongodb => start_mongodb(ctx),
    }
}

/// Stops what `start` started for `service`; servers that were already running are left alone.
pub fn stop(ctx: &Context, service: Service) -> Result<(), String> {
    let stopped = match service {
        Service::Redis => stop_tracked(ctx, "redis", &pid_file(ctx, "redis", 6379))?,
        Service::RedisCluster => {
            let mut any = false;
            for port in CLUSTER_PORTS {
                any |= stop_tracked(ctx, "redis-cluster", &pid_file(ctx, "redis", port))?;
            }
            any
        }
        Service::RedisSentinel => {
            let sentinel = stop_tracked(
                ctx,
                "redis-sentinel",
                &pid_file(ctx, "sentinel", SENTINEL_PORT),
            )?;
            let master = stop_tracked(
                ctx,
                "redis-sentinel master",
                &pid_file(ctx, "redis", SENTINEL_MASTER_PORT),
            )?;
            sentinel || master
        }
        Service::Memcached => stop_tracked(ctx, "memcached", &pid_file(ctx, "memcached", 11211))?,
        Service::Postgres => stop_postgres(ctx)?,
        Service::Mariadb => stop_tracked(ctx, "mariadb", &pid_file(ctx, "mariadb", 3306))?,
        Service::Dynamodb => stop_tracked(ctx, "dynamodb", &pid_file(ctx, "dynamodb", 8000))?,
        Service::Mongodb => stop_tracked(ctx, "mongodb", &pid_file(ctx, "mongodb", 27017))?,
    };
    if !stopped {
        let note = if service.is_up() {
            " (it is running, but was not started by xtask)"
        } else {
            ""
        };
        ctx.log(format!("{}: nothing to stop{note}", service.name()));
    }
    Ok(())
}

/// The pids xtask started for `service` that still run.
pub fn tracked_pids(ctx: &Context, service: Service) -> Vec<u32> {
    let files: Vec<PathBuf> = match service {
        Service::Redis => vec![pid_file(ctx, "redis", 6379)],
        Service::RedisCluster => CLUSTER_PORTS
            .iter()
            .map(|&p| pid_file(ctx, "redis", p))
            .collect(),
        Service::RedisSentinel => vec![
            pid_file(ctx, "redis", SENTINEL_MASTER_PORT),
            pid_file(ctx, "sentinel", SENTINEL_PORT),
        ],
        Service::Memcached => vec![pid_file(ctx, "memcached", 11211)],
        Service::Postgres => {
            return postgres_started_by_us(ctx)
                .and_then(|version| postmaster_pid(&version))
                .into_iter()
                .collect()
        }
        Service::Mariadb => vec![pid_file(ctx, "mariadb", 3306)],
        Service::Dynamodb => vec![pid_file(ctx, "dynamodb", 8000)],
        Service::Mongodb => vec![pid_file(ctx, "mongodb", 27017)],
    };
    files.iter().filter_map(|f| tracked_pid(f)).collect()
}

fn pid_file(ctx: &Context, kind: &str, port: u16) -> PathBuf {
    ctx.run_dir.join(format!("{kind}-{port}.pid"))
}

fn log_file(ctx: &Context, kind: &str, port: u16) -> PathBuf {
    ctx.run_dir.join(format!("{kind}-{port}.log"))
}

fn data_dir(ctx: &Context, name: &str) -> Result<PathBuf, String> {
    let dir = ctx.run_dir.join("data").join(name);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn program(name: &str, service: &str) -> Result<PathBuf, String> {
    find_program(name).ok_or_else(|| format!("{service}: `{name}` is not installed"))
}

/// Refuses to start when the port is held by something that does not speak the protocol.
fn ensure_port_free(what: &str, port: u16) -> Result<(), String> {
    if probe::port_open(port) {
        return Err(format!(
            "{what}: 127.0.0.1:{port} is in use by a process that does not answer as {what}; stop it first"
        ));
    }
    Ok(())
}

fn started(ctx: &Context, what: &str, child: &Child, address: String) {
    ctx.log(format!("{what}: started on {address} (pid {})", child.id()));
}

// ------------------------------------------------------------------------------------ Redis

/// One redis-server in the foreground (its log goes to our log file), no persistence.
/// Returns `false` when a server already answered.
fn start_redis_node(ctx: &Context, what: &str, port: u16, extra: &[&str]) -> Result<bool, String> {
    if probe::redis_ping(port) {
        ctx.log(format!("{what}: already answering on {HOST}:{port}"));
        return Ok(false);
    }
    ensure_port_free(what, port)?;
    let redis_server = program("redis-server", what)?;
    let dir = data_dir(ctx, &format!("redis-{port}"))?;
    let port_text = port.to_string();
    let dir_text = dir.to_string_lossy().into_owned();
    let mut args = vec![
        "--bind",
        HOST,
        "--port",
        &port_text,
        "--daemonize",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir_text,
        "--logfile",
        "",
    ];
    args.extend_from_slice(extra);
    let log = log_file(ctx, "redis", port);
    let child = start_server(
        ctx,
        &format!("{what} on port {port}"),
        &redis_server,
        &args,
        &log,
        &pid_file(ctx, "redis", port),
        || probe::redis_ping(port),
    )?;
    started(ctx, what, &child, format!("{HOST}:{port}"));
    Ok(true)
}

/// Three masters on 7000-7002 holding all 16384 slots, no replicas.
fn start_redis_cluster(ctx: &Context) -> Result<(), String> {
    let what = "redis-cluster";
    if redis_topology::cluster_ready(&CLUSTER_PORTS) {
        ctx.log(format!(
            "{what}: already answering on {}",
            Service::RedisCluster.address()
        ));
        return Ok(());
    }
    // Not a healthy cluster: start over from empty nodes, replacing only our own processes.
    for port in CLUSTER_PORTS {
        let ours = pid_file(ctx, "redis", port);
        if tracked_pid(&ours).is_some() {
            stop_tracked(ctx, what, &ours)?;
        } else if probe::port_open(port) {
            return Err(format!(
                "{what}: 127.0.0.1:{port} is in use by a server xtask did not start, and the ports \
                 {CLUSTER_PORTS:?} do not form a healthy cluster; stop it first"
            ));
        }
        let dir = ctx.run_dir.join("data").join(format!("redis-{port}"));
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
        }
    }
    let node_args = redis_topology::cluster_node_args(Duration::from_secs(5));
    let node_args: Vec<&str> = node_args.iter().map(String::as_str).collect();
    for port in CLUSTER_PORTS {
        start_redis_node(ctx, what, port, &node_args)?;
    }
    let mut create =
        redis_topology::cluster_create(&CLUSTER_PORTS, 0).map_err(|e| format!("{what}: {e}"))?;
    let output = process::run(&format!("{what}: redis-cli --cluster create"), &mut create)?;
    let _ = fs::write(ctx.run_dir.join("redis-cluster-create.log"), output);
    let log = log_file(ctx, "redis", CLUSTER_PORTS[0]);
    wait_until(
        ctx,
        &format!("{what} (cluster_state:ok on every node)"),
        &log,
        None,
        || redis_topology::cluster_ready(&CLUSTER_PORTS),
    )?;
    ctx.log(format!(
        "{what}: cluster of 3 masters ready on {}",
        Service::RedisCluster.address()
    ));
    Ok(())
}

/// A master on 6380 and one sentinel on 26379 monitoring it as `mymaster` (quorum 1).
fn start_redis_sentinel(ctx: &Context) -> Result<(), String> {
    let what = "redis-sentinel";
    start_redis_node(ctx, &format!("{what} master"), SENTINEL_MASTER_PORT, &[])?;
    let port = SENTINEL_PORT;
    if probe::sentinel_ready(port) {
        ctx.log(format!("{what}: already answering on {HOST}:{port}"));
        return Ok(());
    }
    let ours = pid_file(ctx, "sentinel", port);
    if tracked_pid(&ours).is_some() {
        // Ours but confused (e.g. its master was restarted under it): start it afresh.
        stop_tracked(ctx, what, &ours)?;
    } else if probe::redis_ping(port) {
        // Someone else's sentinel: it may just not have reached the master yet.
        let log = log_file(ctx, "sentinel", port);
        return wait_until(
            ctx,
            &format!("{what} on port {port} (not started by xtask)"),
            &log,
            None,
            || probe::sentinel_ready(port),
        );
    }
    ensure_port_free(what, port)?;
    let redis_server = program("redis-server", what)?;
    let dir = data_dir(ctx, &format!("sentinel-{port}"))?;
    let config = dir.join("sentinel.conf");
    let text = redis_topology::Sentinel {
        port,
        dir: &dir,
        name: SENTINEL_MASTER_NAME,
        master_port: SENTINEL_MASTER_PORT,
        quorum: 1,
        down_after: Duration::from_secs(5),
        failover_timeout: Duration::from_secs(60),
    }
    .config();
    fs::write(&config, text).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let log = log_file(ctx, "sentinel", port);
    let args = [config.as_os_str(), "--sentinel".as_ref()];
    let child = start_server(
        ctx,
        &format!("{what} on port {port} (master {SENTINEL_MASTER_NAME} reachable)"),
        &redis_server,
        &args,
        &log,
        &ours,
        || probe::sentinel_ready(port),
    )?;
    started(
        ctx,
        what,
        &child,
        format!("{HOST}:{port}, monitoring {HOST}:{SENTINEL_MASTER_PORT}"),
    );
    Ok(())
}

// -------------------------------------------------------------------------------- Memcached

fn start_memcached(ctx: &Context) -> Result<(), String> {
    let (what, port) = ("memcached", Service::Memcached.main_port());
    if probe::memcached_version(port).is_some() {
        ctx.log(format!("{what}: already answering on {HOST}:{port}"));
        return Ok(());
    }
    ensure_port_free(what, port)?;
    let memcached = program("memcached", what)?;
    let port_text = port.to_string();
    let mut args = vec![
        "-l", HOST, "-p", &port_text, "-U", "0", "-m", "64", "-c", "1024",
    ];
    // memcached refuses to run as root without a user to drop to.
    if is_root() {
        args.extend([
            "-u",
            if user_exists("memcache") {
                "memcache"
            } else {
                "nobody"
            },
        ]);
    }
    let log = log_file(ctx, what, port);
    let child = start_server(
        ctx,
        what,
        &memcached,
        &args,
        &log,
        &pid_file(ctx, what, port),
        || probe::memcached_version(port).is_some(),
    )?;
    started(ctx, what, &child, format!("{HOST}:{port}"));
    Ok(())
}

fn user_exists(name: &str) -> bool {
    fs::read_to_string("/etc/passwd").is_ok_and(|passwd| {
        passwd
            .lines()
            .any(|line| line.split(':').next() == Some(name))
    })
}

// ------------------------------------------------------------------------------- PostgreSQL

const POSTGRES_MARKER: &str = "postgres.started-by-xtask";

fn postgres_started_by_us(ctx: &Context) -> Option<String> {
    fs::read_to_string(ctx.run_dir.join(POSTGRES_MARKER))
        .ok()
        .map(|v| v.trim().to_string())
}

fn postmaster_pid(version: &str) -> Option<u32> {
    let text =
        fs::read_to_string(format!("/var/lib/postgresql/{version}/main/postmaster.pid")).ok()?;
    let pid = text.lines().next()?.trim().parse().ok()?;
    process::running(pid).then_some(pid)
}

/// Debian's cluster `<version>/main`, started through pg_ctlcluster with loopback-only,
/// throwaway-durability settings passed on the command line (postgresql.conf is not edited).
fn start_postgres(ctx: &Context) -> Result<(), String> {
    let (what, port) = ("postgres", Service::Postgres.main_port());
    if probe::postgres_accepting(port) {
        ctx.log(format!("{what}: already answering on {HOST}:{port}"));
    } else {
        ensure_port_free(what, port)?;
        if !is_root() {
            return Err(format!(
                "{what}: not answering on {HOST}:{port}, and starting the system cluster needs root"
            ));
        }
        let version = postgres_version().ok_or(format!("{what}: PostgreSQL is not installed"))?;
        if !Path::new(&format!("/etc/postgresql/{version}/main/postgresql.conf")).exists() {
            ctx.log(format!("{what}: creating cluster {version}/main"));
            process::run(
                &format!("{what}: pg_createcluster {version} main"),
                Command::new(program("pg_createcluster", what)?).args([
                    &version,
                    "main",
                    "--port",
                    &port.to_string(),
                ]),
            )?;
        }
        // pg_ctl's socket directory; /var/run is a tmpfs on many machines.
        process::run(
            &format!("{what}: create /var/run/postgresql"),
            Command::new("install").args([
                "-d",
                "-o",
                "postgres",
                "-g",
                "postgres",
                "-m",
                "2775",
                "/var/run/postgresql",
            ]),
        )?;
        // pg_ctlcluster waits for the socket of the *configured* port, so the port is set in
        // the cluster's configuration (apt picks 5433 and up when 5432 is busy at install time).
        let pg_conftool = program("pg_conftool", what)?;
        let configured = process::run(
            &format!("{what}: pg_conftool show port"),
            Command::new(&pg_conftool).args(["-s", &version, "main", "show", "port"]),
        )?;
        if configured.trim() != port.to_string() {
            ctx.log(format!(
                "{what}: cluster {version}/main is configured for port {}; setting {port}",
                configured.trim()
            ));
            process::run(
                &format!("{what}: pg_conftool set port"),
                Command::new(&pg_conftool).args([
                    &version,
                    "main",
                    "set",
                    "port",
                    &port.to_string(),
                ]),
            )?;
        }
        // Loopback only and throwaway durability, without editing postgresql.conf for them.
        let options = format!(
            "-c listen_addresses={HOST} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        );
        let log = PathBuf::from(format!("/var/log/postgresql/postgresql-{version}-main.log"));
        let result = process::run(
            &format!("{what}: pg_ctlcluster {version} main start"),
            Command::new(program("pg_ctlcluster", what)?).args([
                "--skip-systemctl-redirect",
                &version,
                "main",
                "start",
                "--",
                "-o",
                &options,
            ]),
        );
        if let Err(error) = result {
            // Do not leave a half-started server behind that nothing would stop.
            if postmaster_pid(&version).is_some() {
                let _ = process::run(
                    "pg_ctlcluster stop",
                    Command::new(program("pg_ctlcluster", what)?).args([
                        "--skip-systemctl-redirect",
                        &version,
                        "main",
                        "stop",
                        "-m",
                        "fast",
                    ]),
                );
            }
            return Err(format!(
                "{error}\nlog {}:\n{}",
                log.display(),
                process::tail(&log, 20)
            ));
        }
        fs::write(ctx.run_dir.join(POSTGRES_MARKER), &version)
            .map_err(|e| format!("cannot write marker in {}: {e}", ctx.run_dir.display()))?;
        wait_until(ctx, what, &log, None, || probe::postgres_accepting(port))?;
        let pid = postmaster_pid(&version)
            .map(|p| format!(" (pid {p})"))
            .unwrap_or_default();
        ctx.log(format!(
            "{what}: started cluster {version}/main on {HOST}:{port}{pid}"
        ));
    }
    provision_postgres(ctx, port)
}

/// Role and database `sessions`, idempotent. Runs as the postgres OS user over the socket.
fn provision_postgres(ctx: &Context, port: u16) -> Result<(), String> {
    let what = "postgres";
    let Some(psql) = find_program("psql") else {
        ctx.log(format!(
            "{what}: psql is not installed, so the `{SQL_USER}` login was not checked"
        ));
        return Ok(());
    };
    let login = || {
        process::run(
            &format!("{what}: login as {SQL_USER}"),
            Command::new(&psql)
                .env("PGCONNECT_TIMEOUT", "5")
                .arg(format!(
                    "postgres://{SQL_USER}:{SQL_PASSWORD}@{HOST}:{port}/{SQL_DATABASE}"
                ))
                .args(["-X", "-q", "-t", "-c", "select 1"]),
        )
    };
    if login().is_ok() {
        ctx.log(format!("{what}: role and database `{SQL_DATABASE}` ready"));
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "{what}: cannot log in as {SQL_USER}, and creating the role needs root (to run psql as the postgres user)"
        ));
    }
    let script = format!(
        "SELECT 'CREATE ROLE {SQL_USER} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SQL_USER}') \\gexec\n\
         ALTER ROLE {SQL_USER} LOGIN PASSWORD '{SQL_PASSWORD}';\n\
         SELECT 'CREATE DATABASE {SQL_DATABASE} OWNER {SQL_USER}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{SQL_DATABASE}') \\gexec\n"
    );
    process::run_with_input(
        &format!("{what}: create role and database {SQL_USER}"),
        Command::new(program("runuser", what)?)
            .args(["-u", "postgres", "--"])
            .arg(&psql)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-p",
                &port.to_string(),
                "-d",
                "postgres",
            ]),
        &script,
    )?;
    login()?;
    ctx.log(format!("{what}: role and database `{SQL_DATABASE}` ready"));
    Ok(())
}

fn stop_postgres(ctx: &Context) -> Result<bool, String> {
    let Some(version) = postgres_started_by_us(ctx) else {
        return Ok(false);
    };
    if postmaster_pid(&version).is_some() {
        process::run(
            "postgres: pg_ctlcluster stop",
            Command::new(program("pg_ctlcluster", "postgres")?).args([
                "--skip-systemctl-redirect",
                &version,
                "main",
                "stop",
                "-m",
                "fast",
            ]),
        )?;
        ctx.log(format!("postgres: stopped cluster {version}/main"));
    }
    let _ = fs::remove_file(ctx.run_dir.join(POSTGRES_MARKER));
    Ok(true)
}

// ---------------------------------------------------------------------------------- MariaDB

/// mariadbd in the foreground as the mysql user, on Debian's data directory.
fn start_mariadb(ctx: &Context) -> Result<(), String> {
    let (what, port) = ("mariadb", Service::Mariadb.main_port());
    if probe::mysql_greeting(port) {
        ctx.log(format!("{what}: already answering on {HOST}:{port}"));
    } else {
        ensure_port_free(what, port)?;
        if !is_root() {
            return Err(format!(
                "{what}: not answering on {HOST}:{port}, and starting the system server needs root"
            ));
        }
        let mariadbd = program("mariadbd", what)?;
        let install_dir = |args: &[&str]| {
            process::run(
                &format!("{what}: install -d {}", args.join(" ")),
                Command::new("install").arg("-d").args(args),
            )
        };
        // Socket and pid directory (a tmpfs on many machines), and the default log directory.
        install_dir(&["-o", "mysql", "-g", "root", "-m", "755", "/run/mysqld"])?;
        install_dir(&["-o", "mysql", "-g", "adm", "-m", "2750", "/var/log/mysql"])?;
        if !Path::new("/var/lib/mysql/mysql").is_dir() {
            ctx.log(format!("{what}: initialising /var/lib/mysql"));
            install_dir(&["-o", "mysql", "-g", "mysql", "-m", "700", "/var/lib/mysql"])?;
            let output = process::run(
                &format!("{what}: mariadb-install-db"),
                Command::new(program("mariadb-install-db", what)?).args([
                    "--user=mysql",
                    "--datadir=/var/lib/mysql",
                    "--skip-test-db",
                ]),
            )?;
            let _ = fs::write(ctx.run_dir.join("mariadb-install-db.log"), output);
        }
        let port_arg = format!("--port={port}");
        let args = [
            "--user=mysql",
            "--bind-address=127.0.0.1",
            &port_arg,
            // Errors to stderr, i.e. our log file, whatever the config says.
            "--log-error=",
            "--innodb-flush-log-at-trx-commit=2",
        ];
        let log = log_file(ctx, what, port);
        let child = start_server(
            ctx,
            what,
            &mariadbd,
            &args,
            &log,
            &pid_file(ctx, what, port),
            || probe::mysql_greeting(port),
        )?;
        started(ctx, what, &child, format!("{HOST}:{port}"));
    }
    provision_mariadb(ctx, port)
}

/// User and database `sessions`, idempotent. root@localhost authenticates by unix socket.
fn provision_mariadb(ctx: &Context, port: u16) -> Result<(), String> {
    let what = "mariadb";
    let Some(client) = find_program("mariadb") else {
        ctx.log(format!(
            "{what}: the mariadb client is not installed, so the `{SQL_USER}` login was not checked"
        ));
        return Ok(());
    };
    let login = || {
        process::run(
            &format!("{what}: login as {SQL_USER}"),
            Command::new(&client).args([
                "-h",
                HOST,
                "-P",
                &port.to_string(),
                &format!("-u{SQL_USER}"),
                &format!("-p{SQL_PASSWORD}"),
                "--connect-timeout=5",
                SQL_DATABASE,
                "-e",
                "select 1",
            ]),
        )
    };
    if login().is_ok() {
        ctx.log(format!("{what}: user and database `{SQL_DATABASE}` ready"));
        return Ok(());
    }
    let mut script = format!("CREATE DATABASE IF NOT EXISTS `{SQL_DATABASE}`;\n");
    for host in ["127.0.0.1", "localhost"] {
        script.push_str(&format!(
            "CREATE USER IF NOT EXISTS '{SQL_USER}'@'{host}' IDENTIFIED BY '{SQL_PASSWORD}';\n\
             ALTER USER '{SQL_USER}'@'{host}' IDENTIFIED BY '{SQL_PASSWORD}';\n\
             GRANT ALL PRIVILEGES ON `{SQL_DATABASE}`.* TO '{SQL_USER}'@'{host}';\n"
        ));
    }
    process::run_with_input(
        &format!("{what}: create user and database {SQL_USER} (as root over the socket)"),
        Command::new(&client).args(["--protocol=socket", "-uroot"]),
        &script,
    )?;
    login()?;
    ctx.log(format!("{what}: user and database `{SQL_DATABASE}` ready"));
    Ok(())
}

// ------------------------------------------------------------------------ DynamoDB, MongoDB

fn start_dynamodb(ctx: &Context) -> Result<(), String> {
    // moto's own `moto_server` serves requests on parallel threads and checks a write's
    // condition apart from applying it, so racing conditional writes could both succeed;
    // this launcher serves moto's app one request at a time, as DynamoDB's atomic
    // conditional writes behave.
    start_emulator(
        ctx,
        Emulator {
            service: Service::Dynamodb,
            label: "dynamodb (moto)",
            venv: &venv::MOTO,
            launcher: "scripts/moto_server.py",
            host_flag: "-H",
            port_flag: "-p",
            answers: probe::dynamodb_list_tables,
        },
    )
}

fn start_mongodb(ctx: &Context) -> Result<(), String> {
    start_emulator(
        ctx,
        Emulator {
            service: Service::Mongodb,
            label: "mongodb (mongoeco)",
            venv: &venv::MONGOECO,
            launcher: "scripts/mongoeco_server.py",
            host_flag: "--host",
            port_flag: "--port",
            answers: probe::mongodb_ping,
        },
    )
}

/// A server emulated by a Python launcher of `scripts/` running in its own venv.
struct Emulator {
    service: Service,
    /// The service and the emulator, in messages.
    label: &'static str,
    venv: &'static venv::VenvSpec,
    /// The launcher, relative to the workspace root.
    launcher: &'static str,
    host_flag: &'static str,
    port_flag: &'static str,
    /// Whether the server answers on a port.
    answers: fn(u16) -> bool,
}

fn start_emulator(ctx: &Context, emulator: Emulator) -> Result<(), String> {
    let what = emulator.service.name();
    let port = emulator.service.main_port();
    if (emulator.answers)(port) {
        ctx.log(format!("{what}: already answering on {HOST}:{port}"));
        return Ok(());
    }
    ensure_port_free(what, port)?;
    if !emulator.venv.is_current(ctx) {
        return Err(format!(
            "{what}: {} is not installed",
            emulator.venv.dir(ctx).display()
        ));
    }
    let args = [
        ctx.workspace_root.join(emulator.launcher).into_os_string(),
        emulator.host_flag.into(),
        HOST.into(),
        emulator.port_flag.into(),
        port.to_string().into(),
    ];
    let log = log_file(ctx, what, port);
    let child = start_server(
        ctx,
        emulator.label,
        emulator.venv.python(ctx),
        &args,
        &log,
        &pid_file(ctx, what, port),
        || (emulator.answers)(port),
    )?;
    started(ctx, emulator.label, &child, format!("{HOST}:{port}"));
    Ok(())
}
