//! Mapping of SDK errors onto [`StoreError`].

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use session_core::StoreError;

/// Error codes DynamoDB answers while it is overloaded; the SDK has already retried them.
const OVERLOAD_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "ServiceUnavailable",
];

/// The message DynamoDB (and moto) give for an item over 400 KB.
const ITEM_TOO_LARGE: &str = "exceeded the maximum allowed size";

/// A failed DynamoDB call: which operation on which table, with the SDK's full message
/// (its own `Display` says only "service error").
#[derive(Debug)]
pub(crate) struct DynamoError {
    operation: &'static str,
    table: String,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl DynamoError {
    pub(crate) fn new(operation: &'static str, table: &str, message: impl Into<String>) -> Self {
        DynamoError {
            operation,
            table: table.to_owned(),
            message: message.into(),
            source: None,
        }
    }
}

impl fmt::Display for DynamoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DynamoDB {} on table {:?} failed",
            self.operation, self.table
        )?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// The SDK error as its chain of causes, each by its `Display`, kept as the source of a
/// [`DynamoError`] (the SDK's own error types need the operation's type parameters).
#[derive(Debug)]
struct Causes(String);

impl fmt::Display for Causes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Causes {}

/// `dispatch failure: io error: client error (Connect): tcp connect error: Connection
/// refused (os error 111)`: every cause once, no `Debug` output.
fn error_without_debug(error: impl StdError) -> Causes {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !next_text.is_empty() && !text.ends_with(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    Causes(text)
}

impl StdError for DynamoError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// The error code of a service error (`ConditionalCheckFailedException`, ...).
pub(crate) fn error_code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> &str {
    error.code().unwrap_or_default()
}

/// Whether DynamoDB refused a conditional write or delete because its condition did not
/// hold (the outcome "not written", not a failure).
pub(crate) fn is_condition_failed<E: ProvideErrorMetadata>(
    error: &SdkError<E, HttpResponse>,
) -> bool {
    error_code(error) == "ConditionalCheckFailedException"
}

/// Codes DynamoDB answers for requests it did not process (throttling): a conditional
/// write may be sent again after one of these, and only after one of these.
const NOT_PROCESSED_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
];

/// Whether DynamoDB refused the request unprocessed (throttled), so that sending it again
/// cannot apply it twice.
pub(crate) fn is_not_processed<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    matches!(error, SdkError::ServiceError(_)) && NOT_PROCESSED_CODES.contains(&error_code(error))
}

/// Whether DynamoDB refused the item for its size.
pub(crate) fn is_item_too_large<E: ProvideErrorMetadata>(
    error: &SdkError<E, HttpResponse>,
) -> bool {
    error_code(error) == "ValidationException"
        && error.message().is_some_and(|m| m.contains(ITEM_TOO_LARGE))
}

/// Maps a failed call: no answer (connection, timeout) and overload after the SDK's
/// retries are `Unavailable`; every other answer is `Backend`.
pub(crate) fn store_error<E>(
    operation: &'static str,
    table: &str,
    error: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let unavailable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ResponseError(response) => response.raw().status().is_server_error(),
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || OVERLOAD_CODES.contains(&service.err().code().unwrap_or_default())
        }
        _ => false,
    };
    // A service error's own Display says only "service error": its code and message say
    // what DynamoDB answered. Any other failure (no connection, a timeout) is told by its
    // chain of causes, which session-core's StoreError appends, one readable line; the
    // SDK's DisplayErrorContext would add the whole Debug form of each cause.
    let (mut message, source): (String, Option<Box<dyn StdError + Send + Sync>>) = match &error {
        SdkError::ServiceError(_) => {
            let code = error.code().unwrap_or("unknown error code");
            let text = match error.message() {
                Some(text) if !text.is_empty() => format!("{code}: {text}"),
                _ => code.to_owned(),
            };
            (text, None)
        }
        _ => (String::new(), Some(Box::new(error_without_debug(&error)))),
    };
    if message.starts_with("ResourceNotFoundException") {
        message.push_str(
            " (the table does not exist: create it, or let the store create it by leaving \
             table_exists off)",
        );
    }
    let wrapped = DynamoError {
        operation,
        table: table.to_owned(),
        message,
        source,
    };
    if unavailable {
        StoreError::unavailable(wrapped)
    } else {
        StoreError::backend(wrapped)
    }
}
