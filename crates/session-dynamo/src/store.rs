//! [`DynamoStore`]: the [`SessionStore`] operations as DynamoDB calls on Flask-Session's items.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use session_core::{IndexEntry, SessionStore, SetupError, StoreError, StoredEntry};
use tokio::task::JoinSet;

use crate::builder::DynamoStoreBuilder;
use crate::error::{
    error_code, is_condition_failed, is_item_too_large, is_not_processed, store_error, DynamoError,
};

/// The hash key attribute: the session key (prefix + session id), type S.
pub const ATTR_ID: &str = "id";
/// The session bytes, type B.
pub const ATTR_VALUE: &str = "val";
/// The expiry in Unix epoch seconds, type N; the table's TTL attribute.
pub const ATTR_EXPIRATION: &str = "expiration";

/// The suffix of the owner index's table: `<table>_owners` (see
/// [`DynamoStore::owners_table_name`]).
pub const OWNERS_TABLE_SUFFIX: &str = "_owners";
/// The owner index table's partition key: the index name (`SESSION_KEY_PREFIX` + `owner:`
/// + the owner), type S.
pub const ATTR_OWNER_INDEX: &str = "index";
/// The owner index table's sort key: the session key, type S.
pub const ATTR_OWNER_KEY: &str = "key";
/// How long past its session's expiry an owner index item is kept: its `expiration` (the
/// owners table's TTL attribute) is the session's `expires_at` plus this. A session's
/// expiry is set by the write that follows its index entry, so it can outlast the entry's
/// `expires_at` by the time that write took, and an expiry extension refreshes the entry
/// only after it extended the session.
pub const OWNERS_EXPIRY_GRACE: Duration = Duration::from_secs(60);
/// DynamoDB's limit for a sort key value (UTF-8 bytes).
const MAX_SORT_KEY_BYTES: usize = 1024;

/// DynamoDB's item size limit: 400 KB, attribute names and values together.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limit for a partition key value (UTF-8 bytes).
pub const MAX_KEY_BYTES: usize = 2048;
/// The largest session value any key can hold: the item limit less the longest key, the
/// three attribute names and the longest number DynamoDB stores (21 bytes).
pub const MAX_VALUE_BYTES: usize =
    MAX_ITEM_BYTES - MAX_KEY_BYTES - ATTR_ID.len() - ATTR_VALUE.len() - ATTR_EXPIRATION.len() - 21;

/// An item is live while its expiration is in the future; a leftover that expired (or has
/// no expiration) counts as absent, since DynamoDB's TTL deletes items only within days.
const FREE_CONDITION: &str =
    "attribute_not_exists(#id) OR attribute_not_exists(#exp) OR #exp <= :now";
const LIVE_WITH_VALUE: &str = "#val = :expected AND #exp > :now";
const LIVE: &str = "attribute_exists(#id) AND #exp > :now";
/// Conditional deletes running at once during [`cleanup`](SessionStore::cleanup).
const CLEANUP_CONCURRENCY: usize = 16;
/// Pause between two looks at a table that is not ACTIVE yet.
const TABLE_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The key start-up reads to check a table it does not create. No session key looks like
/// it (session ids are base64url, and nothing is ever written under it).
const PROBE_KEY: &str = "session-dynamo start-up check";

/// A session store on an Amazon DynamoDB table, holding the items Flask-Session 0.8 holds.
///
/// Cheap to clone: clones share the client and its connections.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    /// `client` with the SDK's retries off, for the conditional writes (see
    /// [`send_conditional`](DynamoStore::send_conditional)); it shares the connections.
    unretried: Client,
    table: String,
    owners_table: String,
    /// Whether the owners table exists (created with the table; with `table_exists`, found
    /// at start-up).
    owner_index: bool,
    max_value_bytes: usize,
}

impl DynamoStore {
    /// A builder with Flask-Session's defaults.
    pub fn builder() -> DynamoStoreBuilder {
        DynamoStoreBuilder::default()
    }

    /// Connects to the DynamoDB at `endpoint_url` (DynamoDB Local, an emulator, a VPC
    /// endpoint) with every other option at its default: table `Sessions`, created when
    /// missing. Shorthand for `DynamoStore::builder().endpoint_url(url).connect()`; use
    /// [`DynamoStoreBuilder::aws_endpoint`] for DynamoDB on AWS.
    pub async fn connect(endpoint_url: &str) -> Result<DynamoStore, SetupError> {
        DynamoStore::builder()
            .endpoint_url(endpoint_url)
            .connect()
            .await
    }

    /// The store on a client the application configured itself, in table `table_name`,
    /// creating the table unless `table_exists`. Shorthand for the builder.
    pub async fn from_client(
        client: Client,
        table_name: impl Into<String>,
        table_exists: bool,
    ) -> Result<DynamoStore, SetupError> {
        DynamoStore::builder()
            .client(client)
            .table_name(table_name)
            .table_exists(table_exists)
            .connect()
            .await
    }

    pub(crate) fn new(client: Client, table: String, max_value_bytes: usize) -> DynamoStore {
        let unretried = Client::from_conf(
            client
                .config()
                .to_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        DynamoStore {
            owners_table: owners_table_name(&table),
            client,
            unretried,
            table,
            owner_index: false,
            max_value_bytes,
        }
    }

    /// The DynamoDB client, for calls of the application's own.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The owner index's table: `<table>_owners` (the table name cut to 248 characters
    /// first when it is longer), partition key `index` (S), sort key
    /// `key` (S), TTL on `expiration` (see the README's "Owner index").
    pub fn owners_table_name(&self) -> &str {
        &self.owners_table
    }

    /// The largest value a write ([`create`](SessionStore::create),
    /// [`compare_and_set`](SessionStore::compare_and_set), [`rotate`](SessionStore::rotate))
    /// accepts.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// Sends a conditional single-item write: `send` builds it on the client it is given,
    /// which has the SDK's retries off, and sends it once. The SDK would send it again after
    /// a timeout, a broken connection or a 5xx answer, after any of which DynamoDB may have
    /// applied it; applied twice, a conditional write fails its own condition the second
    /// time, the store would answer "not written" for a write that was made, and the
    /// session layer would apply the request's change again. So those errors are returned
    /// (unavailable: the outcome is unknown), and only throttling, which DynamoDB answers
    /// for requests it did not process, is retried, with the client's attempts and backoff.
    async fn send_conditional<'a, T, E, Fut>(
        &'a self,
        send: impl Fn(&'a Client) -> Fut,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        retry_if_not_processed(self.client.config().retry_config(), || {
            send(&self.unretried)
        })
        .await
    }

    /// Reads one item, to check that DynamoDB answers and the table exists without needing
    /// more than the `GetItem` permission the store needs anyway.
    pub(crate) async fn probe(&self) -> Result<(), StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(ATTR_ID, AttributeValue::S(PROBE_KEY.to_owned()))
            .projection_expression("#id")
            .expression_attribute_names("#id", ATTR_ID)
            .send()
            .await
            .map_err(|e| store_error("GetItem", &self.table, e))?;
        Ok(())
    }

    /// With `table_exists`: reads one item of the owners table, and keeps the owner index
    /// only when that works. A deployment that created only Flask's table works as before,
    /// without an owner index (a warning says how to add one).
    pub(crate) async fn probe_owner_index(&mut self) {
        let found = self
            .client
            .get_item()
            .table_name(&self.owners_table)
            .key(ATTR_OWNER_INDEX, AttributeValue::S(PROBE_KEY.to_owned()))
            .key(ATTR_OWNER_KEY, AttributeValue::S(PROBE_KEY.to_owned()))
            .projection_expression("#k")
            .expression_attribute_names("#k", ATTR_OWNER_KEY)
            .send()
            .await
            .map_err(|e| store_error("GetItem", &self.owners_table, e));
        if let Err(error) = &found {
            tracing::warn!(
                %error,
                table = %self.owners_table,
                "no owner index table: sessions cannot be listed or revoked per owner (create \
                 it with partition key `index` (S), sort key `key` (S) and TTL on \
                 `expiration`, or start once without table_exists)"
            );
        }
        self.owner_index = found.is_ok();
    }

    /// Creates the table and the owner index's table if missing, waits until each is
    /// ACTIVE, enables TTL on `expiration` on each.
    pub(crate) async fn ensure_table(&mut self, ready_timeout: Duration) -> Result<(), StoreError> {
        self.ensure_one_table(&self.table, &[(ATTR_ID, KeyType::Hash)], ready_timeout)
            .await?;
        self.ensure_one_table(
            &self.owners_table,
            &[
                (ATTR_OWNER_INDEX, KeyType::Hash),
                (ATTR_OWNER_KEY, KeyType::Range),
            ],
            ready_timeout,
        )
        .await?;
        self.owner_index = true;
        Ok(())
    }

    /// Creates `table` with string `keys` if missing, waits until it is ACTIVE, enables
    /// TTL on `expiration`.
    async fn ensure_one_table(
        &self,
        table: &str,
        keys: &[(&str, KeyType)],
        ready_timeout: Duration,
    ) -> Result<(), StoreError> {
        let mut create = self
            .client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest);
        for (name, key_type) in keys {
            let definition = AttributeDefinition::builder()
                .attribute_name(*name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(StoreError::backend)?;
            let key = KeySchemaElement::builder()
                .attribute_name(*name)
                .key_type(key_type.clone())
                .build()
                .map_err(StoreError::backend)?;
            create = create.attribute_definitions(definition).key_schema(key);
        }
        let created = create.send().await;
        match created {
            Ok(_) => tracing::info!(%table, "created the table"),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(error) => {
                let denied = error_code(&error).contains("AccessDenied");
                let mut mapped = store_error("CreateTable", table, error);
                if denied {
                    mapped = StoreError::backend(DynamoError::new(
                        "CreateTable",
                        table,
                        format!(
                            "{mapped}; without the dynamodb:CreateTable permission, create the \
                             table yourself and set table_exists(true)"
                        ),
                    ));
                }
                return Err(mapped);
            }
        }
        self.wait_until_active(table, ready_timeout).await?;
        self.enable_ttl(table).await
    }

    async fn wait_until_active(
        &self,
        table: &str,
        ready_timeout: Duration,
    ) -> Result<(), StoreError> {
        let deadline = Instant::now() + ready_timeout;
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| store_error("DescribeTable", table, e))?;
            let status = described.table().and_then(|t| t.table_status());
            if status == Some(&TableStatus::Active) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StoreError::unavailable(DynamoError::new(
                    "DescribeTable",
                    table,
                    format!("the table is not ACTIVE after {ready_timeout:?} (status {status:?})"),
                )));
            }
            tokio::time::sleep(TABLE_POLL_INTERVAL).await;
        }
    }

    async fn enable_ttl(&self, table: &str) -> Result<(), StoreError> {
        let specification = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(ATTR_EXPIRATION)
            .build()
            .map_err(StoreError::backend)?;
        let result = self
            .client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(specification)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // "already enabled" is the normal case on restart; TTL on another attribute or a
            // recent TTL change leave a usable table (expiry is checked on read anyway).
            Err(error) if error_code(&error) == "ValidationException" => {
                let message = error.message().unwrap_or_default();
                if !message.contains("already enabled") {
                    tracing::warn!(
                        %table,
                        message,
                        "TTL on `expiration` not enabled; expired sessions are still never served"
                    );
                }
                Ok(())
            }
            Err(error) => Err(store_error("UpdateTimeToLive", table, error)),
        }
    }

    fn check_value(&self, value: &[u8]) -> Result<(), StoreError> {
        if value.len() > self.max_value_bytes {
            return Err(self.too_large(value));
        }
        Ok(())
    }

    fn too_large(&self, value: &[u8]) -> StoreError {
        StoreError::TooLarge {
            size: value.len(),
            limit: self.max_value_bytes,
        }
    }

    async fn conditional_delete_expired(
        client: Client,
        table: String,
        id: String,
    ) -> Result<bool, StoreError> {
        let result = client
            .delete_item()
            .table_name(&table)
            .key(ATTR_ID, AttributeValue::S(id))
            .condition_expression("#exp <= :now")
            .expression_attribute_names("#exp", ATTR_EXPIRATION)
            .expression_attribute_values(":now", now_number())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error("DeleteItem", &table, error)),
        }
    }
}

/// `<table>_owners`, the table name cut (it is ASCII) so that the whole fits DynamoDB's
/// 255 characters, as session-sql does with its owners table.
fn owners_table_name(table: &str) -> String {
    let room = 255 - OWNERS_TABLE_SUFFIX.len();
    let cut = table.get(..table.len().min(room)).unwrap_or(table);
    format!("{cut}{OWNERS_TABLE_SUFFIX}")
}

/// Keys DynamoDB accepts as a partition key value.
fn is_storable(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_BYTES
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if is_storable(key) {
        Ok(())
    } else {
        Err(StoreError::InvalidKey(format!(
            "DynamoDB keys are 1 to {MAX_KEY_BYTES} bytes, this one has {}",
            key.len()
        )))
    }
}

fn since_epoch(time: SystemTime) -> Duration {
    time.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The current time as a DynamoDB number with milliseconds, for conditions.
fn now_number() -> AttributeValue {
    let now = since_epoch(SystemTime::now());
    AttributeValue::N(format!("{}.{:03}", now.as_secs(), now.subsec_millis()))
}

/// `now + ttl` in whole seconds, rounded up so an entry never expires before its TTL.
/// (Flask-Session writes a float with a fraction; both are numbers to each side.)
fn expiration_number(ttl: Duration) -> AttributeValue {
    let at = since_epoch(SystemTime::now()).saturating_add(ttl);
    let seconds = at
        .as_secs()
        .saturating_add(u64::from(at.subsec_nanos() > 0));
    AttributeValue::N(seconds.to_string())
}

/// Reads an `expiration` number, integer or decimal (Flask-Session writes
/// `1798318610.440824985504150390625`).
pub(crate) fn parse_expiration(number: &str) -> Option<SystemTime> {
    let seconds: f64 = number.trim().parse().ok()?;
    let offset = Duration::try_from_secs_f64(seconds).ok()?;
    UNIX_EPOCH.checked_add(offset)
}

/// Calls `send` until it succeeds, fails with anything but throttling, or has made the
/// attempts `retry` allows (one without it), sleeping its backoff, doubled each time up
/// to its maximum, between attempts.
async fn retry_if_not_processed<T, E, Fut>(
    retry: Option<&RetryConfig>,
    send: impl Fn() -> Fut,
) -> Result<T, SdkError<E, HttpResponse>>
where
    Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata,
{
    let attempts = retry.map_or(1, |retry| retry.max_attempts()).max(1);
    let mut backoff = retry.map_or(Duration::ZERO, |retry| retry.initial_backoff());
    let max_backoff = retry.map_or(Duration::ZERO, |retry| retry.max_backoff());
    let mut attempt = 1;
    loop {
        let result = send().await;
        match &result {
            Err(error) if attempt < attempts && is_not_processed(error) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
                attempt += 1;
            }
            _ => return result,
        }
    }
}

fn blob(bytes: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes))
}

#[async_trait]
impl SessionStore for DynamoStore {
    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)
    }

    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        if !is_storable(key) {
            return Ok(None);
        }
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ATTR_ID, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .projection_expression("#val, #exp")
            .expression_attribute_names("#val", ATTR_VALUE)
            .expression_attribute_names("#exp", ATTR_EXPIRATION)
            .send()
            .await
            .map_err(|e| store_error("GetItem", &self.table, e))?;
        let Some(mut item) = output.item else {
            return Ok(None);
        };
        let expires_at = match item.get(ATTR_EXPIRATION) {
            Some(AttributeValue::N(number)) => parse_expiration(number),
            _ => None,
        };
        let Some(expires_at) = expires_at else {
            tracing::warn!(table = %self.table, "session item without a numeric `expiration`; treated as expired");
            return Ok(None);
        };
        if expires_at <= SystemTime::now() {
            return Ok(None);
        }
        match item.remove(ATTR_VALUE) {
            Some(AttributeValue::B(value)) => Ok(Some(StoredEntry {
                value: value.into_inner(),
                expires_at: Some(expires_at),
            })),
            _ => {
                tracing::warn!(table = %self.table, "session item without a binary `val`; treated as missing");
                Ok(None)
            }
        }
    }

    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        check_key(key)?;
        self.check_value(value)?;
        // PutItem: an expired leftover is replaced whole, attributes and all.
        let result = self
            .send_conditional(|client| {
                client
                    .put_item()
                    .table_name(&self.table)
                    .item(ATTR_ID, AttributeValue::S(key.to_owned()))
                    .item(ATTR_VALUE, blob(value))
                    .item(ATTR_EXPIRATION, expiration_number(ttl))
                    .condition_expression(FREE_CONDITION)
                    .expression_attribute_names("#id", ATTR_ID)
                    .expression_attribute_names("#exp", ATTR_EXPIRATION)
                    .expression_attribute_values(":now", now_number())
                    .send()
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failed(&error) => Ok(false),
            Err(error) if is_item_too_large(&error) => Err(self.too_large(value)),
            Err(error) => Err(store_error("PutItem", &self.table, error)),
        }
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        if !is_storable(key) {
            return Ok(false);
        }
        self.check_value(value)?;
        let result = self
            .send_conditional(|client| {
                client
                    .update_item()
                    .table_name(&self.table)
                    .key(ATTR_ID, AttributeValue::S(key.to_owned()))
                    .update_expression("SET #val = :val, #exp = :exp")
                    .condition_expression(LIVE_WITH_VALUE)
                    .expression_attribute_names("#val", ATTR_VALUE)
                    .expression_attribute_names("#exp", ATTR_EXPIRATION)
                    .expression_attribute_values(":val", blob(value))
                    .expression_attribute_values(":exp", expiration_number(ttl))
                    .expression_attribute_values(":expected", blob(expected))
                    .expression_attribute_values(":now", now_number())
                    .send()
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failed(&error) => Ok(false),
            Err(error) if is_item_too_large(&error) => Err(self.too_large(value)),
            Err(error) => Err(store_error("UpdateItem", &self.table, error)),
        }
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        if !is_storable(key) {
            return Ok(false);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_ID, AttributeValue::S(key.to_owned()))
            .update_expression("SET #exp = :exp")
            .condition_expression(LIVE)
            .expression_attribute_names("#id", ATTR_ID)
            .expression_attribute_names("#exp", ATTR_EXPIRATION)
            .expression_attribute_values(":exp", expiration_number(ttl))
            .expression_attribute_values(":now", now_number())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error("UpdateItem", &self.table, error)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if !is_storable(key) {
            return Ok(());
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(ATTR_ID, AttributeValue::S(key.to_owned()))
            .send()
            .await
            .map_err(|e| store_error("DeleteItem", &self.table, e))?;
        Ok(())
    }

    /// `DeleteItem` with the condition that the item is live and holds `expected`.
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        if !is_storable(key) {
            return Ok(false);
        }
        let result = self
            .send_conditional(|client| {
                client
                    .delete_item()
                    .table_name(&self.table)
                    .key(ATTR_ID, AttributeValue::S(key.to_owned()))
                    .condition_expression(LIVE_WITH_VALUE)
                    .expression_attribute_names("#val", ATTR_VALUE)
                    .expression_attribute_names("#exp", ATTR_EXPIRATION)
                    .expression_attribute_values(":expected", blob(expected))
                    .expression_attribute_values(":now", now_number())
                    .send()
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error("DeleteItem", &self.table, error)),
        }
    }

    /// One `TransactWriteItems`: delete the old item if it still holds `expected` and is
    /// live, put the new one if its key is free. Both happen or neither does.
    async fn rotate(
        &self,
        old_key: &str,
        expected: &[u8],
        new_key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_key(new_key)?;
        self.check_value(value)?;
        if !is_storable(old_key) || old_key == new_key {
            // The old entry cannot exist, or the new key is not free (it holds the old entry).
            return Ok(false);
        }
        let now = now_number();
        let delete_old = Delete::builder()
            .table_name(&self.table)
            .key(ATTR_ID, AttributeValue::S(old_key.to_owned()))
            .condition_expression(LIVE_WITH_VALUE)
            .expression_attribute_names("#val", ATTR_VALUE)
            .expression_attribute_names("#exp", ATTR_EXPIRATION)
            .expression_attribute_values(":expected", blob(expected))
            .expression_attribute_values(":now", now.clone())
            .build()
            .map_err(StoreError::backend)?;
        let put_new = Put::builder()
            .table_name(&self.table)
            .item(ATTR_ID, AttributeValue::S(new_key.to_owned()))
            .item(ATTR_VALUE, blob(value))
            .item(ATTR_EXPIRATION, expiration_number(ttl))
            .condition_expression(FREE_CONDITION)
            .expression_attribute_names("#id", ATTR_ID)
            .expression_attribute_names("#exp", ATTR_EXPIRATION)
            .expression_attribute_values(":now", now)
            .build()
            .map_err(StoreError::backend)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete_old).build())
            .transact_items(TransactWriteItem::builder().put(put_new).build())
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(true),
            Err(error) => error,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) =
            error.as_service_error()
        {
            let reasons = canceled.cancellation_reasons();
            // A failed check, or a concurrent write to one of the items: nothing changed.
            if reasons.iter().all(|reason| {
                matches!(
                    reason.code(),
                    None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                )
            }) {
                return Ok(false);
            }
            if reasons.iter().any(|r| {
                r.message()
                    .is_some_and(|m| m.contains("maximum allowed size"))
            }) {
                return Err(self.too_large(value));
            }
        }
        if is_item_too_large(&error) {
            return Err(self.too_large(value));
        }
        Err(store_error("TransactWriteItems", &self.table, error))
    }

    /// Optional: DynamoDB's TTL deletes expired items by itself (within days; they are
    /// never served meanwhile). Scans for expired items and deletes each with a condition
    /// that it is still expired, so a session refreshed between the scan and the delete
    /// survives (`BatchWriteItem` cannot carry that condition).
    /// A DynamoDB `Scan` page of live items whose `id` begins with the prefix; the cursor
    /// is the last evaluated `id`. `Limit` caps the items read before the filter, so a
    /// page may hold fewer keys than `limit`, even none, and still have a next one.
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<session_core::ScanPage, StoreError> {
        let start_key =
            cursor.map(|id| HashMap::from([(ATTR_ID.to_owned(), AttributeValue::S(id))]));
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(#id, :prefix) AND #exp > :now")
            .projection_expression("#id")
            .expression_attribute_names("#id", ATTR_ID)
            .expression_attribute_names("#exp", ATTR_EXPIRATION)
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
            .expression_attribute_values(":now", now_number())
            .limit(i32::try_from(limit.clamp(1, 100_000)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|e| store_error("Scan", &self.table, e))?;
        let keys = page
            .items()
            .iter()
            .filter_map(|item| match item.get(ATTR_ID) {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let next = match page.last_evaluated_key() {
            Some(key) => match key.get(ATTR_ID) {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            },
            None => None,
        };
        Ok(session_core::ScanPage { keys, next })
    }

    async fn cleanup(&self) -> Result<u64, StoreError> {
        let mut removed = 0;
        let mut start_key: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#exp <= :now")
                .projection_expression("#id")
                .expression_attribute_names("#id", ATTR_ID)
                .expression_attribute_names("#exp", ATTR_EXPIRATION)
                .expression_attribute_values(":now", now_number())
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(|e| store_error("Scan", &self.table, e))?;
            let ids = page
                .items()
                .iter()
                .filter_map(|item| match item.get(ATTR_ID) {
                    Some(AttributeValue::S(id)) => Some(id.clone()),
                    _ => None,
                });
            let mut deletes = JoinSet::new();
            let mut failure = None;
            for id in ids {
                if deletes.len() >= CLEANUP_CONCURRENCY {
                    collect(deletes.join_next().await, &mut removed, &mut failure);
                }
                deletes.spawn(DynamoStore::conditional_delete_expired(
                    self.client.clone(),
                    self.table.clone(),
                    id,
                ));
            }
            while let Some(joined) = deletes.join_next().await {
                collect(Some(joined), &mut removed, &mut failure);
            }
            if let Some(error) = failure {
                return Err(error);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok(removed),
            }
        }
    }

    /// Whether the owners table exists: created at start-up, or found there with
    /// `table_exists`.
    fn owner_index(&self) -> bool {
        self.owner_index
    }

    /// One `PutItem` on `(index, key)`, replacing any earlier entry whole; `expiration`
    /// (the owners table's TTL attribute) is [`OWNERS_EXPIRY_GRACE`] after `expires_at`.
    async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        self.check_owners(index, Some(&entry.key))?;
        let number = |n: u64| AttributeValue::N(n.to_string());
        let expiration = entry
            .expires_at
            .saturating_add(OWNERS_EXPIRY_GRACE.as_secs());
        self.client
            .put_item()
            .table_name(&self.owners_table)
            .item(ATTR_OWNER_INDEX, AttributeValue::S(index.to_owned()))
            .item(ATTR_OWNER_KEY, AttributeValue::S(entry.key.clone()))
            .item(ATTR_CREATED, number(entry.created))
            .item(ATTR_LAST_SEEN, number(entry.last_seen))
            .item(ATTR_EXPIRES_AT, number(entry.expires_at))
            .item(ATTR_EXPIRATION, number(expiration))
            .send()
            .await
            .map_err(|e| owners_error("PutItem", &self.owners_table, e))?;
        Ok(())
    }

    /// One `DeleteItem`; a missing entry is fine.
    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        self.check_owners(index, Some(key))?;
        self.client
            .delete_item()
            .table_name(&self.owners_table)
            .key(ATTR_OWNER_INDEX, AttributeValue::S(index.to_owned()))
            .key(ATTR_OWNER_KEY, AttributeValue::S(key.to_owned()))
            .send()
            .await
            .map_err(|e| owners_error("DeleteItem", &self.owners_table, e))?;
        Ok(())
    }

    /// A `Query` on the partition `index`, every page, leaving out items whose
    /// `expiration` has passed (DynamoDB's TTL deletes them only within days). Items that
    /// do not read as an entry are skipped with a warning, never an error.
    async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        self.check_owners(index, None)?;
        let mut entries = Vec::new();
        let mut start_key: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.owners_table)
                .key_condition_expression("#i = :i")
                .filter_expression("#exp > :now")
                .expression_attribute_names("#i", ATTR_OWNER_INDEX)
                .expression_attribute_names("#exp", ATTR_EXPIRATION)
                .expression_attribute_values(":i", AttributeValue::S(index.to_owned()))
                .expression_attribute_values(":now", now_number())
                .consistent_read(true)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(|e| owners_error("Query", &self.owners_table, e))?;
            for item in page.items() {
                match index_entry_of(item) {
                    Some(entry) => entries.push(entry),
                    None => tracing::warn!(
                        table = %self.owners_table,
                        "owner index item that is no entry skipped"
                    ),
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok(entries),
            }
        }
    }
}

/// The owner index item's times, type N, Unix seconds.
const ATTR_CREATED: &str = "created";
const ATTR_LAST_SEEN: &str = "last_seen";
const ATTR_EXPIRES_AT: &str = "expires_at";

impl DynamoStore {
    /// The owner index is there, and `index` and `key` fit its key attributes.
    fn check_owners(&self, index: &str, key: Option<&str>) -> Result<(), StoreError> {
        if !self.owner_index {
            return Err(StoreError::Unsupported(format!(
                "the owner index table {} was not found at start-up (with table_exists, \
                 create it: partition key `index` (S), sort key `key` (S), TTL on \
                 `expiration`)",
                self.owners_table
            )));
        }
        if !is_storable(index) {
            return Err(StoreError::InvalidKey(format!(
                "owner index names are 1 to {MAX_KEY_BYTES} bytes in DynamoDB, this one has {}",
                index.len()
            )));
        }
        if let Some(key) = key.filter(|key| key.is_empty() || key.len() > MAX_SORT_KEY_BYTES) {
            return Err(StoreError::InvalidKey(format!(
                "session keys in the owner index are 1 to {MAX_SORT_KEY_BYTES} bytes (a \
                 DynamoDB sort key), this one has {}",
                key.len()
            )));
        }
        Ok(())
    }
}

/// [`store_error`] for the owners table, saying what the table must look like when it is
/// missing (deleted after start-up).
fn owners_error<E>(
    operation: &'static str,
    table: &str,
    error: aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let missing = error_code(&error) == "ResourceNotFoundException";
    let mapped = store_error(operation, table, error);
    if missing {
        StoreError::backend(DynamoError::new(
            operation,
            table,
            format!(
                "{mapped}; the owner index table needs partition key `index` (S), sort key \
                 `key` (S) and TTL on `expiration`"
            ),
        ))
    } else {
        mapped
    }
}

/// An owner index item as an entry; `None` when it is not one.
fn index_entry_of(item: &HashMap<String, AttributeValue>) -> Option<IndexEntry> {
    let number = |name: &str| match item.get(name)? {
        AttributeValue::N(n) => n.trim().parse::<u64>().ok(),
        _ => None,
    };
    let key = match item.get(ATTR_OWNER_KEY)? {
        AttributeValue::S(key) => key.clone(),
        _ => return None,
    };
    Some(IndexEntry {
        key,
        created: number(ATTR_CREATED)?,
        last_seen: number(ATTR_LAST_SEEN)?,
        expires_at: number(ATTR_EXPIRES_AT)?,
    })
}

/// Adds a finished conditional delete to the count, keeping the first error.
fn collect(
    joined: Option<Result<Result<bool, StoreError>, tokio::task::JoinError>>,
    removed: &mut u64,
    failure: &mut Option<StoreError>,
) {
    match joined {
        Some(Ok(Ok(true))) => *removed += 1,
        Some(Ok(Ok(false))) | None => {}
        Some(Ok(Err(error))) => {
            failure.get_or_insert(error);
        }
        Some(Err(join_error)) => {
            failure.get_or_insert(StoreError::backend(join_error));
        }
    }
}

#[cfg(test)]
// The SDK's errors are large; the retry tests build and return them as the SDK does.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicU32, Ordering};

    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    use aws_smithy_types::body::SdkBody;

    type Answer = Result<(), SdkError<UpdateItemError, HttpResponse>>;

    /// A service error with `code`, as DynamoDB answers it.
    fn answered(code: &str) -> Answer {
        let error = UpdateItemError::generic(ErrorMetadata::builder().code(code).build());
        let status = 400.try_into().expect("a status code");
        let response = HttpResponse::new(status, SdkBody::empty());
        Err(SdkError::service_error(error, response))
    }

    /// Runs `retry_if_not_processed` over `answers` in turn; returns its result and how many
    /// attempts it made.
    async fn attempts(answers: Vec<fn() -> Answer>) -> (Answer, u32) {
        let made = AtomicU32::new(0);
        let retry = RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1));
        let result = retry_if_not_processed(Some(&retry), || {
            let attempt = made.fetch_add(1, Ordering::SeqCst) as usize;
            let answer = answers[attempt.min(answers.len() - 1)]();
            async move { answer }
        })
        .await;
        (result, made.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_conditional_write_is_sent_again_after_throttling_only() {
        // Throttled twice, then written: three attempts.
        let (result, made) = attempts(vec![
            || answered("ProvisionedThroughputExceededException"),
            || answered("ThrottlingException"),
            || Ok(()),
        ])
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(made, 3);
        // Throttled every time: the client's three attempts, then its error.
        let (result, made) = attempts(vec![|| answered("RequestLimitExceeded")]).await;
        assert_eq!(
            result.map_err(|e| e.code().map(str::to_owned)),
            Err(Some("RequestLimitExceeded".to_owned()))
        );
        assert_eq!(made, 3);
        // A timeout, a 5xx or a failed condition may follow a write DynamoDB applied (or
        // is the answer): never sent again.
        let timed_out: fn() -> Answer = || Err(SdkError::timeout_error("attempt timed out"));
        for answer in [
            timed_out,
            || answered("InternalServerError"),
            || answered("ConditionalCheckFailedException"),
        ] {
            let (result, made) = attempts(vec![answer, || Ok(())]).await;
            assert!(result.is_err());
            assert_eq!(made, 1);
        }
    }

    #[test]
    fn an_absurd_ttl_saturates_instead_of_overflowing() {
        match expiration_number(Duration::MAX) {
            AttributeValue::N(seconds) => assert_eq!(seconds, u64::MAX.to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expirations_in_both_formats_parse() {
        let flask = parse_expiration("1798318610.440824985504150390625").unwrap();
        let whole = parse_expiration("1798318610").unwrap();
        assert_eq!(since_epoch(whole), Duration::from_secs(1_798_318_610));
        let fraction = since_epoch(flask) - since_epoch(whole);
        assert!(fraction > Duration::from_millis(440) && fraction < Duration::from_millis(441));
        assert_eq!(parse_expiration("-5"), None);
        assert_eq!(parse_expiration("NaN"), None);
        assert_eq!(parse_expiration("1e400"), None);
        assert_eq!(parse_expiration("soon"), None);
    }

    #[test]
    fn expiration_is_rounded_up() {
        let before = since_epoch(SystemTime::now()).as_secs();
        let AttributeValue::N(number) = expiration_number(Duration::from_millis(1500)) else {
            panic!("not a number");
        };
        let seconds: u64 = number.parse().unwrap();
        assert!(seconds >= before + 2 && seconds <= before + 3, "{number}");
    }

    #[test]
    fn value_limit_leaves_room_for_the_longest_key() {
        let item = MAX_KEY_BYTES
            + ATTR_ID.len()
            + ATTR_VALUE.len()
            + ATTR_EXPIRATION.len()
            + 21
            + MAX_VALUE_BYTES;
        assert_eq!(item, MAX_ITEM_BYTES);
    }

    #[test]
    fn keys_are_checked_against_dynamodb_limits() {
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(matches!(
            check_key(&"k".repeat(MAX_KEY_BYTES + 1)),
            Err(StoreError::InvalidKey(_))
        ));
    }
}
