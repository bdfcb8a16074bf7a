//! `cargo run -p session-example`: serves the example app on 127.0.0.1:3000.
//!
//! Environment: `HOST` (default 127.0.0.1), `PORT` (default 3000), `SESSION_TYPE` and the
//! store's variables (read by `session_any::AnyStore::from_env`), every Flask-Session
//! option read by `SessionConfig::from_env` (`SESSION_COOKIE_NAME`, `SESSION_PERMANENT`,
//! ...), and `RUST_LOG` for the log filter (default `info`).

use std::process::ExitCode;

use anyhow::Context as _;
use session_axum::{SessionConfig, SessionManager};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("session-example: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    // A ConfigError's message names the option, e.g. "invalid SESSION_ID_LENGTH: ...".
    let config = SessionConfig::from_env()?;
    // SESSION_TYPE picks the store; a SetupError names the variable at fault.
    let store = session_any::AnyStore::from_env().await?;
    let manager = SessionManager::try_from_shared(store.into_shared(), config)?;

    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .trim()
            .parse::<u16>()
            .map_err(|_| anyhow::anyhow!("invalid PORT: {port:?} is not a port number"))?,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port} (HOST, PORT)"))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, session_example::app(manager))
        .with_graceful_shutdown(async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for Ctrl-C; stop the process to shut down");
                std::future::pending::<()>().await;
            }
        })
        .await?;
    Ok(())
}
