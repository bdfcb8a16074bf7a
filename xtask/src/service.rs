//! The backing services, their fixed addresses and the connection settings the tests read.

use crate::probe;

/// Host every service binds to (loopback only).
pub const HOST: &str = "127.0.0.1";
/// Redis Cluster master ports.
pub const CLUSTER_PORTS: [u16; 3] = [7000, 7001, 7002];
/// Port of the Redis master watched by the sentinel.
pub const SENTINEL_MASTER_PORT: u16 = 6380;
/// Port of the sentinel.
pub const SENTINEL_PORT: u16 = 26379;
/// Name under which the sentinel monitors its master.
pub const SENTINEL_MASTER_NAME: &str = "mymaster";
/// SQL role, password and database.
pub const SQL_USER: &str = "sessions";
/// SQL password of [`SQL_USER`].
pub const SQL_PASSWORD: &str = "sessions";
/// SQL database owned by [`SQL_USER`].
pub const SQL_DATABASE: &str = "sessions";

/// One backing service. The name is also its docker-compose service name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Service {
    Redis,
    RedisCluster,
    RedisSentinel,
    Memcached,
    Postgres,
    Mariadb,
    Dynamodb,
    Mongodb,
}

impl Service {
    /// Every service, in start order.
    pub const ALL: [Service; 8] = [
        Service::Redis,
        Service::RedisCluster,
        Service::RedisSentinel,
        Service::Memcached,
        Service::Postgres,
        Service::Mariadb,
        Service::Dynamodb,
        Service::Mongodb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Redis => "redis",
            Service::RedisCluster => "redis-cluster",
            Service::RedisSentinel => "redis-sentinel",
            Service::Memcached => "memcached",
            Service::Postgres => "postgres",
            Service::Mariadb => "mariadb",
            Service::Dynamodb => "dynamodb",
            Service::Mongodb => "mongodb",
        }
    }

    /// Accepts the canonical names and a few obvious aliases.
    pub fn parse(text: &str) -> Option<Service> {
        let service = match text.to_ascii_lowercase().as_str() {
            "redis" => Service::Redis,
            "redis-cluster" | "cluster" => Service::RedisCluster,
            "redis-sentinel" | "sentinel" => Service::RedisSentinel,
            "memcached" | "memcache" => Service::Memcached,
            "postgres" | "postgresql" | "pg" => Service::Postgres,
            "mariadb" | "mysql" => Service::Mariadb,
            "dynamodb" | "dynamo" => Service::Dynamodb,
            "mongodb" | "mongo" => Service::Mongodb,
            _ => return None,
        };
        Some(service)
    }

    /// Human-readable listen addresses.
    pub fn address(self) -> String {
        match self {
            Service::RedisCluster => format!(
                "{HOST}:{}-{}",
                CLUSTER_PORTS[0],
                CLUSTER_PORTS[CLUSTER_PORTS.len() - 1]
            ),
            Service::RedisSentinel => {
                format!("{HOST}:{SENTINEL_PORT} (master {HOST}:{SENTINEL_MASTER_PORT})")
            }
            other => format!("{HOST}:{}", other.main_port()),
        }
    }

    /// The port a client connects to first.
    pub fn main_port(self) -> u16 {
        match self {
            Service::Redis => 6379,
            Service::RedisCluster => CLUSTER_PORTS[0],
            Service::RedisSentinel => SENTINEL_PORT,
            Service::Memcached => 11211,
            Service::Postgres => 5432,
            Service::Mariadb => 3306,
            Service::Dynamodb => 8000,
            Service::Mongodb => 27017,
        }
    }

    /// The connection settings the tests read for this service.
    pub fn env_vars(self) -> Vec<(&'static str, String)> {
        let port = self.main_port();
        match self {
            Service::Redis => vec![("REDIS_URL", format!("redis://{HOST}:{port}"))],
            Service::RedisCluster => {
                // fred's `Config::from_url` syntax: first node in the authority, the others as `node`.
                let others: Vec<String> = CLUSTER_PORTS[1..]
                    .iter()
                    .map(|p| format!("node={HOST}:{p}"))
                    .collect();
                vec![(
                    "REDIS_CLUSTER_URL",
                    format!("redis-cluster://{HOST}:{port}?{}", others.join("&")),
                )]
            }
            Service::RedisSentinel => vec![(
                "REDIS_SENTINEL_URL",
                format!(
                    "redis-sentinel://{HOST}:{port}/0?sentinelServiceName={SENTINEL_MASTER_NAME}"
                ),
            )],
            Service::Memcached => vec![
                ("MEMCACHED_SERVERS", format!("{HOST}:{port}")),
                ("MEMCACHED_URL", format!("memcache://{HOST}:{port}")),
            ],
            Service::Postgres => vec![(
                "POSTGRES_URL",
                format!("postgres://{SQL_USER}:{SQL_PASSWORD}@{HOST}:{port}/{SQL_DATABASE}"),
            )],
            Service::Mariadb => vec![(
                "MYSQL_URL",
                format!("mysql://{SQL_USER}:{SQL_PASSWORD}@{HOST}:{port}/{SQL_DATABASE}"),
            )],
            Service::Dynamodb => vec![
                ("DYNAMODB_ENDPOINT", format!("http://{HOST}:{port}")),
                ("AWS_ACCESS_KEY_ID", "dummy".into()),
                ("AWS_SECRET_ACCESS_KEY", "dummy".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ],
            Service::Mongodb => vec![(
                "MONGODB_URL",
                format!("mongodb://{HOST}:{port}/?directConnection=true"),
            )],
        }
    }

    /// Whether the service answers its protocol right now (not just an open port).
    pub fn is_up(self) -> bool {
        match self {
            Service::Redis => probe::redis_ping(self.main_port()),
            Service::RedisCluster => CLUSTER_PORTS.iter().all(|&p| probe::redis_cluster_ok(p)),
            Service::RedisSentinel => {
                probe::redis_ping(SENTINEL_MASTER_PORT) && probe::sentinel_ready(SENTINEL_PORT)
            }
            Service::Memcached => probe::memcached_version(self.main_port()).is_some(),
            Service::Postgres => probe::postgres_accepting(self.main_port()),
            Service::Mariadb => probe::mysql_greeting(self.main_port()),
            Service::Dynamodb => probe::dynamodb_list_tables(self.main_port()),
            Service::Mongodb => probe::mongodb_ping(self.main_port()),
        }
    }
}

/// Parses a service list; an empty list means every service. Keeps start order, drops repeats.
pub fn parse_list(args: &[String]) -> Result<Vec<Service>, String> {
    if args.is_empty() {
        return Ok(Service::ALL.to_vec());
    }
    let mut wanted = Vec::new();
    for arg in args {
        let service = Service::parse(arg).ok_or_else(|| {
            let names: Vec<&str> = Service::ALL.iter().map(|s| s.name()).collect();
            format!("unknown service `{arg}` (known: {})", names.join(" "))
        })?;
        wanted.push(service);
    }
    Ok(Service::ALL
        .into_iter()
        .filter(|s| wanted.contains(s))
        .collect())
}

/// Connection settings of every service (addresses are fixed, whichever services run).
pub fn all_env_vars() -> Vec<(&'static str, String)> {
    Service::ALL.iter().flat_map(|s| s.env_vars()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_means_all_services() {
        assert_eq!(parse_list(&[]).unwrap(), Service::ALL.to_vec());
    }

    #[test]
    fn list_follows_start_order_and_accepts_aliases() {
        let args = ["mongo", "redis", "mysql", "redis"].map(String::from);
        assert_eq!(
            parse_list(&args).unwrap(),
            vec![Service::Redis, Service::Mariadb, Service::Mongodb]
        );
    }

    #[test]
    fn unknown_service_is_an_error_naming_it() {
        let error = parse_list(&["rediss".to_string()]).unwrap_err();
        assert!(error.contains("`rediss`"), "{error}");
    }

    #[test]
    fn every_name_parses_back_to_its_service() {
        for service in Service::ALL {
            assert_eq!(Service::parse(service.name()), Some(service));
        }
    }

    #[test]
    fn redis_urls_use_the_syntax_fred_parses() {
        let vars = all_env_vars();
        let get = |key: &str| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
        assert_eq!(
            get("REDIS_CLUSTER_URL").as_deref(),
            Some("redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001&node=127.0.0.1:7002")
        );
        assert_eq!(
            get("REDIS_SENTINEL_URL").as_deref(),
            Some("redis-sentinel://127.0.0.1:26379/0?sentinelServiceName=mymaster")
        );
        assert_eq!(
            get("POSTGRES_URL").as_deref(),
            Some("postgres://sessions:sessions@127.0.0.1:5432/sessions")
        );
    }
}
