//! Routing: a path the profile serves goes to the engine (its body read
//! here, capped and timed; a rate-limited route passes the per-client send
//! limit first); otherwise the stats page or the static front end.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::engine::{Engine, Input, Reply};
use crate::error::{ApiError, text};
use crate::limits::{Client, Limits};
use crate::php;
use crate::profile::ErrorKind;
use crate::static_files;

/// Everything a request handler needs.
pub struct App {
    /// The profile, served.
    pub engine: Engine,
    /// Settings.
    pub config: Config,
    /// Connection permits (the server holds one per open connection).
    pub connections: Arc<Semaphore>,
    /// Per-client limits (connections, send rates).
    pub limits: Limits,
}

impl App {
    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.config.max_connections - self.connections.available_permits()
    }
}

/// Answers one request; never fails (errors become HTTP answers).
pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(route(&app, req)
        .await
        .unwrap_or_else(ApiError::into_response))
}

async fn route(app: &App, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, ApiError> {
    let base = app.config.base_path.as_str();
    let Some(path) = req.uri().path().strip_prefix(base) else {
        return Err(ApiError::NotFound);
    };
    if path.is_empty() {
        // `/chat` → `/chat/`, so the front end's relative URLs resolve under the prefix.
        let mut res = text(
            StatusCode::MOVED_PERMANENTLY,
            "text/plain; charset=utf-8",
            "",
        );
        let location =
            header::HeaderValue::from_str(&format!("{base}/")).map_err(|_| ApiError::NotFound)?;
        res.headers_mut().insert(header::LOCATION, location);
        return Ok(res);
    }
    if !path.starts_with('/') {
        return Err(ApiError::NotFound);
    }
    let engine = app.engine.current();
    if engine.profile().serves(path) {
        let path = path.to_owned();
        if let Err(reply) = engine.allows(&path, req.method()) {
            return Ok(response(&reply));
        }
        // PHP refuses by the declared length whatever the method: a GET too.
        if declared_length(&req).is_some_and(|n| n > app.config.max_body as u64) {
            return Ok(response(&engine.error(ErrorKind::TooLarge, "", "")));
        }
        let client = req
            .extensions()
            .get::<Client>()
            .copied()
            .unwrap_or(Client(None));
        let method = req.method().clone();
        let cookies = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.as_bytes())
            .collect::<Vec<_>>()
            .join(&b"; "[..]);
        let cookies = php::Request::parse_cookies(&cookies);
        let params = if method == Method::POST {
            let query = req.uri().query().map(str::to_owned);
            let form = is_form(&req);
            let body = match read_body(req, app.config.max_body, app.config.body_timeout).await {
                Ok(b) => b,
                Err(ApiError::TooLarge) => {
                    return Ok(response(&engine.error(ErrorKind::TooLarge, "", "")));
                }
                Err(e) => return Err(e),
            };
            php::Request::parse(query.as_deref(), form.then_some(&body[..]))
        } else {
            // A GET's body is never read.
            let params = php::Request::parse(req.uri().query(), None);
            // A long-poll waits from here: keep no part of the request (its
            // headers, and its bytes in hyper's read buffer) alive meanwhile.
            drop(req);
            params
        };
        let input = Input {
            method: &method,
            params: &params,
            cookies: &cookies,
        };
        let Some(route) = engine.route(&path, &input) else {
            return Err(ApiError::NotFound);
        };
        crate::access::note_route(&engine.profile().routes[route].label());
        if engine.profile().routes[route].rate_limited {
            // The user name is the request's `user` parameter, trimmed, when it has one.
            let user = match params.get("user") {
                php::Param::Text(u) => Some(u),
                _ => None,
            };
            if app
                .limits
                .check_send(client, user.as_deref().map(php::trim))
                .is_err()
            {
                return Ok(response(&engine.error(ErrorKind::RateLimited, "", "")));
            }
        }
        let (reply, outcome) = engine.answer(route, &input).await;
        crate::access::note_outcome(outcome);
        return Ok(response(&reply));
    }
    match (req.method(), path) {
        (&Method::GET, "/_cometa/stats") if app.config.public_stats => {
            crate::access::note_route("stats");
            Ok(text(
                StatusCode::OK,
                "application/json",
                crate::admin::stats_json(app),
            ))
        }
        (&Method::GET | &Method::HEAD, _) => {
            static_files::serve(&app.config.static_dir, path, req.method() == Method::HEAD).await
        }
        _ => Err(ApiError::StaticMethodNotAllowed),
    }
}

/// A shared reply as a response: the body's bytes are shared, not copied.
pub(crate) fn response(reply: &Reply) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(reply.body.clone()));
    *res.status_mut() = reply.status;
    *res.headers_mut() = reply.headers.clone();
    res
}

/// PHP reads a POST body into `$_REQUEST` only for this content type.
fn is_form(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| php::is_form_content_type(v.as_bytes()))
}

/// The request's `Content-Length`, if it has a valid one.
fn declared_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The body, at most `max` bytes, all of it within `timeout`.
async fn read_body(
    req: Request<Incoming>,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    if declared_length(&req).is_some_and(|n| n > max as u64) {
        return Err(ApiError::TooLarge);
    }
    let read = Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::TooLarge),
        // The client went away or sent a broken body; nobody is left to answer.
        Ok(Err(_)) => Err(ApiError::BadRequest("unreadable body")),
        Err(_) => Err(ApiError::BodyTimeout),
    }
}
