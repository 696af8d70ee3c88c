//! The admin listener (`--admin-listen`, loopback or a unix socket): what an
//! operator's tools ask, kept off the public listener.
//!
//! - `GET /metrics`: Prometheus text exposition ([`crate::metrics`]).
//! - `GET /healthz`: 200 while the process serves (liveness).
//! - `GET /readyz`: 200 when every [`Readiness`] check passes (the database
//!   takes a write, the writer and the watcher run), else 503 naming each
//!   failure (readiness).
//! - `GET /_cometa/stats`: the JSON counters the public listener used to serve.
//!
//! `HEAD` is answered like `GET`, without the body.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tracing_appender::non_blocking::ErrorCounter;

use crate::error::text;
use crate::health::{self, Readiness};
use crate::routes::App;
use crate::server::Listener;

/// How long `/readyz` may take in all.
const READY_WITHIN: Duration = Duration::from_secs(3);
/// How long an admin client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin listener reads.
pub struct Admin {
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// The public server's state (waiters, connections).
    pub app: Arc<App>,
    /// What `/readyz` checks.
    pub checks: Vec<Arc<dyn Readiness>>,
    /// Log lines dropped so far, if logging counts them.
    pub dropped_log_lines: Option<ErrorCounter>,
}

/// Whether `addr` may carry the admin listener: a unix socket or a loopback
/// address (metrics and health say too much to be public).
pub fn allowed_address(addr: &str) -> Result<(), String> {
    if addr.starts_with("unix:") {
        return Ok(());
    }
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => {
            return Err(format!(
                "--admin-listen {addr:?}: expected host:port or unix:/path"
            ));
        }
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "--admin-listen {addr:?}: only a loopback address (127.0.0.1, [::1]) or unix:/path"
        ))
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` is cancelled.
pub async fn run(listener: Listener, admin: Arc<Admin>, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admin = Arc::clone(&admin);
        let service = service_fn(move |req| handle(Arc::clone(&admin), req));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
}

async fn handle<B>(
    admin: Arc<Admin>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut res = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET or HEAD\n",
        );
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Ok(res);
    }
    Ok(match req.uri().path() {
        "/metrics" => {
            scrape(&admin).record();
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                admin.prometheus.render(),
            )
        }
        "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        "/readyz" => {
            let failures = health::failures(&admin.checks, READY_WITHIN).await;
            if failures.is_empty() {
                text(StatusCode::OK, "text/plain; charset=utf-8", "ready\n")
            } else {
                tracing::warn!(?failures, "not ready");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    format!("not ready\n{}\n", failures.join("\n")),
                )
            }
        }
        "/_cometa/stats" => text(StatusCode::OK, "application/json", stats_json(&admin.app)),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "Not Found",
        ),
    })
}

fn scrape(admin: &Admin) -> crate::metrics::Scrape {
    let changes = admin.app.engine.changes();
    crate::metrics::Scrape {
        held_polls: changes.waiters(),
        wake_keys: changes.keys(),
        open_connections: admin.app.open_connections(),
        statements: crate::store::statements(),
        log_lines_dropped: admin
            .dropped_log_lines
            .as_ref()
            .map_or(0, |c| c.dropped_lines() as u64),
    }
}

/// `{"waiters":N,"connections":N,"rooms":N,"queries":N}`.
pub fn stats_json(app: &App) -> String {
    format!(
        r#"{{"waiters":{},"connections":{},"rooms":{},"queries":{}}}"#,
        app.engine.changes().waiters(),
        app.open_connections(),
        app.engine.changes().keys(),
        crate::store::statements(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_listener_stays_local() {
        for ok in [
            "127.0.0.1:9090",
            "[::1]:9090",
            "localhost:9090",
            "unix:/run/cometa/admin.sock",
            "127.0.0.1:0",
        ] {
            assert!(allowed_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0.0.0.0:9090",
            "[::]:9090",
            "10.0.0.1:9090",
            "example.org:9090",
            "9090",
        ] {
            assert!(allowed_address(bad).is_err(), "{bad}");
        }
    }
}
