//! The actix-web adapter: `session_example_actix::app` in process and over real HTTP.
//!
//! actix-web services are not `Send` and run on actix's own single-threaded runtimes, while
//! the scenarios run on a multi-threaded tokio runtime. So the app lives on a thread of its
//! own (an actix `System`), and the scenarios reach it through channels (in process) or
//! through a socket (a real `HttpServer`). The session handles and the store cross between
//! the runtimes; that they work there is part of what the suite checks.

use std::rc::Rc;

use actix_web::dev::Service;
use actix_web::test::TestRequest;
use actix_web::{HttpResponse, HttpServer};
use anyhow::Context as _;
use bytes::Bytes;
use session_core::SessionManager;
use tokio::sync::{mpsc, oneshot};

use crate::adapter::{Adapter, Server};
use crate::client::TestClient;

/// actix-web through `session-actix`, with `session_example_actix::app`.
#[derive(Debug)]
pub struct Actix;

impl Adapter for Actix {
    type Client = ActixClient;

    fn client(manager: SessionManager) -> ActixClient {
        ActixClient::start(manager)
    }

    async fn serve(manager: SessionManager) -> anyhow::Result<Server> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let (started, on_start) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("actix-test-server".to_owned())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let server =
                        HttpServer::new(move || session_example_actix::app(manager.clone()))
                            .workers(2)
                            .disable_signals()
                            .listen(listener);
                    let server = match server {
                        Ok(server) => server.run(),
                        Err(error) => {
                            let _ = started.send(Err(error));
                            return;
                        }
                    };
                    let _ = started.send(Ok(server.handle()));
                    if let Err(error) = server.await {
                        panic!("the actix test server failed: {error}");
                    }
                })
            })?;
        let handle = on_start
            .await
            .context("the actix test server thread stopped before serving")?
            .context("the actix test server could not listen")?;
        Ok(Server::new(format!("http://{address}"), move || {
            // `stop` sends the command at once; the thread ends when the workers have.
            drop(handle.stop(false));
            let _ = thread.join();
        }))
    }
}

type Job = (http::Request<Bytes>, oneshot::Sender<http::Response<Bytes>>);

/// Calls the actix example app in process (`actix_web::test::init_service`, no socket).
///
/// The app runs on a thread with its own actix `System`; requests go to it over a channel
/// and are served concurrently there. The thread ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct ActixClient {
    jobs: mpsc::UnboundedSender<Job>,
}

impl ActixClient {
    /// Starts `session_example_actix::app(manager)` on a thread of its own.
    pub fn start(manager: SessionManager) -> ActixClient {
        let (jobs, queue) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("actix-test-app".to_owned())
            .spawn(move || actix_web::rt::System::new().block_on(serve_jobs(manager, queue)))
            .expect("starting the actix app thread");
        ActixClient { jobs }
    }
}

impl TestClient for ActixClient {
    async fn send(&self, request: http::Request<Bytes>) -> http::Response<Bytes> {
        let (reply, response) = oneshot::channel();
        self.jobs
            .send((request, reply))
            .unwrap_or_else(|_| panic!("the actix app thread has stopped"));
        response
            .await
            .unwrap_or_else(|_| panic!("the actix app dropped a request (see the log)"))
    }
}

async fn serve_jobs(manager: SessionManager, mut queue: mpsc::UnboundedReceiver<Job>) {
    let app = Rc::new(actix_web::test::init_service(session_example_actix::app(manager)).await);
    while let Some((request, reply)) = queue.recv().await {
        let app = app.clone();
        actix_web::rt::spawn(async move {
            // An error from the service becomes its response, as in actix-web's server.
            let response = match app.call(to_actix(request).to_request()).await {
                Ok(response) => response.into_parts().1.map_into_boxed_body(),
                Err(error) => error.error_response(),
            };
            let _ = reply.send(from_actix(response).await);
        });
    }
}

/// The request in actix-web's types (actix-web 4 uses `http` 0.2, the suite `http` 1).
fn to_actix(request: http::Request<Bytes>) -> TestRequest {
    let (parts, body) = request.into_parts();
    let method = actix_web::http::Method::from_bytes(parts.method.as_str().as_bytes())
        .expect("an HTTP method");
    let mut actix_request = TestRequest::default()
        .method(method)
        .uri(&parts.uri.to_string());
    for (name, value) in &parts.headers {
        actix_request = actix_request.append_header((name.as_str(), value.as_bytes()));
    }
    actix_request.set_payload(body)
}

/// The whole response in the suite's types.
async fn from_actix(response: HttpResponse) -> http::Response<Bytes> {
    let mut builder = http::Response::builder().status(response.status().as_u16());
    for (name, value) in response.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap_or_else(|error| panic!("reading the response body failed: {error}"));
    builder.body(body).expect("a valid response")
}
