//! The admin listener (`[admin] bind`, loopback by default), on hyper 1 / http1:
//!
//! - `GET /`, `/status.js`, `/status.css`, `/status.json`: the status page ([`crate::status`]).
//! - `GET /metrics`: Prometheus text ([`crate::metrics`]).
//! - `GET /health`: `200 ok` while serving (`200 degraded: <why>` in cluster mode while Redis
//!   does not answer), `503` before READY and once stopping.
//! - `/api/*`: needs `Authorization: Bearer <admin.token>`. Without a configured token the API
//!   is disabled (`404` with a JSON error); a missing or wrong token is `401`. The API itself
//!   (torrent index, access lists, passkeys) is [`crate::api`]: pure request -> response.
//!
//! Meant for loopback or a monitoring network, and bounded all the same: at most 64
//! connections, 10 s to send a request head, 16 MiB of body, 300 s per connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracker_core::Tracker;

use crate::state::DaemonState;

/// Most admin connections open at once.
const MAX_CONNECTIONS: usize = 64;
/// Time allowed to send the request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest an admin connection (with keep-alive) stays open.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// What the handlers need.
#[derive(Debug)]
pub struct AdminContext {
    /// The tracker.
    pub tracker: Arc<Tracker>,
    /// The daemon's own state.
    pub state: Arc<DaemonState>,
    /// `admin.token`; empty disables `/api/*`.
    pub token: String,
    /// The status page's history and last map walk.
    pub status: Arc<crate::status::Sampler>,
}

type Resp = Response<Full<Bytes>>;

/// Serves admin requests on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<AdminContext>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let ctx = Arc::clone(&ctx);
                async move { Ok::<_, Infallible>(handle(req, &ctx).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(permit);
        });
    }
}

/// Routes one request.
pub async fn handle<B>(req: Request<B>, ctx: &AdminContext) -> Resp
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path();
    match path {
        "/metrics" | "/health" | "/" | "/status.json" | "/status.js" | "/status.css"
            if req.method() != Method::GET && req.method() != Method::HEAD =>
        {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        "/metrics" => {
            let tracker = Arc::clone(&ctx.tracker);
            let state = Arc::clone(&ctx.state);
            match tokio::task::spawn_blocking(move || crate::metrics::render(&tracker, &state))
                .await
            {
                Ok(body) => {
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
                    );
                    r
                }
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "metrics failed\n"),
            }
        }
        "/" => page(crate::status::PAGE, "text/html; charset=utf-8"),
        "/status.js" => page(crate::status::SCRIPT, "text/javascript; charset=utf-8"),
        "/status.css" => page(crate::status::STYLE, "text/css; charset=utf-8"),
        "/status.json" => {
            let show_top = crate::status::may_see_top(&ctx.tracker, req.headers(), &ctx.token);
            let body = crate::status::json(&ctx.tracker, &ctx.state, &ctx.status, show_top);
            let mut r = json_owned(StatusCode::OK, body);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        "/health" => {
            if ctx.state.is_ready() {
                match ctx.state.degraded() {
                    // Still serving: a load balancer must not take the node out for it.
                    Some(why) => text(StatusCode::OK, format!("degraded: {why}\n")),
                    None => text(StatusCode::OK, "ok\n"),
                }
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        p if p == "/api" || p.starts_with("/api/") => {
            if ctx.token.is_empty() {
                return json(
                    StatusCode::NOT_FOUND,
                    r#"{"error":"the admin API is disabled: set admin.token to enable it"}"#,
                );
            }
            if !authorized(&req, &ctx.token) {
                let mut r = json(
                    StatusCode::UNAUTHORIZED,
                    r#"{"error":"missing or wrong bearer token"}"#,
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"mini-torrust\""),
                );
                return r;
            }
            api(req, ctx).await
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The authenticated admin API ([`crate::api`]): reads the body (at most
/// [`crate::api::MAX_BODY`] bytes) and runs the handler on a blocking thread, since listing or
/// searching the index walks every shard.
async fn api<B>(req: Request<B>, ctx: &AdminContext) -> Resp
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, crate::api::MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let msg = serde_json::json!({ "error": format!("cannot read the request body: {e}") });
            return json_owned(StatusCode::BAD_REQUEST, msg.to_string());
        }
    };
    let tracker = Arc::clone(&ctx.tracker);
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let ctype = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let edits = Arc::clone(&ctx.state.api_edits);
    let answer = tokio::task::spawn_blocking(move || {
        if method == "GET" {
            return crate::api::handle(&tracker, &method, &path, &query, ctype.as_deref(), &body);
        }
        // An edit: not while the cluster applies other nodes' edits; then it is told.
        let _edit = edits.edit.lock().unwrap_or_else(|e| e.into_inner());
        let a = crate::api::handle(&tracker, &method, &path, &query, ctype.as_deref(), &body);
        if a.status < 300 {
            edits.changed.notify_one();
        }
        a
    })
    .await;
    match answer {
        Ok(a) => {
            let status =
                StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if a.body.is_empty() {
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = status;
                r
            } else {
                json_owned(status, a.body)
            }
        }
        Err(_) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"the API handler failed"}"#,
        ),
    }
}

fn json_owned(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `Authorization: Bearer <token>`, compared in constant time for equal lengths.
fn authorized<B>(req: &Request<B>, token: &str) -> bool {
    tracker_http::full_scrape::bearer_matches(req.headers(), token)
}

/// A file of the status page, with its content security policy.
fn page(body: &'static str, content_type: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::status::CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(status: StatusCode, body: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tracker_core::CoreConfig;

    fn ctx(token: &str) -> AdminContext {
        AdminContext {
            tracker: Arc::new(Tracker::new(CoreConfig::default())),
            state: Arc::new(DaemonState::new(Instant::now())),
            token: token.into(),
            status: Arc::new(crate::status::Sampler::new(10)),
        }
    }

    fn req(method: Method, path: &str, auth: Option<&str>) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Full::new(Bytes::new())).unwrap()
    }

    async fn status(
        c: &AdminContext,
        method: Method,
        path: &str,
        auth: Option<&str>,
    ) -> StatusCode {
        handle(req(method, path, auth), c).await.status()
    }

    #[tokio::test]
    async fn health_is_503_until_ready_and_after_stopping() {
        let c = ctx("");
        assert_eq!(
            status(&c, Method::GET, "/health", None).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        c.state.set_ready(true);
        assert_eq!(
            status(&c, Method::GET, "/health", None).await,
            StatusCode::OK
        );
        c.state.set_ready(false);
        assert_eq!(
            status(&c, Method::GET, "/health", None).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(&c, Method::POST, "/health", None).await,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn metrics_need_no_token_and_have_the_prometheus_content_type() {
        let c = ctx("0123456789abcdef");
        let r = handle(req(Method::GET, "/metrics", None), &c).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            crate::metrics::CONTENT_TYPE
        );
    }

    #[tokio::test]
    async fn the_status_page_and_its_files_need_no_token() {
        let c = ctx("0123456789abcdef");
        for (path, ctype) in [
            ("/", "text/html; charset=utf-8"),
            ("/status.js", "text/javascript; charset=utf-8"),
            ("/status.css", "text/css; charset=utf-8"),
            ("/status.json", "application/json"),
        ] {
            let r = handle(req(Method::GET, path, None), &c).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], ctype, "{path}");
            assert_eq!(
                status(&c, Method::POST, path, None).await,
                StatusCode::METHOD_NOT_ALLOWED
            );
        }
        let r = handle(req(Method::GET, "/", None), &c).await;
        assert!(
            r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
    }

    #[tokio::test]
    async fn api_is_disabled_without_a_token_and_guarded_with_one() {
        let off = ctx("");
        assert_eq!(
            status(&off, Method::GET, "/api/torrents", Some("Bearer x")).await,
            StatusCode::NOT_FOUND
        );
        let on = ctx("0123456789abcdef");
        assert_eq!(
            status(&on, Method::GET, "/api/torrents", None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&on, Method::GET, "/api", Some("Bearer 0123456789abcdeX")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&on, Method::GET, "/api/x", Some("Bearer 0123456789abcde")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&on, Method::GET, "/api/x", Some("0123456789abcdef")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&on, Method::GET, "/api/x", Some("Bearer 0123456789abcdef")).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(&on, Method::GET, "/apix", None).await,
            StatusCode::NOT_FOUND
        );
    }
}
