//! Flask-Session 0.8 (boto3) and the Rust example app share one DynamoDB table, in both
//! directions. The server is moto's DynamoDB emulator.
//!
//! Needs the DynamoDB-compatible server (`cargo xtask services up dynamodb`) and the Flask venv.

use session_tests::any_store;
use session_tests::flask::{rust_app, unique, Interop, Invalidations};

async fn interop() -> Interop {
    let endpoint =
        std::env::var("DYNAMODB_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let table = unique("Sessions");
    let store = any_store(
        &[
            ("SESSION_TYPE", "dynamodb".into()),
            ("SESSION_DYNAMODB_ENDPOINT", endpoint.clone()),
            ("AWS_REGION", region.clone()),
            ("SESSION_DYNAMODB_TABLE", table.clone()),
        ],
        "dynamodb",
    )
    .await;
    Interop {
        invalidations: Invalidations::of(&*store),
        app: rust_app(store, "session:"),
        env: vec![
            ("SESSION_TYPE", "dynamodb".into()),
            ("DYNAMODB_ENDPOINT", endpoint),
            ("AWS_REGION", region),
            (
                "AWS_ACCESS_KEY_ID",
                std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "dummy".into()),
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "dummy".into()),
            ),
            ("SESSION_DYNAMODB_TABLE", table),
        ],
        lifetime: 31 * 24 * 3600,
    }
}

#[tokio::test]
async fn a_flask_session_is_read_and_changed_by_rust_and_flask_sees_the_change() {
    interop().await.flask_to_rust_and_back().await;
}

#[tokio::test]
async fn a_rust_session_is_read_and_changed_by_flask() {
    interop().await.rust_to_flask().await;
}
