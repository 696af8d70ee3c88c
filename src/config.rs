//! Command-line flags and the settings they make.
//!
//! Every flag can also come from the environment (`COMETA_<FLAG>`, e.g.
//! `COMETA_HOLD=20`, `COMETA_STATIC_DIR=…`; the database stays `CHAT_DB`) and
//! from a TOML file named by `--config` (or `COMETA_CONFIG`), keyed by the
//! flag's name without dashes (`hold = 20`, `static-dir = "…"`). A flag beats
//! the environment, which beats the file, which beats the default. A key the
//! file should not have, or a value its flag would refuse, is an error naming
//! the file and the line. [`check`] validates the whole configuration
//! (`cometa check`, and the server before it starts).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::limits::{self, Cidr, Rate};
use crate::logging::LogFormat;
use crate::store::Durability;
use crate::watcher::WatchMode;

/// Version line of `--version`: version, git commit, build date.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("COMETA_GIT_COMMIT"),
    ", built ",
    env!("COMETA_BUILD_DATE"),
    ")"
);

/// cometa: the legacy PHP chat's Comet endpoints, in one Rust binary.
#[derive(Debug, Parser)]
#[command(version = LONG_VERSION, about)]
pub struct Cli {
    /// What to do; without a command, serve the chat.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML file of settings, keyed by flag name (`hold = 25`); flags and
    /// COMETA_* variables override it.
    #[arg(long, env = "COMETA_CONFIG", global = true)]
    pub config: Option<PathBuf>,

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
    /// Check the configuration (flags, COMETA_* variables, the --config
    /// file: values, hold against the timeouts, folders, addresses) and
    /// --profile (keys, templates, SQL against its schema, and against --db
    /// when given); print the profile's routes and exit 0, or name each
    /// problem (file, line and key for a profile) and exit 1.
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

    /// Where to serve /metrics, /healthz, /readyz and /_cometa/stats: a
    /// loopback host:port or unix:/path. Off when not given.
    #[arg(long)]
    pub admin_listen: Option<String>,

    /// Also answer GET /_cometa/stats on the public listener (off: it is on
    /// the admin listener).
    #[arg(long)]
    pub public_stats: bool,

    /// Log lines as text or as one JSON object per line.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter, e.g. info or cometa=debug,info (RUST_LOG syntax); without
    /// it RUST_LOG, else info. Re-read from --config on SIGHUP.
    #[arg(long)]
    pub log_level: Option<String>,

    /// Seconds the browser waits for a long-poll before giving up (the frozen
    /// front end: 40). --hold must stay below it.
    #[arg(long, default_value_t = 40.0, value_parser = seconds)]
    pub client_timeout: f64,

    /// Seconds the proxy in front waits for an answer (nginx's
    /// proxy_read_timeout; 60 by default). --hold must stay below it.
    #[arg(long, default_value_t = 60.0, value_parser = seconds)]
    pub proxy_timeout: f64,
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
    /// Whether `/_cometa/stats` is answered on the public listener.
    pub public_stats: bool,
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
            public_stats: self.public_stats,
        })
    }
}

/// Flags that the file and the environment do not set.
const NOT_SETTABLE: &[&str] = &["help", "version", "config"];

/// The command line's definition, each flag also read from `COMETA_<FLAG>`
/// unless it names a variable of its own (`--db`: `CHAT_DB`).
pub fn command() -> clap::Command {
    Cli::command().mut_args(|a| {
        let id = a.get_id().as_str().to_owned();
        // `cometa check --hold 40` reads as `cometa --hold 40 check`.
        let a = if NOT_SETTABLE.contains(&id.as_str()) {
            a
        } else {
            a.global(true)
        };
        match a.get_long() {
            Some(long) if a.get_env().is_none() && !NOT_SETTABLE.contains(&id.as_str()) => {
                let var = format!("COMETA_{}", long.to_ascii_uppercase().replace('-', "_"));
                a.env(var)
            }
            _ => a,
        }
    })
}

/// Parses the process's command line, environment and `--config` file; on
/// an error prints it (with usage) and exits 2, as clap does.
pub fn parse() -> Cli {
    parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Parses `args` (the program name first), the environment and the
/// `--config` file they name: flags > environment > file > defaults.
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut cmd = command();
    let matches = cmd.clone().try_get_matches_from(&args)?;
    if let Some(path) = matches.get_one::<PathBuf>("config") {
        for (id, value) in read_file(path, &cmd)
            .map_err(|e| cmd.error(clap::error::ErrorKind::ValueValidation, e))?
        {
            cmd = cmd.mut_arg(id, |a| a.default_value(value));
        }
        let matches = cmd.try_get_matches_from(&args)?;
        return Cli::from_arg_matches(&matches);
    }
    Cli::from_arg_matches(&matches)
}

/// The settings of a `--config` file, as (flag id, value) pairs, each checked
/// by its flag's own parser; an error names the file and the line.
fn read_file(path: &Path, cmd: &clap::Command) -> Result<Vec<(String, String)>, String> {
    use std::collections::BTreeMap;
    use toml::{Spanned, Value};
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table: BTreeMap<String, Spanned<Value>> = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(":{}", line_of(s.start)))
            .unwrap_or_default();
        format!("{}{at}: {}", path.display(), e.message())
    })?;
    let settable: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.get_long().is_some() && !NOT_SETTABLE.contains(&a.get_id().as_str()))
        .collect();
    let mut out = Vec::new();
    for (key, value) in &table {
        let line = line_of(value.span().start);
        let at = format!("{}:{line}", path.display());
        let long = key.replace('_', "-");
        let Some(arg) = settable
            .iter()
            .find(|a| a.get_long() == Some(long.as_str()))
        else {
            let known: Vec<&str> = settable.iter().filter_map(|a| a.get_long()).collect();
            return Err(format!(
                "{at}: unknown key `{key}` (known: {})",
                known.join(", ")
            ));
        };
        let text = match value.get_ref() {
            Value::String(s) => s.clone(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "{at}: `{key}` must be a string, number or boolean, not {}",
                    other.type_str()
                ));
            }
        };
        if arg.get_action().takes_values() {
            // The flag's own parser decides, as it would on the command line.
            let flag = format!("--{long}");
            clap::Command::new("cometa")
                .arg((*arg).clone().env(None::<&str>).global(false))
                .try_get_matches_from(["cometa", flag.as_str(), text.as_str()])
                .map_err(|e| {
                    let why = e.to_string();
                    let why = why.trim().trim_start_matches("error: ");
                    format!("{at}: `{key}`: {}", why.lines().next().unwrap_or(""))
                })?;
        } else if !matches!(value.get_ref(), Value::Boolean(_)) {
            return Err(format!("{at}: `{key}` must be true or false"));
        }
        out.push((arg.get_id().as_str().to_owned(), text));
    }
    Ok(out)
}

/// What [`check`] found: errors stop the server, warnings do not.
#[derive(Debug, Default)]
pub struct Report {
    /// Reasons the configuration cannot serve.
    pub errors: Vec<String>,
    /// Things that work but are probably not what was meant.
    pub warnings: Vec<String>,
}

impl Report {
    /// Whether the configuration can serve.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Validates the whole configuration without changing anything: the flags'
/// values, the hold against the client's and the proxy's timeouts, the static
/// folder, the database's folder, the admin address and the log filter.
/// `cometa check` prints the report; the server refuses to start on an error.
pub fn check(cli: &Cli) -> Report {
    let mut r = Report::default();
    let serve = &cli.serve;
    if let Err(e) = serve.config() {
        r.errors.push(e);
    }
    for (limit, name, what) in [
        (
            serve.client_timeout,
            "--client-timeout",
            "the page gives up first and shows an error",
        ),
        (
            serve.proxy_timeout,
            "--proxy-timeout",
            "the proxy answers 504 first",
        ),
    ] {
        if serve.hold >= limit {
            r.errors.push(format!(
                "--hold {} must be below {name} {limit}: a quiet poll would not end with [] ({what})",
                serve.hold
            ));
        } else if serve.hold > limit - 5.0 {
            r.warnings.push(format!(
                "--hold {} is within 5 s of {name} {limit}: a slow answer may still be cut",
                serve.hold
            ));
        }
    }
    match std::fs::metadata(&serve.static_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => r.warnings.push(format!(
            "--static-dir {} is not a folder: the front end will answer 404",
            serve.static_dir.display()
        )),
        Err(e) => r.warnings.push(format!(
            "--static-dir {}: {e}: the front end will answer 404",
            serve.static_dir.display()
        )),
    }
    if let Err(e) = check_db_path(&cli.db()) {
        r.errors.push(e);
    }
    if let Some(addr) = &serve.admin_listen
        && let Err(e) = crate::admin::allowed_address(addr)
    {
        r.errors.push(e);
    }
    if let Some(level) = &serve.log_level
        && let Err(e) = tracing_subscriber::EnvFilter::builder().parse(level)
    {
        r.errors.push(format!("--log-level {level:?}: {e}"));
    }
    r
}

/// Whether the database at `db` can be opened for writing, or created: its
/// folder (or the nearest folder that exists) must be a writable directory.
fn check_db_path(db: &Path) -> Result<(), String> {
    let shown = db.display();
    match std::fs::metadata(db) {
        Ok(m) if m.is_dir() => return Err(format!("--db {shown} is a folder, not a file")),
        Ok(m) if m.permissions().readonly() => {
            return Err(format!(
                "--db {shown} is read-only: write permission is needed (cometa and PHP write it)"
            ));
        }
        _ => {}
    }
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    // The folder is created at start when missing: check the nearest that exists.
    let mut existing = dir.as_path();
    let meta = loop {
        match std::fs::metadata(existing) {
            Ok(m) => break m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match existing.parent() {
                Some(p) if !p.as_os_str().is_empty() => existing = p,
                _ if existing != Path::new(".") && existing.is_relative() => {
                    existing = Path::new(".");
                }
                _ => return Err(format!("--db {shown}: no folder of it exists")),
            },
            Err(e) => return Err(format!("--db {shown}: folder {}: {e}", existing.display())),
        }
    };
    if !meta.is_dir() {
        return Err(format!(
            "--db {shown}: {} is not a folder",
            existing.display()
        ));
    }
    // SQLite writes -wal and -shm files beside the database: the folder must
    // take new files. Only trying tells (permissions, ACLs, read-only mounts).
    let probe = existing.join(format!(".cometa-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "--db {shown}: write permission on the folder {} is needed (SQLite creates \
             the -wal and -shm files there, for cometa and PHP alike): {e}",
            existing.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cometa.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_flag_beats_the_file_which_beats_the_default() {
        let (_d, path) = file("hold = 12\ntimezone = \"Europe/Paris\"\npublic-stats = true\n");
        let p = path.to_str().unwrap();
        let cli = parse_from(["cometa", "--config", p]).unwrap();
        assert_eq!(cli.serve.hold, 12.0);
        assert_eq!(cli.serve.timezone, "Europe/Paris");
        assert!(cli.serve.public_stats);
        assert_eq!(
            cli.serve.max_connections, 10_000,
            "not in the file: default"
        );
        let cli = parse_from(["cometa", "--config", p, "--hold", "3"]).unwrap();
        assert_eq!(cli.serve.hold, 3.0);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_and_line() {
        let (_d, path) = file("hold = 12\n\nholdd = 3\n");
        let e = parse_from(["cometa", "--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cometa.toml:3: unknown key `holdd`"), "{e}");
        let (_d, path) = file("listen = \"127.0.0.1:1\"\nhold = -4\n");
        let e = parse_from(["cometa", "--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cometa.toml:2: `hold`"), "{e}");
        let (_d, path) = file("hold = [1]\n");
        let e = parse_from(["cometa", "--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cometa.toml:1:"), "{e}");
    }

    #[test]
    fn a_hold_not_below_the_timeouts_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("chat.sqlite");
        let db = db.to_str().unwrap();
        let ok = check(&parse_from(["cometa", "--db", db, "--static-dir", "."]).unwrap());
        assert!(ok.ok(), "{ok:?}");
        let r = check(&parse_from(["cometa", "--db", db, "--hold", "40"]).unwrap());
        assert!(
            r.errors.iter().any(|e| e.contains("--client-timeout")),
            "{r:?}"
        );
        let r = check(
            &parse_from([
                "cometa",
                "--db",
                db,
                "--hold",
                "30",
                "--proxy-timeout",
                "30",
            ])
            .unwrap(),
        );
        assert!(
            r.errors.iter().any(|e| e.contains("--proxy-timeout")),
            "{r:?}"
        );
        let r = check(&parse_from(["cometa", "--db", db, "--static-dir", "/nonexistent"]).unwrap());
        assert!(
            r.ok() && r.warnings.iter().any(|w| w.contains("--static-dir")),
            "{r:?}"
        );
    }

    #[test]
    fn a_db_folder_that_is_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("plain");
        std::fs::write(&f, "").unwrap();
        let db = f.join("chat.sqlite");
        let e = check_db_path(&db).unwrap_err();
        assert!(e.contains("is not a folder"), "{e}");
        assert!(check_db_path(&dir.path().join("new/sub/chat.sqlite")).is_ok());
        let e = check_db_path(dir.path()).unwrap_err();
        assert!(e.contains("is a folder"), "{e}");
    }
}
