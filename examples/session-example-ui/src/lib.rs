//! The page the example apps serve at `GET /ui`: an HTML form, a few lines of plain
//! JavaScript calling the apps' JSON endpoints (`GET /`, `POST /login?user=`,
//! `POST /counter`, `POST /logout`), and a stylesheet.
//!
//! Every asset is sent with a strict [`CONTENT_SECURITY_POLICY`]: scripts, styles and
//! requests only from the page's own origin, nothing inline, no framing. The session cookie
//! stays `HttpOnly`: the page never reads it, the browser sends it with each `fetch`.
//!
//! Both examples mount the same [`ASSETS`] with one line: `axum_routes()` (feature `axum`)
//! or `actix_routes` (feature `actix`). The routes never touch the session, so serving the
//! page sets no cookie.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

/// The page: scripts, styles, `fetch` only from the same origin; no inline code, no
/// plugins, no framing, forms post nowhere, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One file the page is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Where it is served (`GET`).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

/// The page at `/ui` and the files it loads (script, stylesheet, icon).
pub const ASSETS: [Asset; 4] = [
    Asset {
        path: "/ui",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../assets/index.html"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/app.js"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/app.css"),
    },
    // Named by the page, so browsers do not ask for /favicon.ico (a 404 in the console).
    Asset {
        path: "/ui/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../assets/favicon.svg"),
    },
];

/// The headers every asset carries besides `Content-Type`: the policy, no MIME sniffing,
/// no referrer, and revalidation on each load (the files change with the app, and hold no
/// session data, so caching them is harmless but a stale script would be confusing).
pub const HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-cache"),
];

/// The asset served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The page's routes for axum: merge them into the app's router
/// (`Router::new().route(...).merge(session_example_ui::axum_routes())`).
#[cfg(feature = "axum")]
pub fn axum_routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
    use axum::http::HeaderMap;
    use axum::routing::get;

    ASSETS.iter().fold(axum::Router::new(), |router, asset| {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        for (name, value) in HEADERS {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let body = asset.body;
        router.route(asset.path, get(move || async move { (headers, body) }))
    })
}

/// The page's routes for actix-web: `App::new().configure(session_example_ui::actix_routes)`.
#[cfg(feature = "actix")]
pub fn actix_routes(config: &mut actix_web::web::ServiceConfig) {
    use actix_web::{web, HttpResponse};

    for asset in &ASSETS {
        config.service(web::resource(asset.path).get(move || async move {
            let mut response = HttpResponse::Ok();
            response.content_type(asset.content_type);
            for header in HEADERS {
                response.insert_header(header);
            }
            response.body(asset.body)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files_and_has_no_inline_code() {
        let page = asset("/ui").expect("the page").body;
        for id in [
            "id=\"user\"",
            "id=\"login\"",
            "id=\"counter\"",
            "id=\"logout\"",
            "id=\"session\"",
        ] {
            assert!(page.contains(id), "the page lacks {id}");
        }
        assert!(page.contains("<script src=\"/ui/app.js\""));
        assert!(page.contains("href=\"/ui/app.css\""));
        // Every <script> has a src (nothing inline); no inline handlers or styles.
        assert_eq!(
            page.matches("<script").count(),
            page.matches("<script src=").count()
        );
        for inline in [" onclick=", " onsubmit=", " style=", "javascript:"] {
            assert!(!page.contains(inline), "inline code {inline:?} in the page");
        }
        assert!(asset("/ui/app.js").is_some() && asset("/ui/app.css").is_some());
        assert!(asset("/ui/other").is_none());
    }

    #[test]
    fn the_script_calls_only_the_json_endpoints() {
        let script = asset("/ui/app.js").expect("the script").body;
        for call in ["\"/\"", "/login?user=", "\"/counter\"", "\"/logout\""] {
            assert!(script.contains(call), "the script does not call {call}");
        }
        // It never reads cookies: the session cookie is HttpOnly anyway.
        assert!(!script.contains("document.cookie"));
        assert!(
            !script.contains("innerHTML"),
            "text only: no HTML from data"
        );
    }

    #[test]
    fn the_policy_allows_only_the_same_origin() {
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(directive));
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    #[cfg(feature = "axum")]
    #[tokio::test]
    async fn axum_serves_every_asset_with_its_headers() {
        use tower::ServiceExt as _;
        for asset in &ASSETS {
            let request = axum::http::Request::get(asset.path)
                .body(axum::body::Body::empty())
                .expect("a request");
            let response = axum_routes::<()>()
                .oneshot(request)
                .await
                .expect("infallible");
            assert_eq!(response.status(), 200, "{}", asset.path);
            let headers = response.headers();
            assert_eq!(headers["content-type"], asset.content_type);
            for (name, value) in HEADERS {
                assert_eq!(headers[name], value, "{name} of {}", asset.path);
            }
            assert!(headers.get("set-cookie").is_none());
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("the body");
            assert_eq!(body, asset.body.as_bytes());
        }
    }

    #[cfg(feature = "actix")]
    #[actix_web::test]
    async fn actix_serves_every_asset_with_its_headers() {
        use actix_web::test;
        let app = test::init_service(actix_web::App::new().configure(actix_routes)).await;
        for asset in &ASSETS {
            let response =
                test::call_service(&app, test::TestRequest::get().uri(asset.path).to_request())
                    .await;
            assert_eq!(response.status(), 200, "{}", asset.path);
            let headers = response.headers();
            assert_eq!(headers.get("content-type").unwrap(), asset.content_type);
            for (name, value) in HEADERS {
                assert_eq!(
                    headers.get(name).unwrap(),
                    value,
                    "{name} of {}",
                    asset.path
                );
            }
            assert_eq!(test::read_body(response).await, asset.body.as_bytes());
        }
    }
}
