//! Framework adapters: how a scenario gets the example app and a client for it.

use std::future::Future;

use session_core::SessionManager;

use crate::client::{AxumClient, HttpClient, TestClient};

/// One web framework's integration, serving the example app's endpoints (`GET /`,
/// `POST /login`, `POST /counter`, `PUT`/`DELETE /data/{key}`, `POST /logout`,
/// `GET /health`) with sessions from a given manager.
pub trait Adapter: Send + Sync + 'static {
    /// The in-process client.
    type Client: TestClient;

    /// The example app for `manager`, reached without a socket.
    fn client(manager: SessionManager) -> Self::Client;

    /// The example app for `manager`, served on `127.0.0.1` at a free port.
    fn serve(manager: SessionManager) -> impl Future<Output = anyhow::Result<Server>> + Send;
}

/// A running server; stopped when dropped.
pub struct Server {
    base_url: String,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl Server {
    /// A server reachable at `base_url`; `stop` shuts it down.
    pub fn new(base_url: String, stop: impl FnOnce() + Send + 'static) -> Server {
        Server {
            base_url,
            stop: Some(Box::new(stop)),
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:40000`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A real HTTP client for this server.
    pub fn client(&self) -> HttpClient {
        HttpClient::new(self.base_url.clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// axum through `session-axum`, with `session_example::app`.
#[derive(Debug)]
pub struct Axum;

impl Adapter for Axum {
    type Client = AxumClient;

    fn client(manager: SessionManager) -> AxumClient {
        AxumClient::new(session_example::app(manager))
    }

    async fn serve(manager: SessionManager) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, session_example::app(manager)).await {
                panic!("the test server failed: {error}");
            }
        });
        Ok(Server::new(format!("http://{address}"), move || {
            task.abort()
        }))
    }
}
