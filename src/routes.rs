//! Routing: a path the profile serves goes to the engine (its body read
//! here, capped and timed; a rate-limited route passes the per-client send
//! limit first); otherwise the stats page or the static front end.

use std::convert::Infallible;
use std::future::{Future, ready};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::Either;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use tokio::sync::Semaphore;

use crate::access::Noted;
use crate::config::Config;
use crate::engine::{Engine, Input, Reply, Served};
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

/// What [`handle`] returns: the answer's future.
pub type Answer = Response<Full<Bytes>>;

/// Answers one request; never fails (errors become HTTP answers).
///
/// All that the request's head decides is decided here, synchronously; the
/// future returned keeps only what is left to do. A held long-poll's future
/// lives for the whole hold, so it holds neither the request nor room for
/// another kind of request's work (`async fn` arguments are kept for the whole
/// life of the future; see BENCHMARKS.md, "RSS per waiter").
pub fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Answer, Infallible>> + Send {
    let done = |r: Result<Answer, ApiError>| {
        Either::Left(ready(Ok(r.unwrap_or_else(ApiError::into_response))))
    };
    match prepare(&app, req) {
        Err(e) => done(Err(e)),
        Ok(Step::Reply(res)) => done(Ok(res)),
        Ok(Step::Call(call)) => Either::Right(Either::Left(call.run())),
        Ok(Step::Post(post)) => Either::Right(Either::Right(Either::Left(post.run(app)))),
        Ok(Step::Static { path, head }) => {
            Either::Right(Either::Right(Either::Right(Box::pin(async move {
                Ok(static_files::serve(&app.config.static_dir, &path, head)
                    .await
                    .unwrap_or_else(ApiError::into_response))
            }))))
        }
    }
}

/// What is left to do once the request's head is read.
enum Step {
    /// The answer is known.
    Reply(Answer),
    /// The engine answers (a request whose parameters are all read).
    Call(Call),
    /// A POST to a profile's path: its body first.
    Post(Post),
    /// A file of the front end.
    Static { path: String, head: bool },
}

/// A request for the engine, with everything its answer needs.
struct Call {
    noted: Noted,
    engine: Arc<Served>,
    route: usize,
    method: Method,
    params: php::Request,
    cookies: php::Request,
}

impl Call {
    /// Plain functions returning futures, here and in [`Post::run`]: an `async
    /// fn` would keep `self` twice (its argument and its binding).
    fn run(self) -> impl Future<Output = Result<Answer, Infallible>> + Send {
        let Call {
            noted,
            engine,
            route,
            method,
            params,
            cookies,
        } = self;
        async move {
            let input = Input {
                method: &method,
                params: &params,
                cookies: &cookies,
            };
            let (reply, outcome) = engine.answer(route, &input).await;
            noted.outcome(outcome);
            Ok(response(&reply))
        }
    }
}

/// A POST to a profile's path, its body not read yet.
struct Post {
    noted: Noted,
    engine: Arc<Served>,
    path: String,
    client: Client,
    cookies: php::Request,
    query: Option<String>,
    form: bool,
    body: Incoming,
}

impl Post {
    /// The body, then the engine's answer: one after the other, the second
    /// in the room of the first.
    fn run(self, app: Arc<App>) -> impl Future<Output = Result<Answer, Infallible>> + Send {
        use futures_util::FutureExt as _;
        let Post {
            noted,
            engine,
            path,
            client,
            cookies,
            query,
            form,
            body,
        } = self;
        let read = read_body(body, app.config.max_body, app.config.body_timeout);
        read.then(move |read| {
            let body = match read {
                Ok(b) => b,
                Err(ApiError::TooLarge) => {
                    let reply = engine.error(ErrorKind::TooLarge, "", "");
                    return Either::Left(ready(Ok(response(&reply))));
                }
                Err(e) => return Either::Left(ready(Ok(e.into_response()))),
            };
            let params = php::Request::parse(query.as_deref(), form.then_some(&body[..]));
            drop(body);
            match dispatch(
                &app,
                noted,
                engine,
                &path,
                Method::POST,
                params,
                cookies,
                client,
            ) {
                Ok(call) => Either::Right(call.run()),
                Err(answer) => Either::Left(ready(Ok(*answer))),
            }
        })
    }
}

/// Everything about `req` that needs no waiting.
fn prepare(app: &App, req: Request<Incoming>) -> Result<Step, ApiError> {
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
        return Ok(Step::Reply(res));
    }
    if !path.starts_with('/') {
        return Err(ApiError::NotFound);
    }
    let engine = app.engine.current();
    if engine.profile().serves(path) {
        let path = path.to_owned();
        if let Err(reply) = engine.allows(&path, req.method()) {
            return Ok(Step::Reply(response(&reply)));
        }
        // PHP refuses by the declared length whatever the method: a GET too.
        if declared_length(&req).is_some_and(|n| n > app.config.max_body as u64) {
            return Ok(Step::Reply(response(&engine.error(
                ErrorKind::TooLarge,
                "",
                "",
            ))));
        }
        let client = req
            .extensions()
            .get::<Client>()
            .copied()
            .unwrap_or(Client(None));
        let cookies = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.as_bytes())
            .collect::<Vec<_>>()
            .join(&b"; "[..]);
        let cookies = php::Request::parse_cookies(&cookies);
        if req.method() == Method::POST {
            return Ok(Step::Post(Post {
                noted: Noted::of(&req),
                engine,
                path,
                client,
                cookies,
                query: req.uri().query().map(str::to_owned),
                form: is_form(&req),
                body: req.into_body(),
            }));
        }
        // A GET's body is never read. A long-poll waits from here: no part of
        // the request (its headers, its bytes in hyper's read buffer) is kept.
        let params = php::Request::parse(req.uri().query(), None);
        let method = req.method().clone();
        let noted = Noted::of(&req);
        drop(req);
        return match dispatch(app, noted, engine, &path, method, params, cookies, client) {
            Ok(call) => Ok(Step::Call(call)),
            Err(answer) => Ok(Step::Reply(*answer)),
        };
    }
    match (req.method(), path) {
        (&Method::GET, "/_cometa/stats") if app.config.public_stats => {
            Noted::of(&req).route("stats");
            Ok(Step::Reply(text(
                StatusCode::OK,
                "application/json",
                crate::admin::stats_json(app),
            )))
        }
        (&Method::GET | &Method::HEAD, _) => Ok(Step::Static {
            path: path.to_owned(),
            head: req.method() == Method::HEAD,
        }),
        _ => Err(ApiError::StaticMethodNotAllowed),
    }
}

/// The route for a request whose parameters are read, and the per-client send
/// limit of a rate-limited route; or the answer that ends it here.
#[allow(clippy::too_many_arguments)]
fn dispatch(
    app: &App,
    noted: Noted,
    engine: Arc<Served>,
    path: &str,
    method: Method,
    params: php::Request,
    cookies: php::Request,
    client: Client,
) -> Result<Call, Box<Answer>> {
    let input = Input {
        method: &method,
        params: &params,
        cookies: &cookies,
    };
    let Some(route) = engine.route(path, &input) else {
        return Err(Box::new(ApiError::NotFound.into_response()));
    };
    noted.route(&engine.profile().routes[route].label());
    if engine.profile().routes[route].rate_limited {
        // The user name is the request's `user` parameter, trimmed, when it has one.
        let user = match params.get("user") {
            php::Param::Text(u) => Some(u),
            _ => None,
        };
        if app
            .limits
            .check_send(client, user.map(|u| php::trim(u)))
            .is_err()
        {
            return Err(Box::new(response(&engine.error(
                ErrorKind::RateLimited,
                "",
                "",
            ))));
        }
    }
    Ok(Call {
        noted,
        engine,
        route,
        method,
        params,
        cookies,
    })
}

/// A shared reply as a response: the body's bytes are shared, not copied.
pub(crate) fn response(reply: &Reply) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(reply.body.clone()));
    *res.status_mut() = reply.status;
    *res.headers_mut() = hyper::HeaderMap::clone(&reply.headers);
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
    body: Incoming,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let read = Limited::new(body, max).collect();
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::TooLarge),
        // The client went away or sent a broken body; nobody is left to answer.
        Ok(Err(_)) => Err(ApiError::BadRequest("unreadable body")),
        Err(_) => Err(ApiError::BodyTimeout),
    }
}
