//! Logs: one subscriber for everything cometa says, start-up errors included.
//!
//! - Lines go to stderr through a non-blocking writer: the event loop hands a
//!   line to a queue and a thread of its own writes it. When the reader of
//!   stderr stalls (a full pipe, a stuck journald) the queue fills and further
//!   lines are *dropped and counted* ([`Logging::dropped_lines`], exported as a
//!   metric), never waited for: a log must not freeze the server.
//! - `--log-format text|json`; colour only when stderr is a terminal (and
//!   `NO_COLOR` is unset), so journald stores plain text.
//! - The filter (`--log-level`, else `RUST_LOG`, else `info`) can be replaced
//!   while running ([`Logging::set_filter`], on SIGHUP).
//! - [`RateLimit`] turns a warning that a client can trigger at will (the
//!   connection cap, accept errors) into one line per interval with a count.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry, reload};

/// Lines that may wait for the writer thread before new ones are dropped.
const QUEUED_LINES: usize = 4096;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, fields at the top level.
    Json,
}

/// The installed logger; keep it alive until exit (dropping it flushes).
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    dropped: ErrorCounter,
    _flush: WorkerGuard,
}

/// The filter to start with: `--log-level` if given, else `RUST_LOG`, else `info`.
pub fn initial_filter(flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| {
            std::env::var("RUST_LOG")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .unwrap_or_else(|| "info".into())
}

/// Installs the process-wide subscriber writing to stderr.
pub fn init(format: LogFormat, filter: &str) -> Result<Logging, String> {
    init_with(
        format,
        filter,
        std::io::stderr(),
        std::io::stderr().is_terminal(),
    )
}

/// As [`init`], writing to `out`; `terminal` allows colour.
pub fn init_with<W>(
    format: LogFormat,
    filter: &str,
    out: W,
    terminal: bool,
) -> Result<Logging, String>
where
    W: std::io::Write + Send + 'static,
{
    let env_filter = parse_filter(filter)?;
    let (filter_layer, filter) = reload::Layer::new(env_filter);
    let (writer, flush) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("cometa-log")
        .finish(out);
    let dropped = writer.error_counter();
    let ansi = terminal && std::env::var_os("NO_COLOR").is_none();
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .with_ansi(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(fmt)
        .try_init()
        .map_err(|e| format!("logging: {e}"))?;
    Ok(Logging {
        filter,
        dropped,
        _flush: flush,
    })
}

fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder()
        .parse(filter)
        .map_err(|e| format!("log filter {filter:?}: {e}"))
}

impl Logging {
    /// Replaces the filter (e.g. `info`, `cometa=debug,info`).
    pub fn set_filter(&self, filter: &str) -> Result<(), String> {
        let f = parse_filter(filter)?;
        self.filter
            .reload(f)
            .map_err(|e| format!("log filter: {e}"))
    }

    /// Lines dropped since start because the writer was behind.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.dropped_lines() as u64
    }

    /// A cheap handle that reads [`Logging::dropped_lines`] from elsewhere.
    pub fn dropped_counter(&self) -> ErrorCounter {
        self.dropped.clone()
    }
}

/// At most one line per interval for an event that may come in floods.
///
/// ```
/// use cometa::logging::RateLimit;
/// static CAP: RateLimit = RateLimit::new(std::time::Duration::from_secs(10));
/// if let Some(n) = CAP.hit() {
///     tracing::warn!(times = n, "connection cap reached");
/// }
/// ```
pub struct RateLimit {
    interval: Duration,
    /// When the last line was written, and the events since.
    state: Mutex<Option<(Instant, u64)>>,
}

impl RateLimit {
    /// One line per `interval`.
    pub const fn new(interval: Duration) -> RateLimit {
        RateLimit {
            interval,
            state: Mutex::new(None),
        }
    }

    /// Counts one event; `Some(n)` when a line is due now, `n` being the events
    /// since the previous line (this one included).
    pub fn hit(&self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    fn hit_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *state {
            None => {
                *state = Some((now, 0));
                Some(1)
            }
            Some((last, n)) => {
                *n += 1;
                if now.saturating_duration_since(*last) >= self.interval {
                    let count = *n;
                    *last = now;
                    *n = 0;
                    Some(count)
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_per_interval_with_its_count() {
        let limit = RateLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.hit_at(t0), Some(1), "the first event is logged");
        for i in 1..1000 {
            assert_eq!(limit.hit_at(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(
            limit.hit_at(t0 + Duration::from_secs(10)),
            Some(1000),
            "the next line counts every event since the first"
        );
        assert_eq!(limit.hit_at(t0 + Duration::from_secs(11)), None);
        assert_eq!(limit.hit_at(t0 + Duration::from_secs(25)), Some(2));
    }

    #[test]
    fn a_bad_filter_is_refused() {
        assert!(parse_filter("info").is_ok());
        assert!(parse_filter("cometa=debug,info").is_ok());
        assert!(parse_filter("cometa=loud").is_err());
    }
}
