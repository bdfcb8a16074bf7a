//! The actix-web servers: the library behind `session-actix`, and comparison (d),
//! actix-session with its Redis store. Both run on actix-web 4's `HttpServer` with its
//! default worker count (one per core the process may use: one when pinned), the store
//! created on the main `System` thread as an application does.

use std::io::Write as _;

use actix_web::cookie::Key;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{bail, Context as _};
use serde::Deserialize;
use session_core::SessionManager;

use super::ServerKind;

const COUNTER_KEY: &str = "counter";
const USER_KEY: &str = "user";

/// Runs the actix-web server `kind` on a `System` of its own; prints the port first.
pub fn main(kind: ServerKind, redis_url: &str) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(serve(kind, redis_url))
}

async fn serve(kind: ServerKind, redis_url: &str) -> anyhow::Result<()> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).context("cannot listen on 127.0.0.1")?;
    let port = listener.local_addr()?.port();
    let server = match kind {
        ServerKind::OursActix => {
            let store = super::ours::store(redis_url).await?;
            let manager = SessionManager::from_shared(store, super::ours::config()?);
            HttpServer::new(move || session_example_actix::app(manager.clone()))
                .listen(listener)?
                .run()
        }
        ServerKind::ActixSession => {
            let store = actix_session::storage::RedisSessionStore::new(redis_url)
                .await
                .context("actix-session's Redis store cannot connect")?;
            // actix-session signs and encrypts its cookie with this key (its default,
            // `CookieContentSecurity::Private`); `cookie_secure(false)` for plain HTTP.
            let key = Key::generate();
            HttpServer::new(move || {
                App::new()
                    .wrap(
                        actix_session::SessionMiddleware::builder(store.clone(), key.clone())
                            .cookie_secure(false)
                            .build(),
                    )
                    .service(web::resource("/").get(show))
                    .service(web::resource("/login").post(login))
                    .service(web::resource("/counter").post(counter))
            })
            .listen(listener)?
            .run()
        }
        other => bail!("{other} is not an actix-web server"),
    };
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{port}")?;
    stdout.flush()?;
    server.await?;
    bail!("the server stopped")
}

fn internal(error: impl std::fmt::Display) -> actix_web::Error {
    eprintln!("actix-session error: {error}");
    actix_web::error::ErrorInternalServerError("")
}

/// The counter handler of actix-session's docs: `get`, +1, `insert`.
async fn counter(session: actix_session::Session) -> actix_web::Result<String> {
    let count: u64 = session
        .get(COUNTER_KEY)
        .map_err(internal)?
        .unwrap_or_default();
    let count = count + 1;
    session.insert(COUNTER_KEY, count).map_err(internal)?;
    Ok(count.to_string())
}

/// actix-session keeps each value as its JSON text: the object is rebuilt from them.
async fn show(session: actix_session::Session) -> actix_web::Result<HttpResponse> {
    let mut object = serde_json::Map::new();
    for (key, value) in session.entries().iter() {
        object.insert(key.clone(), serde_json::from_str(value).map_err(internal)?);
    }
    Ok(HttpResponse::Ok().json(serde_json::Value::Object(object)))
}

#[derive(Deserialize)]
struct LoginParams {
    user: String,
}

async fn login(
    session: actix_session::Session,
    params: web::Query<LoginParams>,
) -> actix_web::Result<&'static str> {
    session.insert(USER_KEY, &params.user).map_err(internal)?;
    // A new session key at login, as actix-session's docs advise against fixation.
    session.renew();
    Ok("logged in")
}
