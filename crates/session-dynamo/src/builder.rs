//! [`DynamoStoreBuilder`]: where the table is, how to reach it, and how patient to be.

use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Credentials, ProvideCredentials, Region, SharedHttpClient};
use aws_sdk_dynamodb::Client;
use session_core::{ConfigError, SetupError};

use crate::store::{DynamoStore, MAX_VALUE_BYTES};

/// Flask-Session's table name (`SESSION_DYNAMODB_TABLE`).
pub const DEFAULT_TABLE_NAME: &str = "Sessions";
/// Flask-Session's default endpoint: DynamoDB Local (or an emulator) on this machine.
pub const DEFAULT_ENDPOINT_URL: &str = "http://localhost:8000";
/// The region used when neither the builder nor the AWS configuration names one
/// (Flask-Session's default resource uses it too).
pub const DEFAULT_REGION: &str = "us-west-2";
/// Attempts per call, the first included, for throttling and transient errors.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for one attempt of a call (session items take milliseconds).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed for a whole call, retries included: after it the call fails with
/// [`StoreError::Unavailable`](session_core::StoreError::Unavailable).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(6);
/// How long start-up waits for a table it created (or found being created) to become ACTIVE.
pub const DEFAULT_TABLE_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Backoff before the first retry; doubles (with jitter) up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between two attempts: a session request should fail fast rather than wait.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The environment names of the options, named by configuration errors.
const TABLE_OPTION: &str = "SESSION_DYNAMODB_TABLE";
const ENDPOINT_OPTION: &str = "SESSION_DYNAMODB_ENDPOINT";

/// What a store without credentials tells the operator to set.
const NO_CREDENTIALS: &str = "not set, and no other AWS credentials were found: set \
    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an IAM role \
    provides them";

enum Endpoint {
    /// Nothing chosen: Flask-Session's `http://localhost:8000` with its dummy credentials.
    FlaskDefault,
    /// A URL chosen by the application.
    Url(String),
    /// The SDK's own resolution: the AWS regional endpoint, or `AWS_ENDPOINT_URL(_DYNAMODB)`
    /// or a profile's `endpoint_url` when set.
    Sdk,
}

/// Builds a [`DynamoStore`]. Every option has Flask-Session's default; see the crate
/// documentation for the table.
pub struct DynamoStoreBuilder {
    client: Option<Client>,
    table_name: String,
    table_exists: bool,
    endpoint: Endpoint,
    region: Option<String>,
    credentials: Option<(String, String)>,
    max_attempts: u32,
    connect_timeout: Duration,
    attempt_timeout: Duration,
    operation_timeout: Duration,
    table_ready_timeout: Duration,
    max_value_bytes: usize,
}

impl Default for DynamoStoreBuilder {
    fn default() -> Self {
        DynamoStoreBuilder {
            client: None,
            table_name: DEFAULT_TABLE_NAME.to_owned(),
            table_exists: false,
            endpoint: Endpoint::FlaskDefault,
            region: None,
            credentials: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            table_ready_timeout: DEFAULT_TABLE_READY_TIMEOUT,
            max_value_bytes: MAX_VALUE_BYTES,
        }
    }
}

impl fmt::Debug for DynamoStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = match &self.endpoint {
            Endpoint::FlaskDefault => DEFAULT_ENDPOINT_URL,
            Endpoint::Url(url) => url,
            Endpoint::Sdk => "(AWS)",
        };
        f.debug_struct("DynamoStoreBuilder")
            .field("client", &self.client.as_ref().map(|_| "(given)"))
            .field("table_name", &self.table_name)
            .field("table_exists", &self.table_exists)
            .field("endpoint", &endpoint)
            .field("region", &self.region)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(id, _)| (id, "***")),
            )
            .field("max_attempts", &self.max_attempts)
            .field("connect_timeout", &self.connect_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("table_ready_timeout", &self.table_ready_timeout)
            .field("max_value_bytes", &self.max_value_bytes)
            .finish()
    }
}

impl DynamoStoreBuilder {
    /// Uses a client the application configured itself (Flask-Session's `SESSION_DYNAMODB`),
    /// as it is: the endpoint, region, credential, retry and timeout options below are then
    /// ignored. Give it timeouts, or a call to an endpoint that stops answering waits for
    /// the SDK's defaults.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The table (`SESSION_DYNAMODB_TABLE`, default `Sessions`).
    pub fn table_name(mut self, table_name: impl Into<String>) -> Self {
        self.table_name = table_name.into();
        self
    }

    /// When true, start-up only reads one item (a `GetItem` of a key no session uses) to
    /// check that the table answers: the table (hash key `id` of type S) must exist, and
    /// TTL on `expiration` is the operator's business. Lets the store run without
    /// `dynamodb:CreateTable`/`UpdateTimeToLive` permissions. Default false: create the table
    /// if missing, wait until it is ACTIVE and enable TTL.
    pub fn table_exists(mut self, table_exists: bool) -> Self {
        self.table_exists = table_exists;
        self
    }

    /// Sends requests to `url` (DynamoDB Local, an emulator, a VPC endpoint...). The default,
    /// when neither this nor [`aws_endpoint`](Self::aws_endpoint) is called, is Flask-Session's
    /// `http://localhost:8000`.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Endpoint::Url(url.into());
        self
    }

    /// Lets the SDK choose the endpoint: DynamoDB in the configured region, or the URL in
    /// `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` / the profile's `endpoint_url`. Use
    /// this for DynamoDB on AWS.
    pub fn aws_endpoint(mut self) -> Self {
        self.endpoint = Endpoint::Sdk;
        self
    }

    /// The AWS region. Default: the standard chain (`AWS_REGION`, `AWS_DEFAULT_REGION`, the
    /// profile, instance metadata), else `us-west-2`.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Signs requests with these static credentials instead of the standard chain
    /// (environment, profile files, web identity, ECS and EC2 metadata). With the default
    /// endpoint and no credentials given, the store signs as `dummy`/`dummy`, as
    /// Flask-Session's default resource does, so both see the same DynamoDB Local tables.
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// Attempts per call, the first included (SDK standard retry mode: throttling and
    /// transient errors, jittered exponential backoff). Default 3; 1 disables retries.
    /// Conditional writes are retried after throttling only (see the README).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Time allowed to open a connection. Default 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one attempt of a call. Default 3 s.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Time allowed for a whole call, retries included. Default 6 s.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How long start-up waits for the table to become ACTIVE. Default 60 s.
    pub fn table_ready_timeout(mut self, timeout: Duration) -> Self {
        self.table_ready_timeout = timeout;
        self
    }

    /// Largest session value accepted; larger ones fail with [`StoreError::TooLarge`](session_core::StoreError::TooLarge)
    /// before anything is sent. Default and maximum: [`MAX_VALUE_BYTES`] (DynamoDB's
    /// 400 KB item limit less room for the key and the other attributes).
    pub fn max_value_bytes(mut self, max_value_bytes: usize) -> Self {
        self.max_value_bytes = max_value_bytes;
        self
    }

    /// Connects and, unless [`table_exists`](Self::table_exists), creates the table
    /// (tolerating one that exists), waits until it is ACTIVE and enables TTL on
    /// `expiration`, and does the same for the owner index's table `<table>_owners`; with
    /// `table_exists`, reads one item to check the table answers, and one of the owners
    /// table: when that fails the store works without an owner index (with a warning).
    ///
    /// Fails with [`SetupError::Config`] for an invalid option (naming
    /// `SESSION_DYNAMODB_TABLE`, `SESSION_DYNAMODB_ENDPOINT` or the builder method) and for
    /// missing credentials (naming `AWS_ACCESS_KEY_ID`, in one line); with
    /// [`SetupError::Store`]: [`StoreError::Unavailable`](session_core::StoreError::Unavailable)
    /// when DynamoDB cannot be reached,
    /// [`StoreError::Backend`](session_core::StoreError::Backend) for a refused call.
    pub async fn connect(self) -> Result<DynamoStore, SetupError> {
        self.validate()?;
        let client = match self.client.clone() {
            Some(client) => client,
            None => self.make_client().await?,
        };
        let mut store = DynamoStore::new(client, self.table_name.clone(), self.max_value_bytes);
        if self.table_exists {
            store.probe().await?;
            store.probe_owner_index().await;
        } else {
            store.ensure_table(self.table_ready_timeout).await?;
        }
        Ok(store)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let name = &self.table_name;
        if !(3..=255).contains(&name.len())
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(ConfigError::new(
                TABLE_OPTION,
                format!("{name:?} is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ - .)"),
            ));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::new("max_attempts", "must be at least 1"));
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > MAX_VALUE_BYTES {
            return Err(ConfigError::new(
                "max_value_bytes",
                format!("must be between 1 and {MAX_VALUE_BYTES}"),
            ));
        }
        if self.client.is_none() {
            if let Endpoint::Url(url) = &self.endpoint {
                let plain = url.starts_with("http://");
                if !plain && !url.starts_with("https://") {
                    return Err(ConfigError::new(
                        ENDPOINT_OPTION,
                        format!("{url:?} is not an http:// or https:// URL"),
                    ));
                }
                if !plain && !cfg!(feature = "rustls") {
                    return Err(ConfigError::new(
                        ENDPOINT_OPTION,
                        "https needs the `rustls` feature of session-dynamo",
                    ));
                }
            }
            if matches!(self.endpoint, Endpoint::Sdk) && !cfg!(feature = "rustls") {
                return Err(ConfigError::new(
                    ENDPOINT_OPTION,
                    "DynamoDB on AWS needs HTTPS: enable the `rustls` feature of session-dynamo",
                ));
            }
        }
        Ok(())
    }

    async fn make_client(&self) -> Result<Client, SetupError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let credentials = match (&self.credentials, &self.endpoint) {
            (Some((id, secret)), _) => Some(Credentials::new(
                id,
                secret,
                None,
                None,
                "session-dynamo builder",
            )),
            (None, Endpoint::FlaskDefault) => Some(Credentials::new(
                "dummy",
                "dummy",
                None,
                None,
                "session-dynamo local default",
            )),
            (None, _) => None,
        };
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        let sdk_config = loader.load().await;
        if self.credentials.is_none() {
            check_credentials(&sdk_config).await?;
        }
        let mut config = aws_sdk_dynamodb::config::Builder::from(&sdk_config)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.max_attempts)
                    .with_initial_backoff(INITIAL_BACKOFF)
                    .with_max_backoff(MAX_BACKOFF),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .operation_attempt_timeout(self.attempt_timeout)
                    .operation_timeout(self.operation_timeout)
                    .build(),
            );
        if sdk_config.region().is_none() {
            config = config.region(Region::from_static(DEFAULT_REGION));
        }
        config = match &self.endpoint {
            Endpoint::FlaskDefault => config.endpoint_url(DEFAULT_ENDPOINT_URL),
            Endpoint::Url(url) => config.endpoint_url(url),
            Endpoint::Sdk => config,
        };
        Ok(Client::from_conf(config.build()))
    }
}

/// Resolves the standard credential chain once, so that a machine without credentials
/// fails at start-up with one line saying what to set, instead of every call failing with
/// the SDK's chain of provider errors.
async fn check_credentials(sdk_config: &aws_config::SdkConfig) -> Result<(), ConfigError> {
    let Some(provider) = sdk_config.credentials_provider() else {
        return Err(ConfigError::new("AWS_ACCESS_KEY_ID", NO_CREDENTIALS));
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(error) => {
            // The full chain of provider errors, for whoever turns debug logging on; no
            // secret is in it (it says which providers found nothing, not what they read).
            tracing::debug!(
                error = %aws_sdk_dynamodb::error::DisplayErrorContext(&error),
                "no AWS credentials"
            );
            Err(ConfigError::new("AWS_ACCESS_KEY_ID", NO_CREDENTIALS))
        }
    }
}

/// Plain HTTP, plus HTTPS through rustls with the ring provider when the `rustls` feature
/// is on (the SDK's default client would build aws-lc instead).
fn http_client() -> SharedHttpClient {
    #[cfg(feature = "rustls")]
    {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https()
    }
    #[cfg(not(feature = "rustls"))]
    {
        aws_smithy_http_client::Builder::new().build_http()
    }
}
