//! Command-line flags and the settings they make.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::limits::{self, Cidr, Rate};
use crate::store::Durability;
use crate::watcher::WatchMode;

/// cometa: the legacy PHP chat's Comet endpoints, in one Rust binary.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do; without a command, serve the chat.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// SQLite database file, shared with the legacy PHP app [default: data/chat.sqlite].
    #[arg(long, env = "CHAT_DB", global = true)]
    pub db: Option<PathBuf>,

    /// The app's wire format: a built-in profile (classic, omegle) or a profile file.
    #[arg(long, env = "COMETA_PROFILE", default_value = "classic", global = true)]
    pub profile: String,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the profile's tables (when missing) and cometa's change log,
    /// indexes and triggers in --db, then exit. Never alters the app's columns.
    Migrate,
    /// Check --profile (keys, templates, SQL against its schema, and against
    /// --db when given), print its routes, and exit 0; or name the file, line
    /// and key of the first problem and exit 1.
    Check,
}

impl Cli {
    /// The database file.
    pub fn db(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| PathBuf::from("data/chat.sqlite"))
    }
}

/// Flags of the server.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where to listen: host:port, or unix:/path/to.sock (for nginx).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Seconds a long-poll is held before it answers [] (fractions allowed).
    /// Keep it below the client's 40 s timeout and nginx's proxy_read_timeout.
    #[arg(long, default_value_t = 25.0, value_parser = seconds)]
    pub hold: f64,

    /// Time zone of the printed message times (IANA name, as PHP's date.timezone).
    #[arg(long, default_value = "UTC")]
    pub timezone: String,

    /// Folder of the static front end, served at the base path.
    #[arg(long, default_value = "legacy_php/public")]
    pub static_dir: PathBuf,

    /// Path prefix the app lives under, e.g. /chat (when nginx passes the prefix on).
    #[arg(long, default_value = "")]
    pub base_path: String,

    /// Most connections open at once; one more is answered 503 at once.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,

    /// Largest request body, in bytes; a larger one is answered 413.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_body: usize,

    /// Seconds a client may take to send a request's headers.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub header_timeout: f64,

    /// Seconds a client may take to send a request's body; then 408 and the
    /// connection is closed.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub body_timeout: f64,

    /// Seconds a client may accept no byte of its answer; then the connection is cut.
    #[arg(long, default_value_t = 20.0, value_parser = seconds)]
    pub write_timeout: f64,

    /// Kernel send buffer of each TCP connection, in bytes (the kernel doubles
    /// it for its bookkeeping): what a client that reads nothing can make the
    /// kernel hold for it. 0: the kernel's own autotuning (up to 4 MiB).
    #[arg(long, default_value_t = 256 * 1024)]
    pub send_buffer: usize,

    /// Largest request head (request line and headers), in bytes; a larger one
    /// is answered 431 and the connection closed.
    #[arg(long, default_value_t = 32 * 1024, value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024))]
    pub max_header_size: u32,

    /// Most connections one client address (an IPv6 /64) may hold; one more is
    /// answered 429. 0: no cap.
    #[arg(long, default_value_t = 256)]
    pub max_connections_per_client: usize,

    /// Sends per second one client address may keep up (0: no limit); beyond
    /// it and --client-send-burst, sendMessage.php answers 429.
    #[arg(long, default_value_t = 20.0, value_parser = rate)]
    pub client_send_rate: f64,

    /// Sends one client address may make at once before --client-send-rate applies.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub client_send_burst: u32,

    /// Sends per second one user name may keep up (0: no limit).
    #[arg(long, default_value_t = 2.0, value_parser = rate)]
    pub user_send_rate: f64,

    /// Sends one user name may make at once before --user-send-rate applies.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_send_burst: u32,

    /// A proxy (address or address/bits; repeatable) whose X-Real-IP or
    /// X-Forwarded-For names the client. The unix socket is always trusted;
    /// nobody else's headers are.
    #[arg(long = "trusted-proxy", value_name = "ADDR[/BITS]")]
    pub trusted_proxies: Vec<Cidr>,

    /// Seconds in-flight requests get to finish on SIGTERM/SIGINT.
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    pub shutdown_timeout: f64,

    /// How commits by other processes (the PHP app) are noticed: notify
    /// (file-system events, checked every --fallback-poll too) or poll (the
    /// periodic check only, e.g. on NFS).
    #[arg(long, value_enum, default_value = "notify")]
    pub watch: WatchMode,

    /// Seconds between checks for foreign commits when no event came: the
    /// longest a PHP-written message can wait.
    #[arg(long, default_value_t = 1.0, value_parser = seconds)]
    pub fallback_poll: f64,

    /// Seconds a write waits for another process's lock (a slow PHP request)
    /// before it is refused with 503 and Retry-After; it waits once, whatever
    /// the number of writes queued behind it.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub busy_timeout: f64,

    /// Delete messages older than this many days (fractions allowed), in
    /// batches between sends; 0 (the default) keeps everything, as the PHP app
    /// did. Needs the profile's `[retention] by_age`.
    #[arg(long, default_value_t = 0.0)]
    pub retain_days: f64,

    /// Keep only the newest N messages of each room, deleting older ones in
    /// batches between sends; 0 (the default) keeps everything. Needs the
    /// profile's `[retention] by_count`.
    #[arg(long, default_value_t = 0)]
    pub retain_per_room: u64,

    /// What an acknowledged send survives: full (power loss) or normal (a crash of cometa).
    #[arg(long, value_enum, default_value = "full")]
    pub durability: Durability,

    /// Threads that run the HTTP connections. SQLite has threads of its own (the
    /// writer, the readers, the watcher); one event-loop thread serves 10,000
    /// waiters with the least switching, so raise this only with cores to spare.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a rate (per second, 0 for none)")),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

/// Settings of a running server, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a long-poll is held.
    pub hold: Duration,
    /// Zone of printed times.
    pub timezone: jiff::tz::TimeZone,
    /// Static front end folder.
    pub static_dir: PathBuf,
    /// Prefix, "" or "/chat" (no trailing slash).
    pub base_path: String,
    /// Connection cap.
    pub max_connections: usize,
    /// Body cap in bytes.
    pub max_body: usize,
    /// Header read timeout.
    pub header_timeout: Duration,
    /// Body read timeout.
    pub body_timeout: Duration,
    /// Longest a client may accept no byte of its answer.
    pub write_timeout: Duration,
    /// Request head cap in bytes.
    pub max_header_size: usize,
    /// `SO_SNDBUF` of TCP connections; 0: the kernel's.
    pub send_buffer: usize,
    /// Per-client limits.
    pub limits: limits::Settings,
    /// Grace period on shutdown.
    pub shutdown_timeout: Duration,
}

impl ServeArgs {
    /// Checks the flags; the error says which one is wrong.
    pub fn config(&self) -> Result<Config, String> {
        let timezone = jiff::tz::TimeZone::get(&self.timezone)
            .map_err(|e| format!("--timezone {:?}: {e}", self.timezone))?;
        let base_path = self.base_path.trim_end_matches('/').to_owned();
        if !(base_path.is_empty() || base_path.starts_with('/')) {
            return Err(format!(
                "--base-path {:?} must start with /",
                self.base_path
            ));
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        Ok(Config {
            hold: Duration::from_secs_f64(self.hold),
            timezone,
            static_dir: self.static_dir.clone(),
            base_path,
            max_connections: self.max_connections,
            max_body: self.max_body,
            header_timeout: Duration::from_secs_f64(self.header_timeout),
            body_timeout: Duration::from_secs_f64(self.body_timeout),
            write_timeout: Duration::from_secs_f64(self.write_timeout),
            max_header_size: self.max_header_size as usize,
            send_buffer: self.send_buffer,
            limits: limits::Settings {
                connections_per_client: self.max_connections_per_client,
                client_send: Rate {
                    per_second: self.client_send_rate,
                    burst: self.client_send_burst,
                },
                user_send: Rate {
                    per_second: self.user_send_rate,
                    burst: self.user_send_burst,
                },
                trusted_proxies: self.trusted_proxies.clone(),
            },
            shutdown_timeout: Duration::from_secs_f64(self.shutdown_timeout),
        })
    }
}
