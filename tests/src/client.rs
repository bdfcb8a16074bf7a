//! Clients that send a request to an app and return the complete response.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use tower::ServiceExt;

/// Sends one request to the app under test and returns the whole response. Transport
/// failures panic: in a test they are failures.
pub trait TestClient: Clone + Send + Sync + 'static {
    /// Sends `request`; its URI is a path (and query), like `/data/a?x=1`.
    fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> impl Future<Output = http::Response<Bytes>> + Send;
}

/// Calls an axum [`Router`](axum::Router) in process (tower `oneshot`), no socket involved.
#[derive(Clone, Debug)]
pub struct AxumClient {
    router: axum::Router,
}

impl AxumClient {
    /// A client for `router`.
    pub fn new(router: axum::Router) -> AxumClient {
        AxumClient { router }
    }
}

impl TestClient for AxumClient {
    fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> impl Future<Output = http::Response<Bytes>> + Send {
        let router = self.router.clone();
        async move {
            let response = router
                .oneshot(request.map(axum::body::Body::from))
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .expect("reading the response body");
            http::Response::from_parts(parts, body)
        }
    }
}

/// Sends requests over real HTTP/1.1 connections to a running server.
#[derive(Clone, Debug)]
pub struct HttpClient {
    base_url: String,
    client: reqwest::Client,
}

impl HttpClient {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:40000`).
    pub fn new(base_url: impl Into<String>) -> HttpClient {
        HttpClient {
            base_url: base_url.into(),
            client: reqwest::Client::new(),
        }
    }
}

impl TestClient for HttpClient {
    fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> impl Future<Output = http::Response<Bytes>> + Send {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let url = format!("{}{}", self.base_url, path);
        async move {
            let response = client
                .request(parts.method, &url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .unwrap_or_else(|error| panic!("request to {url} failed: {error}"));
            let mut builder = http::Response::builder()
                .status(response.status())
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response
                .bytes()
                .await
                .unwrap_or_else(|error| panic!("reading the body from {url} failed: {error}"));
            builder.body(body).expect("a valid response")
        }
    }
}
