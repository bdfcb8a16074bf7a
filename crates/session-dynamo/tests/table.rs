//! Start-up: table creation with TTL on `expiration`, and `table_exists` mode, which only
//! reads one item. Requests are counted with an SDK interceptor.

mod common;

use aws_sdk_dynamodb::types::{
    BillingMode, KeyType, ScalarAttributeType, TableStatus, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use common::Recorder;
use session_core::testkit::SeedExt as _;
use session_core::{SessionStore, SetupError, StoreError};
use session_dynamo::DynamoStore;

/// A client for the test target (the store's own, as the builder configures it).
async fn target_client() -> Client {
    common::store("session-dynamo-table").await.client().clone()
}

async fn table_names(client: &Client) -> Vec<String> {
    let mut names = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .list_tables()
            .set_exclusive_start_table_name(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListTables on {}: {e:?}", common::where_dynamodb_is()));
        names.extend(page.table_names().iter().cloned());
        match page.last_evaluated_table_name {
            Some(last) => start = Some(last),
            None => return names,
        }
    }
}

/// For the sessions table, then for the owner index's table: CreateTable, DescribeTable
/// until ACTIVE (once on an emulator, where tables are ACTIVE at once; a few times on AWS),
/// UpdateTimeToLive.
fn assert_start_up_calls(operations: &[String]) {
    let second = operations
        .iter()
        .skip(1)
        .position(|op| op == "CreateTable")
        .map(|at| at + 1)
        .unwrap_or_else(|| panic!("one CreateTable only: {operations:?}"));
    assert_one_table_start_up(&operations[..second]);
    assert_one_table_start_up(&operations[second..]);
}

fn assert_one_table_start_up(operations: &[String]) {
    let polls = operations.len().saturating_sub(2);
    assert!(
        operations.len() >= 3
            && operations[0] == "CreateTable"
            && operations[1..=polls].iter().all(|op| op == "DescribeTable")
            && operations[polls + 1] == "UpdateTimeToLive",
        "start-up calls: {operations:?}"
    );
    if common::endpoint().is_some() {
        assert_eq!(polls, 1, "start-up calls: {operations:?}");
    }
}

#[tokio::test]
async fn start_up_creates_the_table_and_enables_ttl_on_expiration() {
    let client = target_client().await;
    let recorder = Recorder::default();
    let table = common::unique_table("ttl");
    let store = DynamoStore::from_client(recorder.attach(&client), &table, false)
        .await
        .unwrap_or_else(|e| panic!("cannot use {}: {e}", common::where_dynamodb_is()));
    assert_start_up_calls(&recorder.operations());

    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().expect("TTL description");
    assert!(
        matches!(
            ttl.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ),
        "TTL status {:?}",
        ttl.time_to_live_status()
    );
    assert_eq!(ttl.attribute_name(), Some("expiration"));
    let owners_ttl = client
        .describe_time_to_live()
        .table_name(format!("{table}_owners"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        owners_ttl
            .time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expiration")
    );
    assert_eq!(store.owners_table_name(), format!("{table}_owners"));
    let owners = client
        .describe_table()
        .table_name(store.owners_table_name())
        .send()
        .await
        .unwrap();
    let owners_keys: Vec<(String, KeyType)> = owners
        .table()
        .expect("owners table description")
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
        .collect();
    assert_eq!(
        owners_keys,
        [
            ("index".to_owned(), KeyType::Hash),
            ("key".to_owned(), KeyType::Range)
        ]
    );
    assert!(store.owner_index());

    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let description = described.table().expect("table description");
    assert_eq!(description.table_status(), Some(&TableStatus::Active));
    let key = description.key_schema();
    assert_eq!(key.len(), 1);
    assert_eq!(key[0].attribute_name(), "id");
    assert_eq!(key[0].key_type(), &KeyType::Hash);
    let id_type = description
        .attribute_definitions()
        .iter()
        .find(|d| d.attribute_name() == "id")
        .map(|d| d.attribute_type().clone());
    assert_eq!(id_type, Some(ScalarAttributeType::S));
    assert_eq!(
        description
            .billing_mode_summary()
            .and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );

    // A second start on the existing table: ResourceInUse and "TTL already enabled" are fine.
    recorder.clear();
    let again = DynamoStore::from_client(recorder.attach(&client), &table, false)
        .await
        .expect("start-up on an existing table");
    assert_start_up_calls(&recorder.operations());
    again
        .put("k", b"v", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.load("k").await.unwrap().unwrap().value, b"v");

    for name in [table.clone(), format!("{table}_owners")] {
        client.delete_table().table_name(name).send().await.unwrap();
    }
}

#[tokio::test]
async fn table_exists_mode_reads_one_item_at_start_and_creates_nothing() {
    let client = target_client().await;
    let recorder = Recorder::default();

    // A missing table fails start-up, naming the table, and is not created.
    let table = common::unique_table("absent");
    let error = DynamoStore::from_client(recorder.attach(&client), &table, true)
        .await
        .expect_err("the table is missing");
    assert_eq!(recorder.operations(), ["GetItem"]);
    assert!(
        matches!(error, SetupError::Store(StoreError::Backend(_))),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&table), "{message}");
    assert!(message.contains("ResourceNotFoundException"), "{message}");
    assert!(message.contains("table_exists"), "{message}");
    assert!(!table_names(&client).await.contains(&table));

    // An existing table: the same single read, and the store works.
    recorder.clear();
    let existing = common::store("session-dynamo-table").await;
    let store = DynamoStore::from_client(recorder.attach(&client), existing.table_name(), true)
        .await
        .expect("the table exists");
    // One read of the sessions table, one of the owner index's.
    assert_eq!(recorder.operations(), ["GetItem", "GetItem"]);
    assert!(store.owner_index());
    let key = format!("{}k", session_core::testkit::unique_prefix("exists"));
    store
        .put(&key, b"v", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(existing.load(&key).await.unwrap().unwrap().value, b"v");
}

/// Flask-Session's defaults: table `Sessions` on DynamoDB Local at `http://localhost:8000`
/// with its dummy credentials. Needs the emulator at that default address.
#[tokio::test]
async fn the_default_builder_targets_flask_sessions_table_locally() {
    let store = DynamoStore::builder()
        .connect()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "DynamoDB Local at http://localhost:8000 (the default endpoint): {error}; \
                 start it with `cargo xtask services up dynamodb`"
            )
        });
    assert_eq!(store.table_name(), "Sessions");
    assert_eq!(store.max_value_bytes(), session_dynamo::MAX_VALUE_BYTES);
    let config = store.client().config();
    let region = config.region().map(|r| r.as_ref().to_owned());
    let expected = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-west-2".to_owned());
    assert_eq!(region.as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn invalid_options_are_refused_naming_the_option() {
    // Port 1: were anything sent, the error would be Unavailable instead.
    let base = || {
        DynamoStore::builder()
            .endpoint_url("http://127.0.0.1:1")
            .credentials("dummy", "dummy")
    };
    let cases = [
        (base().table_name("ab"), "SESSION_DYNAMODB_TABLE"),
        (
            base().table_name("sessions/table"),
            "SESSION_DYNAMODB_TABLE",
        ),
        (base().max_attempts(0), "max_attempts"),
        (
            base().max_value_bytes(session_dynamo::MAX_VALUE_BYTES + 1),
            "max_value_bytes",
        ),
        (base().max_value_bytes(0), "max_value_bytes"),
        (
            base().endpoint_url("localhost:8000"),
            "SESSION_DYNAMODB_ENDPOINT",
        ),
    ];
    for (builder, option) in cases {
        let shown = format!("{builder:?}");
        match builder.connect().await {
            Err(SetupError::Config(error)) => assert_eq!(error.option, option, "{shown}"),
            other => panic!("{shown} gave {other:?}"),
        }
    }
}

#[test]
fn credentials_are_not_shown_by_debug() {
    let shown = format!(
        "{:?}",
        DynamoStore::builder().credentials("AKIDEXAMPLE", "wJalrXUtnFEMI")
    );
    assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
    assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
}
