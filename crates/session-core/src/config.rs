//! [`SessionConfig`]: Flask-Session's options, names and defaults.

use std::time::Duration;

use serde::Deserialize;

use crate::error::ConfigError;
use crate::format::SerializationFormat;
use crate::id::{DEFAULT_ID_LENGTH, MAX_ID_LENGTH};

/// Default `PERMANENT_SESSION_LIFETIME`: 31 days, as Flask.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(31 * 24 * 60 * 60);

/// The cookie's `SameSite` attribute (`SESSION_COOKIE_SAMESITE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SameSite {
    /// `SameSite=Strict`
    #[serde(alias = "strict")]
    Strict,
    /// `SameSite=Lax`
    #[serde(alias = "lax")]
    Lax,
    /// `SameSite=None` (browsers then require `Secure`).
    #[serde(alias = "none")]
    None,
}

/// Every option of the session lifecycle, validated.
///
/// Build one with [`SessionConfig::builder`], deserialize a [`SessionConfigBuilder`] with
/// serde, or read Flask-Session's environment names with [`SessionConfig::from_env`].
/// Each option documents its Flask-Session name and default; `docs/configuration.md`
/// has the full table. `Debug` never shows the secret key.
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) cookie_name: String,
    pub(crate) cookie_domain: Option<String>,
    pub(crate) cookie_path: String,
    pub(crate) cookie_http_only: bool,
    pub(crate) cookie_secure: bool,
    pub(crate) cookie_same_site: Option<SameSite>,
    pub(crate) cookie_partitioned: bool,
    pub(crate) permanent: bool,
    pub(crate) lifetime: Duration,
    pub(crate) absolute_lifetime: Option<Duration>,
    pub(crate) refresh_each_request: bool,
    pub(crate) refresh_threshold: f64,
    pub(crate) key_prefix: String,
    pub(crate) id_length: usize,
    pub(crate) format: SerializationFormat,
    pub(crate) secret_key: Option<String>,
    pub(crate) secret_key_fallbacks: Vec<String>,
    pub(crate) use_signer: bool,
    pub(crate) hash_ids: bool,
    pub(crate) owner_key: String,
    pub(crate) cleanup_n_requests: Option<u64>,
    pub(crate) max_save_attempts: u32,
    pub(crate) cache: Option<bool>,
    pub(crate) cache_max_entries: u64,
    pub(crate) cache_max_bytes: u64,
    pub(crate) cache_max_staleness: Option<Duration>,
    pub(crate) store_timeout: Duration,
    pub(crate) cleanup_min_interval: Duration,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field but the secret key, which signs every cookie.
        f.debug_struct("SessionConfig")
            .field("cookie_name", &self.cookie_name)
            .field("cookie_domain", &self.cookie_domain)
            .field("cookie_path", &self.cookie_path)
            .field("cookie_http_only", &self.cookie_http_only)
            .field("cookie_secure", &self.cookie_secure)
            .field("cookie_same_site", &self.cookie_same_site)
            .field("cookie_partitioned", &self.cookie_partitioned)
            .field("permanent", &self.permanent)
            .field("lifetime", &self.lifetime)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .field("refresh_each_request", &self.refresh_each_request)
            .field("refresh_threshold", &self.refresh_threshold)
            .field("key_prefix", &self.key_prefix)
            .field("id_length", &self.id_length)
            .field("format", &self.format)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "secret_key_fallbacks",
                &format_args!("<{} redacted>", self.secret_key_fallbacks.len()),
            )
            .field("use_signer", &self.use_signer)
            .field("hash_ids", &self.hash_ids)
            .field("owner_key", &self.owner_key)
            .field("cleanup_n_requests", &self.cleanup_n_requests)
            .field("cleanup_min_interval", &self.cleanup_min_interval)
            .field("max_save_attempts", &self.max_save_attempts)
            .field("cache", &self.cache)
            .field("cache_max_entries", &self.cache_max_entries)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .field("cache_max_staleness", &self.cache_max_staleness)
            .field("store_timeout", &self.store_timeout)
            .finish()
    }
}

/// The longest `PERMANENT_SESSION_LIFETIME` (and `SESSION_ABSOLUTE_LIFETIME`) accepted:
/// 100 years. Longer ones are configuration mistakes that no clock or store can hold.
pub const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Default `SESSION_STORE_TIMEOUT`: how long one store call, and one request's save, may take.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default `SESSION_CLEANUP_MIN_INTERVAL`: the shortest time between two cleanups.
pub const DEFAULT_CLEANUP_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Default `SESSION_CACHE_MAX_ENTRIES`.
pub const DEFAULT_CACHE_MAX_ENTRIES: u64 = 10_000;

/// Default `SESSION_CACHE_MAX_BYTES`: 64 MiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfigBuilder::default()
            .build()
            .expect("the defaults are valid")
    }
}

impl SessionConfig {
    /// Every environment name [`from_lookup`](Self::from_lookup) reads, for documentation
    /// checks and for warning about names nothing reads (a typo runs with the default).
    pub const ENV_NAMES: &'static [&'static str] = &[
        "APPLICATION_ROOT",
        "PERMANENT_SESSION_LIFETIME",
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "SESSION_ABSOLUTE_LIFETIME",
        "SESSION_ALLOW_SHORT_IDS",
        "SESSION_CACHE",
        "SESSION_CACHE_MAX_BYTES",
        "SESSION_CACHE_MAX_ENTRIES",
        "SESSION_CACHE_MAX_STALENESS",
        "SESSION_CLEANUP_MIN_INTERVAL",
        "SESSION_CLEANUP_N_REQUESTS",
        "SESSION_COOKIE_DOMAIN",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_NAME",
        "SESSION_COOKIE_PARTITIONED",
        "SESSION_COOKIE_PATH",
        "SESSION_COOKIE_SAMESITE",
        "SESSION_COOKIE_SECURE",
        "SESSION_HASH_IDS",
        "SESSION_ID_LENGTH",
        "SESSION_KEY_PREFIX",
        "SESSION_MAX_SAVE_ATTEMPTS",
        "SESSION_OWNER_KEY",
        "SESSION_PERMANENT",
        "SESSION_REFRESH_EACH_REQUEST",
        "SESSION_REFRESH_THRESHOLD",
        "SESSION_SERIALIZATION_FORMAT",
        "SESSION_STORE_TIMEOUT",
        "SESSION_USE_SIGNER",
    ];

    /// A builder starting from Flask-Session's defaults.
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder::default()
    }

    /// Reads Flask-Session's names from the process environment (see [`Self::from_lookup`]).
    pub fn from_env() -> Result<SessionConfig, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads options by their Flask-Session names from `lookup`; unset names keep their
    /// defaults. `PERMANENT_SESSION_LIFETIME` and `SESSION_ABSOLUTE_LIFETIME` are in seconds.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<SessionConfig, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = SessionConfigBuilder::default();
        if let Some(v) = get("SESSION_COOKIE_NAME") {
            b.cookie_name = Some(v);
        }
        b.cookie_domain = get("SESSION_COOKIE_DOMAIN");
        // Flask's rule: the cookie path is SESSION_COOKIE_PATH, else APPLICATION_ROOT.
        if let Some(v) = get("SESSION_COOKIE_PATH").or_else(|| get("APPLICATION_ROOT")) {
            b.cookie_path = Some(v);
        }
        b.cookie_http_only = parse_opt("SESSION_COOKIE_HTTPONLY", get, parse_bool)?;
        b.cookie_secure = parse_opt("SESSION_COOKIE_SECURE", get, parse_bool)?;
        b.cookie_same_site = parse_opt("SESSION_COOKIE_SAMESITE", get, parse_same_site)?.flatten();
        b.cookie_partitioned = parse_opt("SESSION_COOKIE_PARTITIONED", get, parse_bool)?;
        b.permanent = parse_opt("SESSION_PERMANENT", get, parse_bool)?;
        b.lifetime_seconds = parse_opt("PERMANENT_SESSION_LIFETIME", get, parse_u64)?;
        b.absolute_lifetime_seconds = parse_opt("SESSION_ABSOLUTE_LIFETIME", get, parse_u64)?;
        b.refresh_each_request = parse_opt("SESSION_REFRESH_EACH_REQUEST", get, parse_bool)?;
        b.refresh_threshold = parse_opt("SESSION_REFRESH_THRESHOLD", get, parse_f64)?;
        if let Some(v) = lookup("SESSION_KEY_PREFIX") {
            b.key_prefix = Some(v);
        }
        b.id_length = parse_opt("SESSION_ID_LENGTH", get, |v| {
            parse_u64(v).map(|n| n as usize)
        })?;
        b.serialization_format = parse_opt("SESSION_SERIALIZATION_FORMAT", get, |v| {
            v.parse::<SerializationFormat>().map_err(|e| e.message)
        })?;
        b.use_signer = parse_opt("SESSION_USE_SIGNER", get, parse_bool)?;
        b.secret_key = get("SECRET_KEY").map(SecretText);
        b.secret_key_fallbacks = get("SECRET_KEY_FALLBACKS").map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(|key| SecretText(key.to_owned()))
                .collect()
        });
        b.hash_ids = parse_opt("SESSION_HASH_IDS", get, parse_bool)?;
        b.owner_key = get("SESSION_OWNER_KEY");
        b.cleanup_n_requests = parse_opt("SESSION_CLEANUP_N_REQUESTS", get, parse_u64)?;
        b.max_save_attempts = parse_opt("SESSION_MAX_SAVE_ATTEMPTS", get, |v| {
            parse_u64(v).map(|n| n.min(u32::MAX as u64) as u32)
        })?;
        b.cache = parse_opt("SESSION_CACHE", get, parse_bool)?;
        b.cache_max_entries = parse_opt("SESSION_CACHE_MAX_ENTRIES", get, parse_u64)?;
        b.cache_max_bytes = parse_opt("SESSION_CACHE_MAX_BYTES", get, parse_u64)?;
        b.cache_max_staleness_seconds = parse_opt("SESSION_CACHE_MAX_STALENESS", get, parse_f64)?;
        b.store_timeout_seconds = parse_opt("SESSION_STORE_TIMEOUT", get, parse_f64)?;
        b.cleanup_min_interval_seconds = parse_opt("SESSION_CLEANUP_MIN_INTERVAL", get, parse_f64)?;
        b.allow_short_ids = parse_opt("SESSION_ALLOW_SHORT_IDS", get, parse_bool)?;
        b.build()
    }

    /// Name of the session cookie (`SESSION_COOKIE_NAME`, default `session`).
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }
    /// Cookie `Domain` (`SESSION_COOKIE_DOMAIN`, default none: host-only).
    pub fn cookie_domain(&self) -> Option<&str> {
        self.cookie_domain.as_deref()
    }
    /// Cookie `Path` (`SESSION_COOKIE_PATH`, else Flask's `APPLICATION_ROOT`, default `/`).
    pub fn cookie_path(&self) -> &str {
        &self.cookie_path
    }
    /// Cookie `HttpOnly` (`SESSION_COOKIE_HTTPONLY`, default true).
    pub fn cookie_http_only(&self) -> bool {
        self.cookie_http_only
    }
    /// Cookie `Secure` (`SESSION_COOKIE_SECURE`, default false).
    pub fn cookie_secure(&self) -> bool {
        self.cookie_secure
    }
    /// Cookie `SameSite` (`SESSION_COOKIE_SAMESITE`, default unset).
    pub fn cookie_same_site(&self) -> Option<SameSite> {
        self.cookie_same_site
    }
    /// Cookie `Partitioned` (`SESSION_COOKIE_PARTITIONED`, default false).
    pub fn cookie_partitioned(&self) -> bool {
        self.cookie_partitioned
    }
    /// Whether new sessions are permanent (`SESSION_PERMANENT`, default true).
    pub fn permanent(&self) -> bool {
        self.permanent
    }
    /// Store TTL of every session and cookie lifetime of permanent ones
    /// (`PERMANENT_SESSION_LIFETIME`, default 31 days).
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
    /// Longest a session may live from its creation, however active
    /// (`SESSION_ABSOLUTE_LIFETIME`, default off).
    pub fn absolute_lifetime(&self) -> Option<Duration> {
        self.absolute_lifetime
    }
    /// Whether an unchanged session's expiry slides with each request
    /// (`SESSION_REFRESH_EACH_REQUEST`, default true).
    pub fn refresh_each_request(&self) -> bool {
        self.refresh_each_request
    }
    /// Expiry is only extended once less than this fraction of the lifetime remains
    /// (`SESSION_REFRESH_THRESHOLD`, default 0.5; 1.0 extends on every request).
    pub fn refresh_threshold(&self) -> f64 {
        self.refresh_threshold
    }
    /// Prefix of every store key (`SESSION_KEY_PREFIX`, default `session:`).
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }
    /// Random bytes in a new session id (`SESSION_ID_LENGTH`, default 32).
    pub fn id_length(&self) -> usize {
        self.id_length
    }
    /// The format written (`SESSION_SERIALIZATION_FORMAT`, default msgpack).
    pub fn serialization_format(&self) -> SerializationFormat {
        self.format
    }
    /// Whether cookies carry a signed id (`SESSION_USE_SIGNER`, default false).
    pub fn use_signer(&self) -> bool {
        self.use_signer
    }
    /// Store cleanup runs on average every this many requests (`SESSION_CLEANUP_N_REQUESTS`).
    pub fn cleanup_n_requests(&self) -> Option<u64> {
        self.cleanup_n_requests
    }
    /// Attempts of a conflicting save before giving up (`SESSION_MAX_SAVE_ATTEMPTS`, default 64).
    pub fn max_save_attempts(&self) -> u32 {
        self.max_save_attempts
    }
    /// The in-process cache tier (`SESSION_CACHE`): `None` (the default) keeps a cache when
    /// the store can keep it coherent (Redis with client tracking) or a maximum staleness
    /// is set; `Some(false)` never caches. See `docs/concepts/cache-tier.md`.
    pub fn cache(&self) -> Option<bool> {
        self.cache
    }
    /// Most sessions the cache holds (`SESSION_CACHE_MAX_ENTRIES`, default 10,000).
    pub fn cache_max_entries(&self) -> u64 {
        self.cache_max_entries
    }
    /// Most memory the cache holds, in bytes: the stored bytes of each session plus an
    /// estimate of their decoded form (`SESSION_CACHE_MAX_BYTES`, default 64 MiB).
    pub fn cache_max_bytes(&self) -> u64 {
        self.cache_max_bytes
    }
    /// How long a cached session may be served without reading the store
    /// (`SESSION_CACHE_MAX_STALENESS`, in seconds). For stores that cannot report other
    /// writers, setting it turns the cache on (unset keeps them uncached; exact only for a
    /// single process); for stores that can (Redis), it bounds the age of an entry as a
    /// safety net for a missed invalidation (unset: 5 minutes).
    pub fn cache_max_staleness(&self) -> Option<Duration> {
        self.cache_max_staleness
    }
    /// How long one store call may take before the request answers 503
    /// (`SESSION_STORE_TIMEOUT`, in seconds, default 5).
    pub fn store_timeout(&self) -> Duration {
        self.store_timeout
    }
    /// The shortest time between two cleanups started by `SESSION_CLEANUP_N_REQUESTS`
    /// (`SESSION_CLEANUP_MIN_INTERVAL`, in seconds, default 60); only one runs at a time.
    pub fn cleanup_min_interval(&self) -> Duration {
        self.cleanup_min_interval
    }
    /// Whether the store key holds a hash of the id instead of the id
    /// (`SESSION_HASH_IDS`, default false).
    pub fn hash_ids(&self) -> bool {
        self.hash_ids
    }
    /// The session key whose value names the session's owner, for the owner index
    /// (`SESSION_OWNER_KEY`, default `_user_id`, Flask-Login's; see `docs/owners.md`).
    pub fn owner_key(&self) -> &str {
        &self.owner_key
    }
    pub(crate) fn secret_key(&self) -> Option<&str> {
        self.secret_key.as_deref()
    }
    pub(crate) fn secret_key_fallbacks(&self) -> &[String] {
        &self.secret_key_fallbacks
    }
}

/// Builder and serde form of [`SessionConfig`]; every field is optional and defaults to
/// Flask-Session's value. Field names are snake case; the Flask-Session names are
/// accepted as aliases (`SESSION_COOKIE_NAME`, …).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfigBuilder {
    #[serde(alias = "SESSION_COOKIE_NAME")]
    cookie_name: Option<String>,
    #[serde(alias = "SESSION_COOKIE_DOMAIN")]
    cookie_domain: Option<String>,
    #[serde(alias = "SESSION_COOKIE_PATH")]
    cookie_path: Option<String>,
    #[serde(alias = "SESSION_COOKIE_HTTPONLY")]
    cookie_http_only: Option<bool>,
    #[serde(alias = "SESSION_COOKIE_SECURE")]
    cookie_secure: Option<bool>,
    #[serde(alias = "SESSION_COOKIE_SAMESITE")]
    cookie_same_site: Option<SameSite>,
    #[serde(alias = "SESSION_COOKIE_PARTITIONED")]
    cookie_partitioned: Option<bool>,
    #[serde(alias = "SESSION_PERMANENT")]
    permanent: Option<bool>,
    #[serde(alias = "PERMANENT_SESSION_LIFETIME")]
    lifetime_seconds: Option<u64>,
    #[serde(alias = "SESSION_ABSOLUTE_LIFETIME")]
    absolute_lifetime_seconds: Option<u64>,
    #[serde(alias = "SESSION_REFRESH_EACH_REQUEST")]
    refresh_each_request: Option<bool>,
    #[serde(alias = "SESSION_REFRESH_THRESHOLD")]
    refresh_threshold: Option<f64>,
    #[serde(alias = "SESSION_KEY_PREFIX")]
    key_prefix: Option<String>,
    #[serde(alias = "SESSION_ID_LENGTH")]
    id_length: Option<usize>,
    #[serde(alias = "SESSION_SERIALIZATION_FORMAT")]
    serialization_format: Option<SerializationFormat>,
    #[serde(alias = "SESSION_USE_SIGNER")]
    use_signer: Option<bool>,
    #[serde(alias = "SECRET_KEY")]
    secret_key: Option<SecretText>,
    #[serde(alias = "SECRET_KEY_FALLBACKS")]
    secret_key_fallbacks: Option<Vec<SecretText>>,
    #[serde(alias = "SESSION_HASH_IDS")]
    hash_ids: Option<bool>,
    #[serde(alias = "SESSION_OWNER_KEY")]
    owner_key: Option<String>,
    #[serde(alias = "SESSION_CLEANUP_N_REQUESTS")]
    cleanup_n_requests: Option<u64>,
    #[serde(alias = "SESSION_MAX_SAVE_ATTEMPTS")]
    max_save_attempts: Option<u32>,
    #[serde(alias = "SESSION_CACHE")]
    cache: Option<bool>,
    #[serde(alias = "SESSION_CACHE_MAX_ENTRIES")]
    cache_max_entries: Option<u64>,
    #[serde(alias = "SESSION_CACHE_MAX_BYTES")]
    cache_max_bytes: Option<u64>,
    #[serde(alias = "SESSION_CACHE_MAX_STALENESS")]
    cache_max_staleness_seconds: Option<f64>,
    #[serde(alias = "SESSION_STORE_TIMEOUT")]
    store_timeout_seconds: Option<f64>,
    #[serde(alias = "SESSION_CLEANUP_MIN_INTERVAL")]
    cleanup_min_interval_seconds: Option<f64>,
    #[serde(alias = "SESSION_ALLOW_SHORT_IDS")]
    allow_short_ids: Option<bool>,
}

/// A secret held by the builder: deserialized like a string, never shown by `Debug`.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
struct SecretText(String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty => $field:ident;)*) => {
        $($(#[$doc])* pub fn $name(mut self, value: $ty) -> Self { self.$field = Some(value.into()); self })*
    };
}

impl SessionConfigBuilder {
    setters! {
        /// `SESSION_COOKIE_NAME` (default `session`).
        cookie_name: impl Into<String> => cookie_name;
        /// `SESSION_COOKIE_DOMAIN` (default none).
        cookie_domain: impl Into<String> => cookie_domain;
        /// `SESSION_COOKIE_PATH` (default `/`).
        cookie_path: impl Into<String> => cookie_path;
        /// `SESSION_COOKIE_HTTPONLY` (default true).
        cookie_http_only: bool => cookie_http_only;
        /// `SESSION_COOKIE_SECURE` (default false).
        cookie_secure: bool => cookie_secure;
        /// `SESSION_COOKIE_SAMESITE` (default unset).
        cookie_same_site: SameSite => cookie_same_site;
        /// `SESSION_COOKIE_PARTITIONED` (default false).
        cookie_partitioned: bool => cookie_partitioned;
        /// `SESSION_PERMANENT` (default true).
        permanent: bool => permanent;
        /// `SESSION_REFRESH_EACH_REQUEST` (default true).
        refresh_each_request: bool => refresh_each_request;
        /// `SESSION_REFRESH_THRESHOLD` (default 0.5).
        refresh_threshold: f64 => refresh_threshold;
        /// `SESSION_KEY_PREFIX` (default `session:`).
        key_prefix: impl Into<String> => key_prefix;
        /// `SESSION_ID_LENGTH` in bytes (default 32).
        id_length: usize => id_length;
        /// `SESSION_SERIALIZATION_FORMAT` (default msgpack).
        serialization_format: SerializationFormat => serialization_format;
        /// `SESSION_USE_SIGNER` (default false; needs a secret key).
        use_signer: bool => use_signer;
        /// `SESSION_CLEANUP_N_REQUESTS` (default off).
        cleanup_n_requests: u64 => cleanup_n_requests;
        /// `SESSION_MAX_SAVE_ATTEMPTS` (default 64).
        max_save_attempts: u32 => max_save_attempts;
        /// `SESSION_CACHE` (default: on where the store keeps it coherent).
        cache: bool => cache;
        /// `SESSION_CACHE_MAX_ENTRIES` (default 10,000).
        cache_max_entries: u64 => cache_max_entries;
        /// `SESSION_CACHE_MAX_BYTES` (default 64 MiB).
        cache_max_bytes: u64 => cache_max_bytes;
        /// `SESSION_ALLOW_SHORT_IDS`: accept `SESSION_ID_LENGTH` below 16 bytes, which
        /// makes ids guessable (default false: such a length is an error).
        allow_short_ids: bool => allow_short_ids;
        /// `SESSION_HASH_IDS`: store sessions under the prefix plus the base64url SHA-256
        /// of the id, so that a dump of the store holds no usable cookie value (default
        /// false, because a Flask app cannot read such keys).
        hash_ids: bool => hash_ids;
        /// `SESSION_OWNER_KEY`: the session key whose value names the session's owner
        /// (default `_user_id`, Flask-Login's key).
        owner_key: impl Into<String> => owner_key;
    }

    /// `SECRET_KEY`, used by the signer.
    pub fn secret_key(mut self, key: impl Into<String>) -> Self {
        self.secret_key = Some(SecretText(key.into()));
        self
    }

    /// `SECRET_KEY_FALLBACKS` (Flask 3.1's name; comma-separated in the environment): old
    /// keys whose signatures are still accepted; new cookies are signed with `SECRET_KEY`.
    pub fn secret_key_fallbacks<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.secret_key_fallbacks =
            Some(keys.into_iter().map(|key| SecretText(key.into())).collect());
        self
    }

    /// `SESSION_STORE_TIMEOUT`: how long one store call may take, and one request's save as
    /// a whole (its turn behind other saves of the session and any retries included);
    /// default 5 seconds.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout_seconds = Some(timeout.as_secs_f64());
        self
    }

    /// `SESSION_CLEANUP_MIN_INTERVAL`: the shortest time between two cleanups (default 60
    /// seconds).
    pub fn cleanup_min_interval(mut self, interval: Duration) -> Self {
        self.cleanup_min_interval_seconds = Some(interval.as_secs_f64());
        self
    }

    /// `SESSION_CACHE_MAX_STALENESS`: lets stores that cannot report other writers be
    /// cached, each entry served for at most `staleness` (default unset: not cached).
    pub fn cache_max_staleness(mut self, staleness: Duration) -> Self {
        self.cache_max_staleness_seconds = Some(staleness.as_secs_f64());
        self
    }

    /// `PERMANENT_SESSION_LIFETIME` (default 31 days; whole seconds are used).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime_seconds = Some(lifetime.as_secs());
        self
    }

    /// `SESSION_ABSOLUTE_LIFETIME`: the longest a session lives from creation (default off).
    pub fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.absolute_lifetime_seconds = Some(lifetime.as_secs());
        self
    }

    /// Validates the options; the error names the first invalid one.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        let cookie_name = self.cookie_name.unwrap_or_else(|| "session".to_owned());
        if cookie_name.is_empty()
            || !cookie_name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        {
            return Err(ConfigError::new(
                "SESSION_COOKIE_NAME",
                format!("{cookie_name:?} is not a valid cookie name"),
            ));
        }
        let cookie_path = self.cookie_path.unwrap_or_else(|| "/".to_owned());
        if !cookie_path.starts_with('/')
            || cookie_path
                .bytes()
                .any(|b| b.is_ascii_control() || b == b';')
        {
            return Err(ConfigError::new(
                "SESSION_COOKIE_PATH",
                format!("{cookie_path:?} must start with / and contain no ; or control characters"),
            ));
        }
        if let Some(domain) = &self.cookie_domain {
            if domain
                .bytes()
                .any(|b| !(b.is_ascii_alphanumeric() || b"-._".contains(&b)))
            {
                return Err(ConfigError::new(
                    "SESSION_COOKIE_DOMAIN",
                    format!("{domain:?} is not a domain name"),
                ));
            }
        }
        let lifetime =
            Duration::from_secs(self.lifetime_seconds.unwrap_or(DEFAULT_LIFETIME.as_secs()));
        if lifetime < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "PERMANENT_SESSION_LIFETIME",
                "must be at least 1 second",
            ));
        }
        if lifetime > MAX_LIFETIME {
            return Err(ConfigError::new(
                "PERMANENT_SESSION_LIFETIME",
                format!(
                    "{} seconds is more than 100 years ({} seconds)",
                    lifetime.as_secs(),
                    MAX_LIFETIME.as_secs()
                ),
            ));
        }
        let absolute_lifetime = match self.absolute_lifetime_seconds {
            None | Some(0) => None,
            Some(seconds) if seconds > MAX_LIFETIME.as_secs() => {
                return Err(ConfigError::new(
                    "SESSION_ABSOLUTE_LIFETIME",
                    format!(
                        "{seconds} seconds is more than 100 years ({} seconds)",
                        MAX_LIFETIME.as_secs()
                    ),
                ))
            }
            Some(seconds) => Some(Duration::from_secs(seconds)),
        };
        let refresh_threshold = self.refresh_threshold.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&refresh_threshold) {
            return Err(ConfigError::new(
                "SESSION_REFRESH_THRESHOLD",
                format!("{refresh_threshold} is not between 0.0 and 1.0"),
            ));
        }
        let id_length = self.id_length.unwrap_or(DEFAULT_ID_LENGTH);
        if !(1..=MAX_ID_LENGTH).contains(&id_length) {
            return Err(ConfigError::new(
                "SESSION_ID_LENGTH",
                format!("{id_length} is not between 1 and {MAX_ID_LENGTH} bytes"),
            ));
        }
        if id_length < 16 {
            if !self.allow_short_ids.unwrap_or(false) {
                return Err(ConfigError::new(
                    "SESSION_ID_LENGTH",
                    format!(
                        "{id_length} bytes make session ids guessable; use at least 16 \
                         (set SESSION_ALLOW_SHORT_IDS=true to accept it anyway)"
                    ),
                ));
            }
            tracing::warn!(
                id_length,
                "SESSION_ID_LENGTH below 16 bytes makes session ids guessable"
            );
        }
        let use_signer = self.use_signer.unwrap_or(false);
        if use_signer && self.secret_key.as_ref().is_none_or(|key| key.0.is_empty()) {
            return Err(ConfigError::new(
                "SESSION_USE_SIGNER",
                "signing needs SECRET_KEY to be set",
            ));
        }
        if self.cleanup_n_requests == Some(0) {
            return Err(ConfigError::new(
                "SESSION_CLEANUP_N_REQUESTS",
                "must be at least 1 (leave it unset to turn cleanup off)",
            ));
        }
        let max_save_attempts = self.max_save_attempts.unwrap_or(64);
        if max_save_attempts == 0 {
            return Err(ConfigError::new(
                "SESSION_MAX_SAVE_ATTEMPTS",
                "must be at least 1",
            ));
        }
        let owner_key = self
            .owner_key
            .unwrap_or_else(|| crate::owner::DEFAULT_OWNER_KEY.to_owned());
        if owner_key.is_empty() || owner_key == crate::data::PERMANENT_KEY {
            return Err(ConfigError::new(
                "SESSION_OWNER_KEY",
                "must name a session key other than _permanent",
            ));
        }
        let cookie_secure = self.cookie_secure.unwrap_or(false);
        let cookie_partitioned = self.cookie_partitioned.unwrap_or(false);
        check_cookie_rules(
            &cookie_name,
            &cookie_path,
            self.cookie_domain.as_deref(),
            cookie_secure,
            self.cookie_same_site,
            cookie_partitioned,
        )?;
        let seconds = |option: &'static str, value: Option<f64>, default: Duration| match value {
            None => Ok(default),
            Some(seconds) => Duration::try_from_secs_f64(seconds).map_err(|_| {
                ConfigError::new(option, format!("{seconds} is not a number of seconds"))
            }),
        };
        let store_timeout = seconds(
            "SESSION_STORE_TIMEOUT",
            self.store_timeout_seconds,
            DEFAULT_STORE_TIMEOUT,
        )?;
        crate::timeouts::check_store_timeout(store_timeout)?;
        let cleanup_min_interval = seconds(
            "SESSION_CLEANUP_MIN_INTERVAL",
            self.cleanup_min_interval_seconds,
            DEFAULT_CLEANUP_MIN_INTERVAL,
        )?;
        let cache_max_entries = self.cache_max_entries.unwrap_or(DEFAULT_CACHE_MAX_ENTRIES);
        if cache_max_entries == 0 {
            return Err(ConfigError::new(
                "SESSION_CACHE_MAX_ENTRIES",
                "must be at least 1 (SESSION_CACHE=false turns the cache off)",
            ));
        }
        let cache_max_bytes = self.cache_max_bytes.unwrap_or(DEFAULT_CACHE_MAX_BYTES);
        if cache_max_bytes == 0 {
            return Err(ConfigError::new(
                "SESSION_CACHE_MAX_BYTES",
                "must be at least 1 (SESSION_CACHE=false turns the cache off)",
            ));
        }
        let cache_max_staleness = match self.cache_max_staleness_seconds {
            None => None,
            Some(seconds) => Some(Duration::try_from_secs_f64(seconds).map_err(|_| {
                ConfigError::new(
                    "SESSION_CACHE_MAX_STALENESS",
                    format!("{seconds} is not a number of seconds"),
                )
            })?),
        };
        Ok(SessionConfig {
            cookie_name,
            cookie_domain: self.cookie_domain,
            cookie_path,
            cookie_http_only: self.cookie_http_only.unwrap_or(true),
            cookie_secure,
            cookie_same_site: self.cookie_same_site,
            cookie_partitioned,
            permanent: self.permanent.unwrap_or(true),
            lifetime,
            absolute_lifetime,
            refresh_each_request: self.refresh_each_request.unwrap_or(true),
            refresh_threshold,
            key_prefix: self.key_prefix.unwrap_or_else(|| "session:".to_owned()),
            id_length,
            format: self.serialization_format.unwrap_or_default(),
            secret_key: self.secret_key.map(|key| key.0),
            secret_key_fallbacks: self
                .secret_key_fallbacks
                .unwrap_or_default()
                .into_iter()
                .map(|key| key.0)
                .collect(),
            use_signer,
            hash_ids: self.hash_ids.unwrap_or(false),
            owner_key,
            cleanup_n_requests: self.cleanup_n_requests,
            max_save_attempts,
            cache: self.cache,
            cache_max_entries,
            cache_max_bytes,
            cache_max_staleness,
            store_timeout,
            cleanup_min_interval,
        })
    }
}

/// Cookie settings that browsers reject: a cookie they would silently drop is a
/// configuration error, named by the option to change.
fn check_cookie_rules(
    name: &str,
    path: &str,
    domain: Option<&str>,
    secure: bool,
    same_site: Option<SameSite>,
    partitioned: bool,
) -> Result<(), ConfigError> {
    let needs_secure = |option: &'static str, what: &str| {
        if secure {
            Ok(())
        } else {
            Err(ConfigError::new(
                option,
                format!("{what} requires SESSION_COOKIE_SECURE=true; browsers drop it otherwise"),
            ))
        }
    };
    if name.starts_with("__Host-") {
        needs_secure("SESSION_COOKIE_SECURE", "a __Host- cookie name")?;
        if path != "/" {
            return Err(ConfigError::new(
                "SESSION_COOKIE_PATH",
                format!("a __Host- cookie needs Path=/ (not {path:?})"),
            ));
        }
        if domain.is_some() {
            return Err(ConfigError::new(
                "SESSION_COOKIE_DOMAIN",
                "a __Host- cookie must not set a Domain",
            ));
        }
    }
    if name.starts_with("__Secure-") {
        needs_secure("SESSION_COOKIE_SECURE", "a __Secure- cookie name")?;
    }
    if same_site == Some(SameSite::None) {
        needs_secure("SESSION_COOKIE_SAMESITE", "SameSite=None")?;
    }
    if partitioned {
        needs_secure("SESSION_COOKIE_PARTITIONED", "a Partitioned cookie")?;
    }
    Ok(())
}

fn parse_opt<T>(
    option: &'static str,
    get: impl Fn(&str) -> Option<String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    get(option)
        .map(|value| parse(value.trim()).map_err(|message| ConfigError::new(option, message)))
        .transpose()
}

/// A boolean option as every `from_env` of this workspace reads it: `true/false`, `1/0`,
/// `yes/no`, `on/off` in any case; the error says what is accepted.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{value:?} is not a boolean (true/false, 1/0, yes/no, on/off)"
        )),
    }
}

fn parse_u64(value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| format!("{value:?} is not a whole non-negative number"))
}

fn parse_f64(value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .map_err(|_| format!("{value:?} is not a number"))
}

fn parse_same_site(value: &str) -> Result<Option<SameSite>, String> {
    match value.to_ascii_lowercase().as_str() {
        "strict" => Ok(Some(SameSite::Strict)),
        "lax" => Ok(Some(SameSite::Lax)),
        "none" => Ok(Some(SameSite::None)),
        _ => Err(format!("{value:?} is not one of Strict, Lax, None")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<SessionConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SessionConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_flask_sessions() {
        let config = from(&[]).unwrap();
        assert_eq!(config.cookie_name(), "session");
        assert_eq!(config.cookie_path(), "/");
        assert!(
            config.cookie_http_only() && !config.cookie_secure() && !config.cookie_partitioned()
        );
        assert_eq!(config.cookie_same_site(), None);
        assert!(config.permanent() && config.refresh_each_request());
        assert_eq!(config.lifetime(), Duration::from_secs(2_678_400));
        assert_eq!(config.key_prefix(), "session:");
        assert_eq!(config.id_length(), 32);
        assert_eq!(config.serialization_format(), SerializationFormat::Msgpack);
        assert!(!config.use_signer());
        assert_eq!(config.cleanup_n_requests(), None);
        assert_eq!(config.absolute_lifetime(), None);
        assert_eq!(config.cache(), None);
        assert_eq!(config.cache_max_entries(), 10_000);
        assert_eq!(config.cache_max_bytes(), 64 << 20);
        assert_eq!(config.cache_max_staleness(), None);
        assert_eq!(config.owner_key(), "_user_id");
    }

    #[test]
    fn owner_key_is_read_and_checked() {
        let config = from(&[("SESSION_OWNER_KEY", "account")]).unwrap();
        assert_eq!(config.owner_key(), "account");
        let error = SessionConfig::builder().owner_key("").build().unwrap_err();
        assert_eq!(error.option, "SESSION_OWNER_KEY");
        let error = SessionConfig::builder()
            .owner_key("_permanent")
            .build()
            .unwrap_err();
        assert_eq!(error.option, "SESSION_OWNER_KEY");
    }

    #[test]
    fn env_names_lists_exactly_what_from_lookup_reads() {
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let _ = SessionConfig::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            None
        });
        let listed: std::collections::BTreeSet<String> = SessionConfig::ENV_NAMES
            .iter()
            .map(|name| name.to_string())
            .collect();
        assert_eq!(asked.into_inner(), listed);
    }

    #[test]
    fn the_cookie_path_falls_back_to_application_root_as_in_flask() {
        let config = from(&[("APPLICATION_ROOT", "/app")]).unwrap();
        assert_eq!(config.cookie_path(), "/app");
        let config = from(&[
            ("APPLICATION_ROOT", "/app"),
            ("SESSION_COOKIE_PATH", "/sessions"),
        ])
        .unwrap();
        assert_eq!(config.cookie_path(), "/sessions");
        assert_eq!(from(&[]).unwrap().cookie_path(), "/");
    }

    #[test]
    fn lifetimes_up_to_100_years_are_accepted() {
        let config = from(&[("PERMANENT_SESSION_LIFETIME", "3153600000")]).unwrap();
        assert_eq!(config.lifetime(), MAX_LIFETIME);
    }

    #[test]
    fn short_ids_need_an_explicit_yes() {
        let config = from(&[
            ("SESSION_ID_LENGTH", "8"),
            ("SESSION_ALLOW_SHORT_IDS", "true"),
        ])
        .unwrap();
        assert_eq!(config.id_length(), 8);
    }

    #[test]
    fn cookies_browsers_reject_are_refused_naming_the_option() {
        for (pairs, option) in [
            (
                &[("SESSION_COOKIE_NAME", "__Host-sid")][..],
                "SESSION_COOKIE_SECURE",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-sid"),
                    ("SESSION_COOKIE_SECURE", "true"),
                    ("SESSION_COOKIE_PATH", "/app"),
                ][..],
                "SESSION_COOKIE_PATH",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-sid"),
                    ("SESSION_COOKIE_SECURE", "true"),
                    ("SESSION_COOKIE_DOMAIN", "example.com"),
                ][..],
                "SESSION_COOKIE_DOMAIN",
            ),
            (
                &[("SESSION_COOKIE_NAME", "__Secure-sid")][..],
                "SESSION_COOKIE_SECURE",
            ),
            (
                &[("SESSION_COOKIE_SAMESITE", "None")][..],
                "SESSION_COOKIE_SAMESITE",
            ),
            (
                &[("SESSION_COOKIE_PARTITIONED", "true")][..],
                "SESSION_COOKIE_PARTITIONED",
            ),
        ] {
            let error = from(pairs).unwrap_err();
            assert_eq!(error.option, option, "{pairs:?}: {error}");
        }
        let config = from(&[
            ("SESSION_COOKIE_NAME", "__Host-sid"),
            ("SESSION_COOKIE_SECURE", "true"),
            ("SESSION_COOKIE_SAMESITE", "None"),
            ("SESSION_COOKIE_PARTITIONED", "true"),
        ])
        .unwrap();
        assert_eq!(config.cookie_name(), "__Host-sid");
    }

    #[test]
    fn debug_never_shows_the_secret_key() {
        let config = from(&[
            ("SECRET_KEY", "hunter2-very-secret"),
            ("SECRET_KEY_FALLBACKS", "old-hunter1, older-hunter0"),
            ("SESSION_USE_SIGNER", "true"),
        ])
        .unwrap();
        assert_eq!(
            config.secret_key_fallbacks(),
            ["old-hunter1", "older-hunter0"]
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn the_builder_debug_never_shows_the_secret_key_either() {
        let builder = SessionConfig::builder()
            .secret_key("hunter2-very-secret")
            .secret_key_fallbacks(["old-hunter1"])
            .use_signer(true);
        let debug = format!("{builder:?}");
        assert!(!debug.contains("hunter"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert_eq!(
            builder.build().unwrap().secret_key(),
            Some("hunter2-very-secret")
        );
    }

    #[test]
    fn cache_options_are_read() {
        let config = from(&[
            ("SESSION_CACHE", "false"),
            ("SESSION_CACHE_MAX_ENTRIES", "500"),
            ("SESSION_CACHE_MAX_BYTES", "1048576"),
            ("SESSION_CACHE_MAX_STALENESS", "0.25"),
        ])
        .unwrap();
        assert_eq!(config.cache(), Some(false));
        assert_eq!(config.cache_max_entries(), 500);
        assert_eq!(config.cache_max_bytes(), 1 << 20);
        assert_eq!(
            config.cache_max_staleness(),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn environment_names_are_read() {
        let config = from(&[
            ("SESSION_COOKIE_NAME", "sid"),
            ("SESSION_COOKIE_SAMESITE", "Lax"),
            ("SESSION_COOKIE_SECURE", "True"),
            ("SESSION_PERMANENT", "false"),
            ("PERMANENT_SESSION_LIFETIME", "3600"),
            ("SESSION_KEY_PREFIX", ""),
            ("SESSION_SERIALIZATION_FORMAT", "json"),
            ("SESSION_USE_SIGNER", "1"),
            ("SECRET_KEY", "k"),
            ("SESSION_ABSOLUTE_LIFETIME", "86400"),
        ])
        .unwrap();
        assert_eq!(config.cookie_name(), "sid");
        assert_eq!(config.cookie_same_site(), Some(SameSite::Lax));
        assert!(config.cookie_secure() && !config.permanent() && config.use_signer());
        assert_eq!(config.lifetime(), Duration::from_secs(3600));
        assert_eq!(config.key_prefix(), "");
        assert_eq!(config.absolute_lifetime(), Some(Duration::from_secs(86400)));
    }

    #[test]
    fn bad_values_name_their_option() {
        for (name, value) in [
            ("SESSION_ID_LENGTH", "0"),
            ("SESSION_ID_LENGTH", "lots"),
            ("SESSION_PERMANENT", "maybe"),
            ("PERMANENT_SESSION_LIFETIME", "0"),
            ("PERMANENT_SESSION_LIFETIME", "-5"),
            ("SESSION_SERIALIZATION_FORMAT", "pickle"),
            ("SESSION_COOKIE_SAMESITE", "sometimes"),
            ("SESSION_COOKIE_NAME", "a b"),
            ("SESSION_CLEANUP_N_REQUESTS", "0"),
            ("SESSION_USE_SIGNER", "true"),
            ("SESSION_REFRESH_THRESHOLD", "2"),
            ("SESSION_CACHE", "sometimes"),
            ("SESSION_CACHE_MAX_ENTRIES", "0"),
            ("SESSION_CACHE_MAX_BYTES", "many"),
            ("SESSION_CACHE_MAX_STALENESS", "-1"),
            ("PERMANENT_SESSION_LIFETIME", "18446744073709551615"),
            ("PERMANENT_SESSION_LIFETIME", "3153600001"),
            ("SESSION_ABSOLUTE_LIFETIME", "18446744073709551615"),
            ("SESSION_ID_LENGTH", "15"),
            ("SESSION_STORE_TIMEOUT", "0"),
            ("SESSION_STORE_TIMEOUT", "soon"),
            ("SESSION_CLEANUP_MIN_INTERVAL", "-3"),
        ] {
            let error = from(&[(name, value)]).unwrap_err();
            assert_eq!(error.option, name, "{name}={value}: {error}");
            assert!(error.to_string().contains(name));
        }
    }

    #[test]
    fn serde_accepts_both_spellings() {
        let config: SessionConfigBuilder = serde_json::from_str(
            r#"{"cookie_name": "a", "SESSION_KEY_PREFIX": "app:", "PERMANENT_SESSION_LIFETIME": 60, "cookie_same_site": "Strict"}"#,
        )
        .unwrap();
        let config = config.build().unwrap();
        assert_eq!(config.cookie_name(), "a");
        assert_eq!(config.key_prefix(), "app:");
        assert_eq!(config.lifetime(), Duration::from_secs(60));
        assert_eq!(config.cookie_same_site(), Some(SameSite::Strict));
        assert!(serde_json::from_str::<SessionConfigBuilder>(r#"{"no_such": 1}"#).is_err());
    }
}
