//! The HTTP-level test suite: one set of scenarios, run for every store and every
//! framework adapter.
//!
//! A scenario is an async function generic over an [`Adapter`] (how to serve the example
//! app and send it requests) and a [`Backend`] (which store to run it on). The
//! [`http_suite!`] macro turns every scenario into a `#[tokio::test]` for one pair, so a new
//! store or a new adapter gets the whole suite with one line:
//!
//! ```text
//! mod memory {
//!     session_tests::http_suite!(session_tests::Axum, session_tests::Memory);
//! }
//! ```
//!
//! Every store is wrapped in [`session_core::testkit::TestStore`], so scenarios can count
//! store calls and simulate an outage.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod actix;
mod adapter;
mod backend;
pub mod browser;
mod client;
pub mod flask;
mod harness;
pub mod scenarios;

pub use actix::{Actix, ActixClient};
pub use adapter::{Adapter, Axum, Server};
pub use backend::{
    any_store, Backend, BackendStore, Cachelib, DynamoDb, Filesystem, Memcached, Memory, MongoDb,
    Postgres, Redis,
};
pub use client::{AxumClient, HttpClient, TestClient};
pub use harness::{send_request, Calls, Harness, Reply};

/// Scenarios that measure behaviour under load and so run alone, not beside the others.
const RUN_ALONE: &[&str] = &["concurrent_counter_loses_no_increment"];

static TURNS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A scenario's turn to run: shared for most, exclusive for those in `RUN_ALONE`, so
/// sibling tests do not compete for the CPU while 64 requests race. Hold it for the whole
/// scenario.
pub enum Turn {
    /// Runs beside other scenarios.
    Shared(tokio::sync::RwLockReadGuard<'static, ()>),
    /// Runs alone.
    Alone(tokio::sync::RwLockWriteGuard<'static, ()>),
}

/// Waits for `scenario`'s turn (used by [`http_suite!`]).
pub async fn take_turn(scenario: &str) -> Turn {
    if RUN_ALONE.contains(&scenario) {
        Turn::Alone(TURNS.write().await)
    } else {
        Turn::Shared(TURNS.read().await)
    }
}

/// Expands to one `#[tokio::test]` per scenario in [`scenarios`] for `$adapter` (an
/// [`Adapter`]) and `$backend` (a [`Backend`]). The calling crate needs `tokio` with the
/// `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! http_suite {
    ($adapter:ty, $backend:ty) => {
        $crate::http_suite!(@each $adapter, $backend, [
            cookie_defaults,
            cookie_attributes_when_configured,
            non_permanent_cookie_has_no_expiry,
            untouched_session_costs_nothing,
            read_only_request_does_not_rewrite,
            refresh_threshold_touches_and_resends_permanent_cookie,
            no_refresh_each_request_writes_nothing,
            logout_deletes_the_session,
            logout_cookie_keeps_the_cookies_attributes,
            login_regenerates_the_id,
            vary_cookie_whenever_accessed,
            vary_merges_with_the_handlers_header,
            unknown_id_gets_a_fresh_id,
            malformed_cookies_get_a_fresh_id_without_store_calls,
            duplicated_cookies_first_wins_and_never_adopts,
            bad_signatures_get_a_fresh_id,
            corrupt_stored_bytes_give_a_fresh_session,
            store_outage_is_a_bare_503_and_recovers,
            concurrent_counter_loses_no_increment,
            data_round_trip_with_nested_json,
            msgpack_values_survive_a_rust_write,
            invalid_input_is_400,
            sessions_lists_the_users_sessions,
            logout_everywhere_ends_the_other_sessions,
            remember_sets_the_sessions_lifetime,
        ]);
    };
    (@each $adapter:ty, $backend:ty, [$($scenario:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $scenario() {
                let _turn = $crate::take_turn(stringify!($scenario)).await;
                $crate::scenarios::$scenario::<$adapter, $backend>().await;
            }
        )*
    };
}
