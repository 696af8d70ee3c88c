//! Every metric cometa exports, by name, and the Prometheus recorder that
//! renders them for the admin listener's `/metrics`.
//!
//! Code records through the `metrics` macros with the names below; without an
//! installed recorder (unit tests, `cometa check`) the macros do nothing.
//! Gauges that are cheaper to read than to keep up to date (held polls, open
//! connections, SQL statements, dropped log lines) are set when scraped
//! ([`Scrape`]).

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `route` and `status` (499: the client went away first).
pub const REQUESTS: &str = "cometa_http_requests_total";
/// Seconds from a request's headers to its answer (a long-poll's hold included), by `route`.
pub const REQUEST_DURATION: &str = "cometa_http_request_duration_seconds";
/// Long-polls ended, by `how`: answered, empty (the hold ran out), shutdown, client_gone.
pub const HOLDS_ENDED: &str = "cometa_holds_ended_total";
/// Long-polls waiting now.
pub const HELD_POLLS: &str = "cometa_held_polls";
/// Rooms (wake keys) with at least one waiter now.
pub const WAKE_KEYS: &str = "cometa_wake_keys";
/// Wake-up signals that moved (a commit in a key with waiters).
pub const WAKEUPS: &str = "cometa_wakeups_total";
/// Waiters woken by one wake-up signal.
pub const ANSWERS_PER_WAKEUP: &str = "cometa_answers_per_wakeup";
/// Seconds from a waiter's wake-up to its answer being ready (the query included).
pub const WAKE_LATENCY: &str = "cometa_wake_latency_seconds";
/// Write transactions, by `result` (ok, error).
pub const STORE_COMMITS: &str = "cometa_store_commits_total";
/// Jobs (sends, presence and typing marks) in one write transaction.
pub const STORE_BATCH_SIZE: &str = "cometa_store_batch_size";
/// Writes queued for the writer thread, seen after each batch.
pub const STORE_QUEUE_DEPTH: &str = "cometa_store_queue_depth";
/// SQL statements run since start (BEGIN, COMMIT and probes included).
pub const STORE_STATEMENTS: &str = "cometa_store_statements_total";
/// File-system events on the database's folder that made the watcher look.
pub const WATCHER_EVENTS: &str = "cometa_watcher_events_total";
/// `PRAGMA data_version` looks of the watcher.
pub const WATCHER_PROBES: &str = "cometa_watcher_probes_total";
/// Commits the watcher found (ours and other processes').
pub const WATCHER_CHANGES: &str = "cometa_watcher_changes_total";
/// Requests or connections refused, by `reason`.
pub const REJECTIONS: &str = "cometa_rejections_total";
/// Connections open now on the public listener.
pub const OPEN_CONNECTIONS: &str = "cometa_open_connections";
/// Log lines dropped because the log reader was too slow.
pub const LOG_LINES_DROPPED: &str = "cometa_log_lines_dropped_total";
/// Always 1; the labels say which build runs (`version`, `commit`, `built`).
pub const BUILD_INFO: &str = "cometa_build_info";

/// Version, git commit and build date of this binary (set by `build.rs`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Short git commit the binary was built from, or `unknown`.
pub const COMMIT: &str = env!("COMETA_GIT_COMMIT");
/// UTC build date, `YYYY-MM-DD`.
pub const BUILT: &str = env!("COMETA_BUILD_DATE");

/// How often histogram samples are folded into their buckets (the recorder
/// keeps each sample until then, scraped or not).
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Bucket bounds for durations in seconds: sub-millisecond wake-ups up to a
/// whole hold.
const SECONDS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    25.0, 30.0, 60.0,
];
/// Bucket bounds for counts (batch sizes, waiters per wake-up).
const COUNTS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10_000.0,
];

/// Installs the process-wide recorder and describes every metric; the handle
/// renders the exposition text.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets(SECONDS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STORE_BATCH_SIZE.into()), COUNTS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(ANSWERS_PER_WAKEUP.into()), COUNTS))
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("metrics: {e}"))?;
    describe();
    // The hot handles, from this recorder (made before it, they would be no-ops).
    std::sync::LazyLock::force(&HOT);
    metrics::gauge!(BUILD_INFO, "version" => VERSION, "commit" => COMMIT, "built" => BUILT)
        .set(1.0);
    Ok(handle)
}

fn describe() {
    describe_counter!(
        REQUESTS,
        "Requests answered, by route and status (499: client went away)."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Request duration, holds included, by route."
    );
    describe_counter!(
        HOLDS_ENDED,
        "Long-polls ended, by how: answered, empty, shutdown, client_gone."
    );
    describe_gauge!(HELD_POLLS, "Long-polls waiting now.");
    describe_gauge!(WAKE_KEYS, "Rooms (wake keys) with waiters now.");
    describe_counter!(WAKEUPS, "Wake-up signals that moved.");
    describe_histogram!(ANSWERS_PER_WAKEUP, "Waiters woken by one wake-up signal.");
    describe_histogram!(
        WAKE_LATENCY,
        Unit::Seconds,
        "From a waiter's wake-up to its answer."
    );
    describe_counter!(STORE_COMMITS, "Write transactions, by result.");
    describe_histogram!(STORE_BATCH_SIZE, "Jobs per write transaction.");
    describe_gauge!(
        STORE_QUEUE_DEPTH,
        "Writes queued for the writer after its last batch."
    );
    describe_counter!(STORE_STATEMENTS, "SQL statements run since start.");
    describe_counter!(
        WATCHER_EVENTS,
        "File-system events that made the watcher look."
    );
    describe_counter!(WATCHER_PROBES, "PRAGMA data_version looks of the watcher.");
    describe_counter!(WATCHER_CHANGES, "Commits the watcher found.");
    describe_counter!(REJECTIONS, "Requests or connections refused, by reason.");
    describe_gauge!(OPEN_CONNECTIONS, "Connections open on the public listener.");
    describe_counter!(
        LOG_LINES_DROPPED,
        "Log lines dropped: the log reader was too slow."
    );
    describe_gauge!(BUILD_INFO, "Always 1; labels name the build.");
}

/// Values read when `/metrics` is scraped.
pub struct Scrape {
    /// Long-polls waiting.
    pub held_polls: usize,
    /// Rooms with waiters.
    pub wake_keys: usize,
    /// Open public connections.
    pub open_connections: usize,
    /// SQL statements so far.
    pub statements: u64,
    /// Log lines dropped so far.
    pub log_lines_dropped: u64,
}

impl Scrape {
    /// Records these values.
    pub fn record(&self) {
        metrics::gauge!(HELD_POLLS).set(self.held_polls as f64);
        metrics::gauge!(WAKE_KEYS).set(self.wake_keys as f64);
        metrics::gauge!(OPEN_CONNECTIONS).set(self.open_connections as f64);
        metrics::counter!(STORE_STATEMENTS).absolute(self.statements);
        metrics::counter!(LOG_LINES_DROPPED).absolute(self.log_lines_dropped);
    }
}

/// The `reason` label of [`REJECTIONS`] for an answer's status, if it is a refusal.
pub fn rejection_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        408 => "timeout",
        413 => "body_too_large",
        429 => "rate_limited",
        431 => "headers_too_large",
        503 => "unavailable",
        _ => return None,
    })
}

/// One write transaction of the store's writer: its size, whether every job
/// committed, and what is still queued.
pub fn record_batch(jobs: usize, ok: bool, queued: usize) {
    let h = &*HOT;
    if ok { &h.commits_ok } else { &h.commits_error }.increment(1);
    h.batch_size.record(jobs as f64);
    h.queue_depth.set(queued as f64);
}

/// The handles of the metrics recorded at every commit, wake-up and answer,
/// looked up once (a lookup hashes the name and labels: a few hundred
/// instructions, at every send). Made at first use, after [`install`].
struct Hot {
    commits_ok: metrics::Counter,
    commits_error: metrics::Counter,
    batch_size: metrics::Histogram,
    queue_depth: metrics::Gauge,
    wakeups: metrics::Counter,
    answers_per_wakeup: metrics::Histogram,
    wake_latency: metrics::Histogram,
}

static HOT: std::sync::LazyLock<Hot> = std::sync::LazyLock::new(|| Hot {
    commits_ok: metrics::counter!(STORE_COMMITS, "result" => "ok"),
    commits_error: metrics::counter!(STORE_COMMITS, "result" => "error"),
    batch_size: metrics::histogram!(STORE_BATCH_SIZE),
    queue_depth: metrics::gauge!(STORE_QUEUE_DEPTH),
    wakeups: metrics::counter!(WAKEUPS),
    answers_per_wakeup: metrics::histogram!(ANSWERS_PER_WAKEUP),
    wake_latency: metrics::histogram!(WAKE_LATENCY),
});

/// A wake-up signal that moved, with the waiters it woke.
pub fn record_wakeup(waiters: usize) {
    HOT.wakeups.increment(1);
    HOT.answers_per_wakeup.record(waiters as f64);
}

/// A held request answered after a wake-up at `woken_at`.
pub fn record_wake_latency(woken_at: std::time::Instant) {
    HOT.wake_latency.record(woken_at.elapsed().as_secs_f64());
}
