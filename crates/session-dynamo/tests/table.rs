//! Start-up: table creation with TTL on `expiration`, and `table_exists` mode, which makes
//! no call at all. Requests are counted with an SDK interceptor.

mod common;

use aws_sdk_dynamodb::types::{
    BillingMode, KeyType, ScalarAttributeType, TableStatus, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use common::Recorder;
use session_core::testkit::SeedExt as _;
use session_core::{SessionStore, StoreError};
use session_dynamo::DynamoStore;

/// A client for the test target (the store's own, taken from a store that made no call).
async fn target_client() -> Client {
    common::builder("session-dynamo-unused")
        .table_exists(true)
        .build()
        .await
        .expect("a store with table_exists makes no call")
        .client()
        .clone()
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

/// CreateTable, DescribeTable until ACTIVE (once on an emulator, where tables are ACTIVE at
/// once; a few times on AWS), UpdateTimeToLive.
fn assert_start_up_calls(operations: &[String]) {
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

    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn table_exists_mode_makes_no_call_at_start() {
    let client = target_client().await;
    let recorder = Recorder::default();
    let table = common::unique_table("absent");
    let store = DynamoStore::from_client(recorder.attach(&client), &table, true)
        .await
        .expect("construction needs no call");
    assert_eq!(recorder.operations(), Vec::<String>::new());
    assert!(
        !table_names(&client).await.contains(&table),
        "table {table} was created"
    );

    // The first call then fails clearly, naming the table.
    let error = store.load("session:x").await.expect_err("table is missing");
    assert_eq!(recorder.operations(), ["GetItem"]);
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&table), "{message}");
    assert!(message.contains("ResourceNotFoundException"), "{message}");
    assert!(message.contains("table_exists"), "{message}");
    assert!(!table_names(&client).await.contains(&table));
}

#[tokio::test]
async fn the_default_builder_targets_flask_sessions_table_locally() {
    let store = DynamoStore::builder()
        .table_exists(true)
        .build()
        .await
        .expect("no call is made");
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
    let cases = [
        (
            DynamoStore::builder().table_name("ab"),
            "SESSION_DYNAMODB_TABLE",
        ),
        (
            DynamoStore::builder().table_name("sessions/table"),
            "SESSION_DYNAMODB_TABLE",
        ),
        (DynamoStore::builder().max_attempts(0), "max_attempts"),
        (
            DynamoStore::builder().max_value_bytes(session_dynamo::MAX_VALUE_BYTES + 1),
            "max_value_bytes",
        ),
        (DynamoStore::builder().max_value_bytes(0), "max_value_bytes"),
        (
            DynamoStore::builder().endpoint_url("localhost:8000"),
            "endpoint_url",
        ),
    ];
    for (builder, option) in cases {
        let shown = format!("{builder:?}");
        match builder.table_exists(true).build().await {
            Err(StoreError::Backend(error)) => {
                assert!(error.to_string().contains(option), "{shown}: {error}")
            }
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
