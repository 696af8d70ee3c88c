//! The access log and request metrics: a wrapper around the request handler
//! that writes one `info` line per request (target `cometa::access`) and counts
//! it, whatever the handler is.
//!
//! A line has: `method`, `path` (no query: it may carry user names), `status`,
//! `duration_ms`, `bytes` (of the body), `route`, `hold` (how a long-poll
//! ended: `answered`, `empty`, `shutdown`, `client_gone`; `-` for any other
//! request), `client` and `request_id`.
//!
//! The code that serves the request says what only it knows through the
//! [`Noted`] that [`logged`] puts in the request's extensions:
//! [`Noted::route`] names the route (a bounded label for metrics; unnamed
//! requests count as `static` or `other`) and [`Noted::outcome`] says how a
//! hold ended. (A task-local did this before: it copied itself in and out of
//! the thread at every poll of every request.) A request whose future is dropped
//! before it answers (hyper does that when the client goes away) is logged with
//! status 499 and `hold=client_gone`, as nginx writes it.
//!
//! The client address is the connection's peer; on a unix socket (nginx in
//! front) it is the `X-Real-IP`, else the last `X-Forwarded-For` entry, that
//! the proxy set. `X-Request-Id` is taken when the client (or nginx) sent a sane
//! one, else generated.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Instant;

use hyper::body::Body;
use hyper::{HeaderMap, Method, Request, Response};

use crate::metrics as m;

/// How a long-poll ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum HoldEnd {
    /// With messages (at once or after a wake-up).
    Answered = 1,
    /// With nothing, the hold ran out.
    Empty = 2,
    /// With nothing, the server shuts down.
    Shutdown = 3,
}

impl HoldEnd {
    fn label(code: u8) -> &'static str {
        match code {
            1 => "answered",
            2 => "empty",
            3 => "shutdown",
            _ => "-",
        }
    }
}

/// What the connection tells about the client.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer address; `None` for a unix socket (written `unix`).
    pub addr: Option<std::net::SocketAddr>,
    /// Whether `X-Real-IP`/`X-Forwarded-For` from this peer are believed
    /// (a unix socket only nginx can reach, or a trusted proxy).
    pub trusted_proxy: bool,
}

/// What the handler noted about its request.
#[derive(Default)]
struct Note {
    route: OnceLock<Arc<RouteMetrics>>,
    hold: AtomicU8,
}

/// Where the code serving a request notes what the access line and the
/// metrics need from it; [`logged`] puts one in the request's extensions.
#[derive(Clone)]
pub struct Noted(Arc<Note>);

impl Noted {
    /// The request's; a request that did not come through [`logged`] (a
    /// test's) gets one nobody reads.
    pub fn of<B>(req: &Request<B>) -> Noted {
        req.extensions()
            .get::<Noted>()
            .cloned()
            .unwrap_or_else(|| Noted(Arc::default()))
    }

    /// Names the route of the request (for metrics and the access line): a
    /// fixed name per route (the profile's), never anything taken from the
    /// request, so that the label's values stay few.
    pub fn route(&self, name: &str) {
        let _ = self.0.route.set(RouteMetrics::of(name));
    }

    /// Records how the engine's answer came about (the hold's end, if it held).
    pub fn outcome(&self, outcome: crate::engine::Outcome) {
        use crate::engine::Outcome;
        match outcome {
            Outcome::Answered => self.hold_end(HoldEnd::Answered),
            Outcome::Empty => self.hold_end(HoldEnd::Empty),
            Outcome::Shutdown => self.hold_end(HoldEnd::Shutdown),
            Outcome::Immediate | Outcome::Refused => {}
        }
    }

    /// Says how the long-poll ended.
    pub fn hold_end(&self, how: HoldEnd) {
        self.0.hold.store(how as u8, Ordering::Relaxed);
        holds_ended(how as u8).increment(1);
    }
}

/// The counter of holds ended by `how` (a [`HoldEnd`], or 0: the client went
/// away), made once.
fn holds_ended(how: u8) -> &'static metrics::Counter {
    static COUNTERS: [OnceLock<metrics::Counter>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let label = match how {
        0 => "client_gone",
        n => HoldEnd::label(n),
    };
    COUNTERS[usize::from(how.min(3))]
        .get_or_init(|| metrics::counter!(m::HOLDS_ENDED, "how" => label))
}

/// Runs `handler` on `req`, then logs and counts the request.
///
/// A plain function returning a combinator, not an `async fn`: the future a
/// held request keeps for the whole hold then holds the handler's future and
/// the line, not also a copy of the request (an `async fn` keeps its arguments
/// for its whole life; see BENCHMARKS.md, "RSS per waiter").
pub fn logged<Req, B, F, Fut>(
    peer: &Peer,
    mut req: Request<Req>,
    handler: F,
) -> impl Future<Output = Result<Response<B>, Infallible>> + use<Req, B, F, Fut>
where
    B: Body,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<B>, Infallible>>,
{
    use futures_util::FutureExt as _;
    let note = Arc::new(Note::default());
    // Filtered out (RUST_LOG=warn, benchmarks): no strings made for the line.
    let log = tracing::enabled!(target: "cometa::access", tracing::Level::INFO);
    let mut line = Line {
        start: Instant::now(),
        method: req.method().clone(),
        path: if log {
            req.uri().path().to_owned()
        } else {
            String::new()
        },
        client: if log {
            client(peer, req.headers())
        } else {
            String::new()
        },
        request_id: if log {
            request_id(req.headers())
        } else {
            String::new()
        },
        note: Arc::clone(&note),
        done: false,
    };
    // Dropped unfinished (the client went away), the closure drops the line,
    // which logs it as such.
    req.extensions_mut().insert(Noted(note));
    handler(req).map(move |res| {
        let Ok(res) = res;
        let bytes = res.body().size_hint().exact();
        line.finish(res.status().as_u16(), bytes);
        Ok(res)
    })
}

/// A route's metric handles, made at its first request and kept: the
/// registry's own lookup builds, allocates and hashes a key from the labels at
/// every call, several times per request. Route labels are the profile's (few).
struct RouteMetrics {
    label: String,
    duration: metrics::Histogram,
    /// By status label.
    requests: Mutex<Vec<(&'static str, metrics::Counter)>>,
}

static ROUTE_METRICS: LazyLock<Mutex<HashMap<String, Arc<RouteMetrics>>>> =
    LazyLock::new(Mutex::default);

impl RouteMetrics {
    fn of(route: &str) -> Arc<RouteMetrics> {
        let mut routes = ROUTE_METRICS.lock().expect("route metrics lock");
        if let Some(r) = routes.get(route) {
            return Arc::clone(r);
        }
        let r = Arc::new(RouteMetrics {
            label: route.to_owned(),
            duration: metrics::histogram!(m::REQUEST_DURATION, "route" => route.to_owned()),
            requests: Mutex::default(),
        });
        routes.insert(route.to_owned(), Arc::clone(&r));
        r
    }

    fn requests(&self, status: &'static str) -> metrics::Counter {
        let mut by_status = self.requests.lock().expect("route metrics lock");
        if let Some((_, c)) = by_status.iter().find(|(s, _)| *s == status) {
            return c.clone();
        }
        let c = metrics::counter!(m::REQUESTS, "route" => self.label.clone(), "status" => status);
        by_status.push((status, c.clone()));
        c
    }
}

/// A request being served; logged when it finishes or is dropped unfinished.
struct Line {
    start: Instant,
    method: Method,
    path: String,
    client: String,
    request_id: String,
    note: Arc<Note>,
    done: bool,
}

impl Line {
    fn finish(&mut self, status: u16, bytes: Option<u64>) {
        self.done = true;
        let hold = HoldEnd::label(self.note.hold.load(Ordering::Relaxed));
        self.emit(status, bytes, hold);
    }

    fn emit(&self, status: u16, bytes: Option<u64>, hold: &'static str) {
        let elapsed = self.start.elapsed();
        let handles = match self.note.route.get() {
            Some(r) => Arc::clone(r),
            None if matches!(self.method, Method::GET | Method::HEAD) => RouteMetrics::of("static"),
            None => RouteMetrics::of("other"),
        };
        let route = handles.label.as_str();
        handles.requests(status_label(status)).increment(1);
        handles.duration.record(elapsed.as_secs_f64());
        if let Some(reason) = m::rejection_reason(status) {
            metrics::counter!(m::REJECTIONS, "reason" => reason).increment(1);
        }
        tracing::info!(
            target: "cometa::access",
            method = %self.method,
            path = %self.path,
            status,
            duration_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            bytes = bytes.unwrap_or(0),
            route,
            hold,
            client = %self.client,
            request_id = %self.request_id,
            "request"
        );
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.done {
            // hyper dropped the handler: the client went away before the answer.
            if self.note.hold.load(Ordering::Relaxed) == 0 {
                holds_ended(0).increment(1);
            }
            self.emit(499, None, "client_gone");
        }
    }
}

/// A status as a label without allocating for the common ones.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        301 => "301",
        304 => "304",
        400 => "400",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        429 => "429",
        431 => "431",
        499 => "499",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// The client's address for the log.
fn client(peer: &Peer, headers: &HeaderMap) -> String {
    if peer.trusted_proxy {
        let real_ip = headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let forwarded = || {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|s| !s.is_empty())
        };
        if let Some(ip) = real_ip.filter(|s| !s.is_empty()).or_else(forwarded)
            && ip.len() <= 64
            && ip.bytes().all(|b| b.is_ascii_graphic())
        {
            return ip.to_owned();
        }
    }
    peer.addr
        .map_or_else(|| "unix".to_owned(), |a| a.to_string())
}

/// The request's `X-Request-Id` when it is short and printable, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok())
        && (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_graphic())
    {
        return id.to_owned();
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PREFIX: OnceLock<String> = OnceLock::new();
    // Unique per process start (pid and start time) and per request.
    let prefix = PREFIX.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        format!(
            "{:x}{:05x}",
            t & 0xffff_ffff_ffff,
            std::process::id() & 0xfffff
        )
    });
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_addresses_are_believed_from_a_trusted_proxy_only() {
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("x-forwarded-for", "3.3.3.3"),
        ]);
        let direct = Peer {
            addr: Some("9.9.9.9:5000".parse().unwrap()),
            trusted_proxy: false,
        };
        let nginx = Peer {
            addr: None,
            trusted_proxy: true,
        };
        assert_eq!(client(&direct, &h), "9.9.9.9:5000");
        assert_eq!(client(&nginx, &h), "3.3.3.3", "the entry the proxy added");
        let h = headers(&[("x-real-ip", "4.4.4.4"), ("x-forwarded-for", "5.5.5.5")]);
        assert_eq!(client(&nginx, &h), "4.4.4.4");
        assert_eq!(client(&nginx, &HeaderMap::new()), "unix");
    }

    #[test]
    fn a_sane_request_id_is_kept_and_others_replaced() {
        assert_eq!(
            request_id(&headers(&[("x-request-id", "abc-123")])),
            "abc-123"
        );
        let a = request_id(&headers(&[("x-request-id", "has space")]));
        let b = request_id(&HeaderMap::new());
        assert_ne!(a, "has space");
        assert_ne!(a, b, "generated ids differ");
    }

    #[tokio::test]
    async fn notes_reach_the_line() {
        let peer = Peer {
            addr: None,
            trusted_proxy: true,
        };
        let seen = Arc::new(std::sync::Mutex::new(None));
        let s = Arc::clone(&seen);
        let req = Request::new(http_body_util::Empty::<bytes::Bytes>::new());
        let res = logged(&peer, req, |req| async move {
            let noted = Noted::of(&req);
            noted.route("listen");
            noted.hold_end(HoldEnd::Shutdown);
            let n = (
                noted.0.route.get().map(|r| r.label.clone()),
                noted.0.hold.load(Ordering::Relaxed),
            );
            *s.lock().unwrap() = Some(n);
            Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"[]"),
            )))
        })
        .await
        .unwrap();
        assert_eq!(res.body().size_hint().exact(), Some(2));
        assert_eq!(
            *seen.lock().unwrap(),
            Some((Some("listen".to_owned()), HoldEnd::Shutdown as u8))
        );
    }
}
