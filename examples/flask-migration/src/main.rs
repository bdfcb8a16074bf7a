//! `cargo run -p flask-migration` (or `cargo xtask demo`): Flask and Rust behind one entry
//! point on one Redis. Environment: `FLASK_PYTHON` (a venv with Flask-Session 0.8),
//! `REDIS_URL`, `HOST`, `PORT` (default 127.0.0.1:8080), `SECRET_KEY`, and the session
//! options both sides read (`SESSION_COOKIE_NAME`, `SESSION_KEY_PREFIX`).

use std::process::ExitCode;

use flask_migration::{Settings, FLASK_ROUTES};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flask-migration: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let demo = flask_migration::start(&settings).await?;
    println!("flask-migration demo on {}", demo.url);
    println!(
        "  Flask (Flask-Session 0.8) and Rust (session-example) share {} and the cookie",
        settings.redis_url
    );
    for (method, path) in FLASK_ROUTES {
        println!("  {method} {path:<10} -> Flask (not moved yet)");
    }
    println!("  everything else -> Rust: GET /, POST /counter, GET /ui, PUT/DELETE /data/KEY, ...");
    println!("  /flask/PATH -> always Flask, /rust/PATH -> always Rust (X-Served-By tells which answered)");
    println!(
        "try: curl -c jar -b jar -X POST '{}/login?user=ann'   # Flask logs in",
        demo.url
    );
    println!(
        "     curl -c jar -b jar {}/                           # Rust reads it",
        demo.url
    );
    println!("     curl -c jar -b jar -X POST {}/flask/counter; curl -c jar -b jar -X POST {}/rust/counter", demo.url, demo.url);
    println!(
        "     or open {}/ui in a browser (Ctrl-C stops Flask too)",
        demo.url
    );
    stopped().await?;
    // Dropping the demo stops Flask too (a signal to this process alone would orphan it).
    drop(demo);
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn stopped() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = term.recv() => {}
    }
    Ok(())
}
