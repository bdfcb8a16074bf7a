//! Where the tests find DynamoDB, and helpers shared by the test modules.
//!
//! By default the tests use the emulator at `DYNAMODB_ENDPOINT` (default
//! `http://127.0.0.1:8000`, started by `cargo xtask services up dynamodb`; moto must run
//! through `scripts/moto_server.py`, see the README), with region
//! `AWS_REGION` (default `us-east-1`) and credentials from the environment (default
//! `dummy`/`dummy`); each test module uses a table of its own, created by the store.
//!
//! With `SESSION_DYNAMODB_TABLE` set and `DYNAMODB_ENDPOINT` unset, the same tests run
//! against DynamoDB on AWS with the standard credential chain, in that existing table.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::Client;
use session_dynamo::{DynamoStore, DynamoStoreBuilder};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8000";
/// moto counts a binary attribute written by UpdateItem in base64 (4/3 of its size)
/// against its 405,000-byte item limit, so it stores less than DynamoDB does.
pub const EMULATOR_MAX_VALUE_BYTES: usize = 300_000;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The table given for a run against AWS, if any.
pub fn aws_table() -> Option<String> {
    env("SESSION_DYNAMODB_TABLE")
}

/// The emulator's URL, or `None` when the tests run against AWS.
pub fn endpoint() -> Option<String> {
    match (env("DYNAMODB_ENDPOINT"), aws_table()) {
        (Some(url), _) => Some(url),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_ENDPOINT.to_owned()),
    }
}

/// What to run `cargo xtask services up dynamodb` for, in failure messages.
pub fn where_dynamodb_is() -> String {
    match endpoint() {
        Some(url) => format!(
            "DynamoDB at {url} (DYNAMODB_ENDPOINT); start it with `cargo xtask services up dynamodb`"
        ),
        None => "DynamoDB on AWS (SESSION_DYNAMODB_TABLE set, DYNAMODB_ENDPOINT unset); check \
                 the credentials, region and table"
            .to_owned(),
    }
}

/// A builder for the test target: endpoint, region and credentials set, and the table
/// `module_table` (or, against AWS, the given table, which must exist).
pub fn builder(module_table: &str) -> DynamoStoreBuilder {
    let mut builder = DynamoStore::builder();
    builder = match endpoint() {
        Some(url) => {
            builder = builder.endpoint_url(url);
            if env("AWS_ACCESS_KEY_ID").is_none() {
                builder = builder.credentials("dummy", "dummy");
            }
            builder
                .region(env("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned()))
                .max_value_bytes(EMULATOR_MAX_VALUE_BYTES)
        }
        None => builder.aws_endpoint(),
    };
    match aws_table() {
        Some(table) if endpoint().is_none() => builder.table_name(table).table_exists(true),
        _ => builder.table_name(module_table),
    }
}

/// The store for a test module, failing the test with instructions when DynamoDB cannot
/// be reached.
pub async fn store(module_table: &str) -> DynamoStore {
    match builder(module_table).connect().await {
        Ok(store) => store,
        Err(error) => panic!("cannot use {}: {error}", where_dynamodb_is()),
    }
}

/// The largest value the target stores through `save`.
pub fn max_value_bytes() -> usize {
    match endpoint() {
        Some(_) => EMULATOR_MAX_VALUE_BYTES,
        None => session_dynamo::MAX_VALUE_BYTES,
    }
}

/// A table name no other test uses.
pub fn unique_table(purpose: &str) -> String {
    // Session ids are base64url: letters, digits, `-` and `_`, all allowed in table names.
    let nonce = session_core::SessionId::generate(6).expect("random");
    format!("session-dynamo-{purpose}-{nonce}")
}

/// Records the DynamoDB operation of every request a client sends.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    operations: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    /// The operations sent so far (`CreateTable`, `GetItem`, ...).
    pub fn operations(&self) -> Vec<String> {
        self.operations.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.operations.lock().unwrap().clear();
    }

    /// `client` with this recorder attached (same endpoint, region, credentials).
    pub fn attach(&self, client: &Client) -> Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.clone())
            .build();
        Client::from_conf(config)
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        self.operations.lock().unwrap().push(operation);
        Ok(())
    }
}

/// A TCP port nothing listens on at the moment of the call.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// The emulator's address (`DYNAMODB_ENDPOINT`, default 127.0.0.1:8000): what a [`Relay`]
/// forwards to.
pub async fn emulator_address() -> SocketAddr {
    let url = endpoint().unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let authority = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("the relay needs an http:// emulator, not {url}"))
        .trim_end_matches('/');
    tokio::net::lookup_host(authority)
        .await
        .ok()
        .and_then(|mut addresses| addresses.next())
        .unwrap_or_else(|| panic!("cannot resolve {authority}: {}", where_dynamodb_is()))
}

/// A TCP relay from a local port to the emulator. A store built through it works like one
/// built on the emulator; after [`cut`](Relay::cut) every call finds nothing listening,
/// as when the server goes away.
pub struct Relay {
    pub port: u16,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    pub async fn start() -> Relay {
        let upstream = emulator_address().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every relayed connection.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay {
            port,
            task: Some(task),
        }
    }

    /// The relay as a DynamoDB endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Closes the listener and every relayed connection.
    pub async fn cut(&mut self) {
        let task = self.task.take().expect("relay running");
        task.abort();
        let _ = task.await;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
