//! Installs what the native services need: Debian packages with apt, Python venvs with pip.
//! apt and the pip installs run at the same time; only missing pieces are installed.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::context::{is_root, Context};
use crate::process::{self, find_program};
use crate::service::Service;
use crate::venv::{self, VenvSpec};

/// The newest installed PostgreSQL major version (`/usr/lib/postgresql/<v>/bin/postgres`).
pub fn postgres_version() -> Option<String> {
    let mut versions: Vec<u32> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().join("bin/postgres").exists())
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    versions.last().map(u32::to_string)
}

/// Debian packages that are not installed yet for a service that has to be started. One that
/// already answers (another installation, a container) needs nothing.
fn missing_packages(service: Service, running: bool) -> Vec<&'static str> {
    let have = |program: &str| find_program(program).is_some();
    match (service, running) {
        (_, true) => vec![],
        (Service::Redis | Service::RedisCluster | Service::RedisSentinel, false) => {
            if have("redis-server") && have("redis-cli") {
                vec![]
            } else {
                vec!["redis-server", "redis-tools"]
            }
        }
        (Service::Memcached, false) if !have("memcached") => vec!["memcached"],
        (Service::Postgres, false)
            if postgres_version().is_none()
                || !have("pg_ctlcluster")
                || !have("psql")
                || !have("runuser") =>
        {
            vec!["postgresql", "postgresql-client"]
        }
        (Service::Mariadb, false)
            if !have("mariadbd") || !have("mariadb") || !have("mariadb-install-db") =>
        {
            vec!["mariadb-server", "mariadb-client"]
        }
        _ => vec![],
    }
}

/// The venv a service runs from, if any.
pub fn venv_of(service: Service) -> Option<&'static VenvSpec> {
    match service {
        Service::Dynamodb => Some(&venv::MOTO),
        Service::Mongodb => Some(&venv::MONGOECO),
        _ => None,
    }
}

/// Installs what `services` (and, if `with_flask`, the Flask interop venv) need. With
/// `skip_running`, services that already answer are left out. Returns the services whose installation
/// failed, with the reason; a Flask venv failure is returned under `None`.
pub fn install(
    ctx: &Context,
    services: &[Service],
    with_flask: bool,
    skip_running: bool,
) -> BTreeMap<Option<&'static str>, String> {
    let running: Vec<Service> = services
        .iter()
        .copied()
        .filter(|s| skip_running && s.is_up())
        .collect();
    let mut failures = BTreeMap::new();
    let mut packages: Vec<&'static str> = Vec::new();
    let mut package_users: Vec<Service> = Vec::new();
    for &service in services {
        let missing = missing_packages(service, running.contains(&service));
        if !missing.is_empty() {
            package_users.push(service);
        }
        for package in missing {
            if !packages.contains(&package) {
                packages.push(package);
            }
        }
    }

    let mut venvs: Vec<(Option<&'static str>, &'static VenvSpec)> = services
        .iter()
        .filter(|s| !running.contains(s))
        .filter_map(|&s| venv_of(s).map(|spec| (Some(s.name()), spec)))
        .collect();
    if with_flask {
        venvs.push((None, &venv::FLASK));
    }
    venvs.retain(|(_, spec)| !spec.is_current(ctx));

    // A venv can only be built with a python that has `venv` and `ensurepip`; on a bare Debian
    // that means python3-venv from apt first.
    let mut after_apt = Vec::new();
    let mut now = Vec::new();
    for (owner, spec) in venvs {
        if venv::find_python(spec.min_python).is_some() {
            now.push((owner, spec));
        } else if spec.min_python <= (3, 11) && find_program("apt-get").is_some() {
            for package in ["python3", "python3-venv"] {
                if !packages.contains(&package) {
                    packages.push(package);
                }
            }
            after_apt.push((owner, spec));
        } else {
            failures.insert(owner, venv::missing_python_message(spec));
        }
    }

    std::thread::scope(|scope| {
        let builders: Vec<_> = now
            .iter()
            .map(|&(owner, spec)| (owner, scope.spawn(move || venv::ensure(ctx, spec))))
            .collect();
        let apt_result = if packages.is_empty() {
            Ok(())
        } else {
            apt_install(ctx, &packages)
        };
        if let Err(error) = &apt_result {
            for service in &package_users {
                failures.insert(Some(service.name()), error.clone());
            }
        }
        for (owner, builder) in builders {
            let result = builder
                .join()
                .unwrap_or_else(|_| Err("venv installer panicked".to_string()));
            if let Err(error) = result {
                failures.insert(owner, error);
            }
        }
        for (owner, spec) in after_apt {
            let result = match &apt_result {
                Ok(()) => venv::ensure(ctx, spec).map(|_| ()),
                Err(error) => Err(error.clone()),
            };
            if let Err(error) = result {
                failures.insert(owner, error);
            }
        }
    });
    failures
}

/// `apt-get update` + `apt-get install` without starting any service (no systemd here, and
/// the tests want their own loopback-only instances).
pub fn apt_install(ctx: &Context, packages: &[&str]) -> Result<(), String> {
    let listed = packages.join(" ");
    if !is_root() {
        return Err(format!(
            "missing packages ({listed}) and not running as root: run `sudo apt-get install {listed}`, \
             or use Docker (SESSIONS_SERVICES_MODE=docker)"
        ));
    }
    let apt = find_program("apt-get").ok_or_else(|| {
        format!("missing packages ({listed}) and no apt-get: install them with your package manager, or use Docker")
    })?;
    let log = ctx.run_dir.join("install-apt.log");
    ctx.log(format!("apt-get install {listed} (log {})", log.display()));
    let _policy = PolicyRcGuard::install();
    let apt_command = |args: &[&str]| {
        let mut command = Command::new(&apt);
        command
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-o", "DPkg::Lock::Timeout=600"])
            .args(args);
        command
    };
    let mut transcript = String::new();
    // A failed update (mirror hiccup) still leaves usable package lists in most cases.
    match process::run("apt-get update", &mut apt_command(&["update", "-q"])) {
        Ok(text) => transcript.push_str(&text),
        Err(error) => {
            ctx.log("apt-get update failed; trying the install with the current package lists");
            transcript.push_str(&error);
        }
    }
    let mut install = apt_command(&[
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ]);
    install.args(packages);
    let result = process::run(&format!("apt-get install {listed}"), &mut install);
    match &result {
        Ok(text) => transcript.push_str(text),
        Err(error) => transcript.push_str(error),
    }
    let _ = fs::write(&log, &transcript);
    result.map(|_| ctx.log("apt-get install done"))
}

const POLICY_RC: &str = "/usr/sbin/policy-rc.d";

/// Keeps package scripts from starting services while installing: Debian container images ship
/// /usr/sbin/policy-rc.d (exit 101); where it is missing, one is put in place and removed after.
struct PolicyRcGuard {
    created: bool,
}

impl PolicyRcGuard {
    fn install() -> Self {
        if Path::new(POLICY_RC).exists() {
            return Self { created: false };
        }
        let created = fs::write(
            POLICY_RC,
            "#!/bin/sh\n# temporary: cargo xtask services up\nexit 101\n",
        )
        .is_ok()
            && {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(POLICY_RC, fs::Permissions::from_mode(0o755)).is_ok()
            };
        Self { created }
    }
}

impl Drop for PolicyRcGuard {
    fn drop(&mut self) {
        if self.created {
            let _ = fs::remove_file(POLICY_RC);
        }
    }
}
