//! `cargo xtask compose-check`: docker-compose.yml is valid, serves what the native mode
//! serves, and every `docker compose up` in the docs names one of its services.
//!
//! Validity is Debian's `docker-compose config` (Compose 1.29, which needs no engine); the
//! rest is checked here, on the file itself, so the unit tests run everywhere.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, ExitCode};

use crate::context::Context;
use crate::install;
use crate::process::{self, find_program};
use crate::service::{
    self, Service, CLUSTER_PORTS, HOST, SENTINEL_MASTER_PORT, SENTINEL_PORT, SQL_DATABASE,
    SQL_PASSWORD, SQL_USER,
};

/// The project name xtask passes to compose (the file has no `name:`, which Compose 1.x
/// refuses).
pub const PROJECT: &str = "sessions";

/// One service of the compose file: what the checks look at.
#[derive(Debug, Default, PartialEq)]
pub struct ComposeService {
    /// `host_ip:host_port:container_port` entries, ranges expanded.
    pub ports: Vec<(String, u16, u16)>,
    pub environment: BTreeMap<String, String>,
}

pub fn command(ctx: &Context, args: &[String]) -> Result<ExitCode, String> {
    if !args.is_empty() {
        return Err("`compose-check` takes no arguments".into());
    }
    let file = ctx.workspace_root.join("docker-compose.yml");
    let docker_compose = match find_program("docker-compose") {
        Some(program) => program,
        None => {
            let _lock = ctx.lock()?;
            install::apt_install(ctx, &["docker-compose"])?;
            find_program("docker-compose")
                .ok_or("docker-compose is still missing after apt-get install docker-compose")?
        }
    };
    process::run(
        "docker-compose config",
        Command::new(docker_compose)
            .current_dir(&ctx.workspace_root)
            .arg("--file")
            .arg(&file)
            .args(["--project-name", PROJECT, "config", "--quiet"]),
    )?;
    ctx.log("docker-compose config: the file is valid");

    let text =
        fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut problems = check_against_native(&text);
    problems.extend(check_docs(&ctx.workspace_root, &parse(&text)));
    if !problems.is_empty() {
        return Err(format!(
            "docker-compose.yml and xtask's native mode or the docs disagree:\n  {}",
            problems.join("\n  ")
        ));
    }
    println!(
        "xtask compose-check: docker-compose.yml is valid; its {} services, ports and credentials \
         are the native mode's; every `docker compose up` in the docs names one of them; {:.0}s",
        Service::ALL.len(),
        ctx.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}

/// The ports the native mode serves for `service`, each published as itself.
fn native_ports(service: Service) -> Vec<u16> {
    match service {
        Service::RedisCluster => CLUSTER_PORTS.to_vec(),
        Service::RedisSentinel => vec![SENTINEL_MASTER_PORT, SENTINEL_PORT],
        other => vec![other.main_port()],
    }
}

/// Every difference between the compose file and xtask's native services.
pub fn check_against_native(text: &str) -> Vec<String> {
    let services = parse(text);
    let mut problems = Vec::new();
    for name in services.keys() {
        if Service::parse(name).map(Service::name) != Some(name.as_str()) {
            problems.push(format!(
                "service `{name}` is in docker-compose.yml but xtask does not know it"
            ));
        }
    }
    for service in Service::ALL {
        let Some(compose) = services.get(service.name()) else {
            problems.push(format!(
                "service `{}` is missing from docker-compose.yml",
                service.name()
            ));
            continue;
        };
        let mut published: Vec<(String, u16, u16)> = compose.ports.clone();
        published.sort();
        let mut expected: Vec<(String, u16, u16)> = native_ports(service)
            .into_iter()
            .map(|port| (HOST.to_string(), port, port))
            .collect();
        expected.sort();
        if published != expected {
            problems.push(format!(
                "service `{}` publishes {} but the native mode serves {}",
                service.name(),
                show_ports(&published),
                show_ports(&expected)
            ));
        }
        let credentials: &[(&str, &str)] = match service {
            Service::Postgres => &[
                ("POSTGRES_USER", SQL_USER),
                ("POSTGRES_PASSWORD", SQL_PASSWORD),
                ("POSTGRES_DB", SQL_DATABASE),
            ],
            Service::Mariadb => &[
                ("MARIADB_USER", SQL_USER),
                ("MARIADB_PASSWORD", SQL_PASSWORD),
                ("MARIADB_DATABASE", SQL_DATABASE),
            ],
            _ => &[],
        };
        for (key, value) in credentials {
            match compose.environment.get(*key) {
                Some(found) if found == value => {}
                found => problems.push(format!(
                    "service `{}`: {key} is {found:?}, the native mode uses {value:?}",
                    service.name()
                )),
            }
        }
    }
    // The header comment lists the settings the tests read: they must be the native ones.
    let native = service::all_env_vars();
    for line in text.lines() {
        let Some((key, value)) = line
            .strip_prefix('#')
            .map(str::trim)
            .and_then(|rest| rest.split_once('='))
        else {
            continue;
        };
        if !key.chars().all(|c| c.is_ascii_uppercase() || c == '_') || key.is_empty() {
            continue;
        }
        let value = value.split_whitespace().next().unwrap_or_default();
        match native.iter().find(|(k, _)| *k == key) {
            Some((_, expected)) if expected == value => {}
            Some((_, expected)) => problems.push(format!(
                "the header of docker-compose.yml says {key}={value}, xtask exports {key}={expected}"
            )),
            None => problems.push(format!(
                "the header of docker-compose.yml names {key}, which xtask does not export"
            )),
        }
    }
    problems
}

fn show_ports(ports: &[(String, u16, u16)]) -> String {
    let shown: Vec<String> = ports
        .iter()
        .map(|(ip, host, container)| format!("{ip}:{host}:{container}"))
        .collect();
    format!("[{}]", shown.join(", "))
}

/// Every `docker compose up` / `docker-compose up` in the Markdown pages names services of
/// the file.
pub fn check_docs(root: &Path, services: &BTreeMap<String, ComposeService>) -> Vec<String> {
    let mut pages = vec![root.join("README.md"), root.join("xtask/README.md")];
    for dir in ["docs", "crates", "examples"] {
        collect_markdown(&root.join(dir), &mut pages);
    }
    let mut problems = Vec::new();
    for page in pages {
        let Ok(text) = fs::read_to_string(&page) else {
            continue;
        };
        for name in compose_up_names(&text) {
            if !services.contains_key(&name) {
                let shown = page
                    .strip_prefix(root)
                    .unwrap_or(&page)
                    .display()
                    .to_string();
                problems.push(format!(
                    "{shown} says `docker compose up … {name}`, but docker-compose.yml has no \
                     service `{name}` (services: {})",
                    services.keys().cloned().collect::<Vec<_>>().join(" ")
                ));
            }
        }
    }
    problems
}

fn collect_markdown(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if !path.ends_with("target") && !path.ends_with("node_modules") {
                collect_markdown(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// The service names after `docker compose up` (or `docker-compose up`), flags skipped. In
/// inline code (`` `docker compose up -d redis` ``) the command may run over a line break of
/// the paragraph and ends at the closing backtick; in a code block it ends with the line.
pub fn compose_up_names(text: &str) -> Vec<String> {
    let words: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .flat_map(|(line, words)| words.split_whitespace().map(move |w| (line, w)))
        .collect();
    let mut names = Vec::new();
    for at in 0..words.len() {
        let (line, first) = words[at];
        let inline = first.starts_with('`');
        let first = first.trim_start_matches('`');
        let up = match (first, words.get(at + 1).map(|w| w.1)) {
            ("docker", Some("compose")) => at + 2,
            ("docker-compose", _) => at + 1,
            _ => continue,
        };
        if words.get(up).map(|w| w.1.trim_end_matches('`')) != Some("up")
            || words[up].1.ends_with('`')
        {
            continue;
        }
        for &(word_line, word) in &words[up + 1..] {
            if !inline && word_line != line {
                break;
            }
            let closes = word.trim_end_matches([',', '.', ';', ')']).ends_with('`');
            let name = word.trim_end_matches(['`', ',', '.', ';', ')']);
            if !name.starts_with('-') {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    break;
                }
                names.push(name.to_string());
            }
            if closes {
                break;
            }
        }
    }
    names
}

/// The services of a compose file as this project writes it: two-space indentation,
/// `ports` as a flow or block list of strings, `environment` as a mapping.
pub fn parse(text: &str) -> BTreeMap<String, ComposeService> {
    let mut services = BTreeMap::new();
    let mut in_services = false;
    let mut current: Option<String> = None;
    let mut key: Option<String> = None;
    for raw in text.lines() {
        let line = raw.split(" #").next().unwrap_or_default().trim_end();
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let content = line.trim();
        match indent {
            0 => {
                in_services = content == "services:";
                current = None;
            }
            2 if in_services => {
                let name = content.trim_end_matches(':').to_string();
                services.insert(name.clone(), ComposeService::default());
                current = Some(name);
                key = None;
            }
            4 if in_services => {
                let (k, value) = content.split_once(':').unwrap_or((content, ""));
                key = Some(k.to_string());
                let value = value.trim();
                if k == "ports" && value.starts_with('[') {
                    let entries = value.trim_matches(['[', ']']).split(',');
                    if let Some(service) = current.as_ref().and_then(|n| services.get_mut(n)) {
                        for entry in entries {
                            add_port(service, entry);
                        }
                    }
                }
            }
            _ if in_services && indent >= 6 => {
                let Some(service) = current.as_ref().and_then(|n| services.get_mut(n)) else {
                    continue;
                };
                match key.as_deref() {
                    Some("ports") => {
                        if let Some(entry) = content.strip_prefix("- ") {
                            add_port(service, entry);
                        }
                    }
                    Some("environment") => {
                        if let Some((k, v)) = content.split_once(':') {
                            service.environment.insert(
                                k.trim().to_string(),
                                v.trim().trim_matches(['"', '\'']).to_string(),
                            );
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    services
}

/// `"127.0.0.1:7000-7002:7000-7002"` → three entries; an entry without a host IP gets `""`.
fn add_port(service: &mut ComposeService, entry: &str) {
    let entry = entry.trim().trim_matches(['"', '\'']);
    let entry = entry.split('/').next().unwrap_or_default();
    let parts: Vec<&str> = entry.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [ip, host, container] => (*ip, *host, *container),
        [host, container] => ("", *host, *container),
        _ => return,
    };
    let range = |text: &str| -> Vec<u16> {
        match text.split_once('-') {
            Some((from, to)) => match (from.parse::<u16>(), to.parse::<u16>()) {
                (Ok(from), Ok(to)) => (from..=to).collect(),
                _ => vec![],
            },
            None => text.parse().into_iter().collect(),
        }
    };
    for (h, c) in range(host).into_iter().zip(range(container)) {
        service.ports.push((ip.to_string(), h, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    fn compose_file() -> String {
        fs::read_to_string(root().join("docker-compose.yml")).expect("docker-compose.yml")
    }

    #[test]
    fn the_compose_file_serves_what_the_native_mode_serves() {
        let problems = check_against_native(&compose_file());
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn the_docs_name_only_services_of_the_compose_file() {
        let problems = check_docs(&root(), &parse(&compose_file()));
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn the_parser_reads_ports_ranges_and_environment() {
        let text = "name: x\nservices:\n  a:\n    image: i\n    ports: [\"127.0.0.1:7000-7001:7000-7001\"]\n\
                    \n  # comment\n  b:\n    environment:\n      USER: u\n      PASS: \"p\"\n    ports:\n      - \"5432:5432\"\nvolumes:\n  v:\n";
        let services = parse(text);
        assert_eq!(services.len(), 2);
        assert_eq!(
            services["a"].ports,
            [
                ("127.0.0.1".to_string(), 7000, 7000),
                ("127.0.0.1".to_string(), 7001, 7001)
            ]
        );
        assert_eq!(services["b"].ports, [(String::new(), 5432, 5432)]);
        assert_eq!(services["b"].environment["PASS"], "p");
    }

    #[test]
    fn differences_are_each_named() {
        let text = compose_file()
            .replace("127.0.0.1:6379:6379", "127.0.0.1:6390:6379")
            .replace("POSTGRES_PASSWORD: sessions", "POSTGRES_PASSWORD: other")
            .replace("  mongodb:", "  mongo:");
        let problems = check_against_native(&text);
        let joined = problems.join("\n");
        assert!(
            joined.contains("service `redis` publishes [127.0.0.1:6390:6379]"),
            "{joined}"
        );
        assert!(
            joined.contains("POSTGRES_PASSWORD is Some(\"other\")"),
            "{joined}"
        );
        assert!(
            joined.contains("service `mongo` is in docker-compose.yml but xtask does not know it"),
            "{joined}"
        );
        assert!(joined.contains("service `mongodb` is missing"), "{joined}");
    }

    #[test]
    fn compose_up_commands_are_found_across_line_breaks() {
        let text = "With Docker, `docker compose up -d mongo` starts it; `docker compose up -d\n\
                    redis memcached` both; `docker-compose up dynamodb`. Also `docker compose down`\n\
                    and ```sh\ndocker compose up -d postgres mariadb\ncargo test\n```";
        assert_eq!(
            compose_up_names(text),
            [
                "mongo",
                "redis",
                "memcached",
                "dynamodb",
                "postgres",
                "mariadb"
            ]
        );
    }
}
