//! Shared test harness: spawns the real `cometa` binary on an ephemeral port with a
//! temporary database, and talks to it with a minimal HTTP/1.1 client so that tests
//! can assert exact status lines, headers and body bytes.
//!
//! Every wait in here is bounded; a test never hangs for longer than a few tens of
//! seconds even when the server misbehaves.
#![allow(dead_code)]

pub(crate) mod omegle;
pub(crate) mod php;
pub(crate) mod stack;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long the server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout of every client socket: longer than any hold a test configures.
const READ_TIMEOUT: Duration = Duration::from_secs(40);

/// The exact 400 body for a given reason.
pub(crate) fn error_body(reason: &str) -> String {
    format!(r#"{{"status":"error","error":"{reason}"}}"#)
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// How to start a server.
pub(crate) struct Builder {
    dir: Option<PathBuf>,
    hold: String,
    timezone: String,
    base_path: Option<String>,
    db_via_env: bool,
    extra: Vec<String>,
    envs: Vec<(String, String)>,
    public_stats: bool,
    admin: bool,
    send_limits: bool,
}

impl Builder {
    /// Keep the default send rate limits (most tests send faster than any
    /// person, so the harness turns them off unless asked).
    pub(crate) fn send_limits(mut self) -> Self {
        self.send_limits = true;
        self
    }

    /// Serve the admin listener on an ephemeral loopback port ([`Server::admin`]).
    pub(crate) fn admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// Leave `/_cometa/stats` off the public listener (the default of cometa;
    /// the harness turns it on for `stats()` and `wait_waiters()`).
    pub(crate) fn no_public_stats(mut self) -> Self {
        self.public_stats = false;
        self
    }

    /// Put the database, static files and log in `dir` (created by the test, so that a
    /// second server can reuse the same database after the first one is gone).
    pub(crate) fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    pub(crate) fn hold(mut self, secs: &str) -> Self {
        self.hold = secs.to_string();
        self
    }

    pub(crate) fn timezone(mut self, tz: &str) -> Self {
        self.timezone = tz.to_string();
        self
    }

    pub(crate) fn base_path(mut self, base: &str) -> Self {
        self.base_path = Some(base.to_string());
        self
    }

    /// Pass the database path through `CHAT_DB` instead of `--db`.
    pub(crate) fn db_via_env(mut self) -> Self {
        self.db_via_env = true;
        self
    }

    pub(crate) fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.to_string());
        self
    }

    pub(crate) fn args(mut self, a: &[&str]) -> Self {
        self.extra.extend(a.iter().map(|s| s.to_string()));
        self
    }

    pub(crate) fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.to_string(), v.to_string()));
        self
    }

    pub(crate) fn start(self) -> Server {
        let (own_dir, dir) = match self.dir {
            Some(d) => (None, d),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let db = dir.join("chat.sqlite");
        let static_dir = dir.join("static");
        make_static_dir(&static_dir);
        // One log per start, so that a restarted server does not overwrite the first log.
        let mut n = 0;
        let log = loop {
            let p = dir.join(format!("server{n}.log"));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        let log_file = std::fs::File::create(&log).expect("log file");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cometa"));
        cmd.arg("--listen").arg("127.0.0.1:0");
        if self.db_via_env {
            cmd.env("CHAT_DB", &db);
        } else {
            cmd.env_remove("CHAT_DB");
            cmd.arg("--db").arg(&db);
        }
        cmd.arg("--hold").arg(&self.hold);
        cmd.arg("--timezone").arg(&self.timezone);
        cmd.arg("--static-dir").arg(&static_dir);
        if let Some(b) = &self.base_path {
            cmd.arg("--base-path").arg(b);
        }
        if self.public_stats {
            cmd.arg("--public-stats");
        }
        if self.admin {
            cmd.arg("--admin-listen").arg("127.0.0.1:0");
        }
        if !self.send_limits {
            cmd.args(["--client-send-rate", "0", "--user-send-rate", "0"]);
        }
        cmd.args(&self.extra);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = cmd.spawn().expect("spawn cometa");
        let stdout = child.stdout.take().expect("stdout");
        let stdout_all = Arc::new(Mutex::new(String::new()));
        let lines = drain_stdout(stdout, Arc::clone(&stdout_all));

        let line = match lines.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "cometa did not print its listening line within {START_TIMEOUT:?}\n--- stderr ---\n{}",
                    tail_of(&log)
                );
            }
        };
        let port = parse_listening_line(&line).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "unexpected first stdout line {line:?}\n--- stderr ---\n{}",
                tail_of(&log)
            )
        });
        let admin = self.admin.then(|| {
            let line = lines.recv_timeout(START_TIMEOUT).unwrap_or_default();
            line.strip_prefix("cometa admin on http://")
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .unwrap_or_else(|| {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "expected the admin line on stdout, got {line:?}\n--- stderr ---\n{}",
                        tail_of(&log)
                    )
                })
        });
        Server {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin,
            base: self
                .base_path
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            dir,
            db,
            static_dir,
            log,
            stdout_all,
            _own_dir: own_dir,
        }
    }
}

/// Reads the child's stdout to its end on a thread; sends each line on the channel.
fn drain_stdout(stdout: ChildStdout, all: Arc<Mutex<String>>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    all.lock().unwrap().push_str(&line);
                    let _ = tx.send(line.trim_end_matches('\n').to_string());
                }
            }
        }
    });
    rx
}

/// `cometa listening on http://127.0.0.1:PORT` → PORT (tolerates a trailing base path).
pub(crate) fn parse_listening_line(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("cometa listening on http://127.0.0.1:")?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let tail = &rest[digits.len()..];
    if !(tail.is_empty() || tail.starts_with('/')) {
        return None;
    }
    digits.parse().ok().filter(|p| *p != 0)
}

/// The static files every server gets: index.html, app.js, style.css, a PHP file and
/// dotfiles (never to be served), a sub directory, and a secret outside the static dir.
pub(crate) const INDEX_HTML: &str =
    "<!doctype html>\n<html><head><title>cometa test</title></head><body>chat</body></html>\n";
pub(crate) const APP_JS: &str = "console.log(\"app\");\n";
pub(crate) const STYLE_CSS: &str = "body { color: black; }\n";
pub(crate) const SECRET_PHP: &str = "<?php echo 'SECRET-PHP-SOURCE'; ?>\n";
pub(crate) const HIDDEN: &str = "SECRET-DOTFILE\n";
pub(crate) const OUTSIDE: &str = "SECRET-OUTSIDE-STATIC-DIR\n";
pub(crate) const SUB_TXT: &str = "sub file\n";

fn make_static_dir(dir: &Path) {
    if dir.join("index.html").exists() {
        return;
    }
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    std::fs::write(dir.join("index.html"), INDEX_HTML).unwrap();
    std::fs::write(dir.join("app.js"), APP_JS).unwrap();
    std::fs::write(dir.join("style.css"), STYLE_CSS).unwrap();
    std::fs::write(dir.join("secret.php"), SECRET_PHP).unwrap();
    std::fs::write(dir.join(".hidden"), HIDDEN).unwrap();
    std::fs::write(dir.join(".git").join("config"), HIDDEN).unwrap();
    std::fs::write(dir.join("sub").join("page.txt"), SUB_TXT).unwrap();
    std::fs::write(dir.join("sub").join("inner.php"), SECRET_PHP).unwrap();
    std::fs::write(dir.join("sub").join(".env"), HIDDEN).unwrap();
    std::fs::write(dir.parent().unwrap().join("outside.txt"), OUTSIDE).unwrap();
}

fn tail_of(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let cut = s.len().saturating_sub(6000);
    let cut = (cut..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[cut..].to_string()
}

/// A running `cometa` child process, killed (SIGKILL) on drop.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    /// The admin listener, when started with [`Builder::admin`].
    pub(crate) admin: Option<SocketAddr>,
    /// `""` or the base path without its trailing slash, e.g. `"/chat"`.
    pub(crate) base: String,
    pub(crate) dir: PathBuf,
    pub(crate) db: PathBuf,
    pub(crate) static_dir: PathBuf,
    pub(crate) log: PathBuf,
    stdout_all: Arc<Mutex<String>>,
    _own_dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "--- cometa stderr ({}) ---\n{}",
                self.log.display(),
                tail_of(&self.log)
            );
        }
    }
}

impl Server {
    pub(crate) fn builder() -> Builder {
        Builder {
            dir: None,
            hold: "5".into(),
            timezone: "UTC".into(),
            base_path: None,
            db_via_env: false,
            extra: Vec::new(),
            envs: Vec::new(),
            public_stats: true,
            admin: false,
            send_limits: false,
        }
    }

    /// A server with the default test settings (hold 5 s, UTC).
    pub(crate) fn start() -> Server {
        Self::builder().start()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("server already stopped").id()
    }

    /// Everything the server printed to stdout so far.
    pub(crate) fn stdout(&self) -> String {
        self.stdout_all.lock().unwrap().clone()
    }

    /// Path of an endpoint under the base path: `ep("sendMessage.php")`.
    pub(crate) fn ep(&self, name: &str) -> String {
        format!("{}/{}", self.base, name)
    }

    pub(crate) fn get(&self, path: &str) -> Response {
        http(self.addr, "GET", path, &[], b"")
    }

    /// POST an `application/x-www-form-urlencoded` body.
    pub(crate) fn post(&self, path: &str, body: &str) -> Response {
        http(
            self.addr,
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    }

    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http(self.addr, method, path, headers, body)
    }

    /// Sends a message and returns its id; panics unless the answer is exactly
    /// `200 application/json {"status":"ok","id":N}`.
    pub(crate) fn send(&self, user: &str, message: &str, room: &str) -> i64 {
        let body = form(&[("user", user), ("message", message), ("room", room)]);
        let r = self.post(&self.ep("sendMessage.php"), &body);
        parse_send_ok(&r)
    }

    /// `listenToRecive.php?lastId=N&room=R` by GET.
    pub(crate) fn listen(&self, last_id: i64, room: &str) -> Response {
        self.get(&format!(
            "{}?{}",
            self.ep("listenToRecive.php"),
            form(&[("lastId", &last_id.to_string()), ("room", room)])
        ))
    }

    /// `listenToRecive.php` with a raw query string (already encoded).
    pub(crate) fn listen_q(&self, query: &str) -> Response {
        self.get(&format!("{}?{}", self.ep("listenToRecive.php"), query))
    }

    /// `getNumberOfUsers.php` → the number, after checking status and headers.
    pub(crate) fn users(&self, room: &str) -> u64 {
        let r = self.get(&format!(
            "{}?{}",
            self.ep("getNumberOfUsers.php"),
            form(&[("room", room)])
        ));
        assert_eq!(r.status, 200, "getNumberOfUsers: {r}");
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=UTF-8"),
            "{r}"
        );
        r.text()
            .parse()
            .unwrap_or_else(|_| panic!("getNumberOfUsers body is not a number: {r}"))
    }

    /// POST `isTyping.php` with the given form body.
    pub(crate) fn typing(&self, body: &str) -> Response {
        self.post(&self.ep("isTyping.php"), body)
    }

    /// `(waiters, connections)` from `/_cometa/stats`.
    pub(crate) fn stats(&self) -> (u64, u64) {
        let r = match self.admin {
            Some(admin) => http(admin, "GET", "/_cometa/stats", &[], b""),
            None => self.get(&self.ep("_cometa/stats")),
        };
        assert_eq!(r.status, 200, "stats: {r}");
        let t = r.text();
        (
            json_u64_field(&t, "waiters"),
            json_u64_field(&t, "connections"),
        )
    }

    /// Polls the stats until `waiters == n` (bounded); panics with the last value.
    pub(crate) fn wait_waiters(&self, n: u64, within: Duration) {
        let deadline = Instant::now() + within;
        let mut last = (u64::MAX, u64::MAX);
        while Instant::now() < deadline {
            last = self.stats();
            if last.0 == n {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "waiters did not reach {n} within {within:?}; last stats (waiters, connections) = {last:?}"
        );
    }

    /// A fresh rusqlite connection to the server's database.
    pub(crate) fn db(&self) -> rusqlite::Connection {
        open_db(&self.db)
    }

    /// Row counts of `(messages, presence, typing)`.
    pub(crate) fn counts(&self) -> (i64, i64, i64) {
        counts(&self.db)
    }

    /// Asserts that the database holds no message, no presence and no typing row.
    pub(crate) fn assert_nothing_stored(&self, what: &str) {
        assert_eq!(
            self.counts(),
            (0, 0, 0),
            "{what}: (messages, presence, typing) rows"
        );
    }

    /// Sends `kill -<sig>` to the server.
    pub(crate) fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    /// SIGKILL, and reap.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
        }
    }

    /// Waits (bounded) for the process to exit; `None` if it is still running.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("server already reaped");
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait for a clean exit (status 0 within 10 s).
    pub(crate) fn stop(&mut self) {
        self.signal("TERM");
        let st = self
            .wait_exit(Duration::from_secs(10))
            .expect("server did not exit within 10 s of SIGTERM");
        assert!(st.success(), "exit status after SIGTERM: {st:?}");
    }
}

pub(crate) fn parse_send_ok(r: &Response) -> i64 {
    assert_eq!(r.status, 200, "sendMessage: {r}");
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "sendMessage: {r}"
    );
    let t = r.text();
    let id = t
        .strip_prefix(r#"{"status":"ok","id":"#)
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or_else(|| panic!("unexpected sendMessage body: {r}"));
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0'),
        "id is not a positive decimal: {r}"
    );
    id.parse().unwrap()
}

fn json_u64_field(json: &str, name: &str) -> u64 {
    let key = format!("\"{name}\":");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("no {name:?} in {json}"));
    let digits: String = json[at + key.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{name:?} is not a number in {json}"))
}

pub(crate) fn open_db(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).expect("open db");
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

pub(crate) fn counts(path: &Path) -> (i64, i64, i64) {
    let c = open_db(path);
    let n = |t: &str| -> i64 {
        c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("count {t}: {e}"))
    };
    (n("messages"), n("presence"), n("typing"))
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Whether a test that needs an outside tool can run, given why it cannot
/// (`None`: it can). Without the tool: under `CI=true` the test fails with the
/// reason; otherwise it says loudly on stderr that it is skipped and the caller
/// returns. `packages` are the Debian packages that provide it.
pub(crate) fn tool_or_skip(test: &str, unavailable: Option<String>, packages: &str) -> bool {
    let Some(why) = unavailable else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}; CI=true, so this is a failure, not a skip (install {packages})");
    }
    eprintln!(
        "\n\
         ************************************************************\n\
         *** {test}: skipped\n\
         *** ({why})\n\
         *** install {packages} to run it\n\
         ************************************************************\n"
    );
    false
}

/// Polls `f` until it returns `Some` (bounded).
pub(crate) fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Form encoding
// ---------------------------------------------------------------------------

/// Percent-encodes every byte except `A-Z a-z 0-9 - . _ ~` (space as `%20`).
pub(crate) fn enc(s: &str) -> String {
    enc_bytes(s.as_bytes())
}

pub(crate) fn enc_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() * 3);
    for &c in b {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            let _ = write!(out, "%{c:02X}");
        }
    }
    out
}

/// `k1=v1&k2=v2`, both sides percent-encoded.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

// ---------------------------------------------------------------------------
// HTTP/1.1 client
// ---------------------------------------------------------------------------

/// A parsed HTTP response.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) reason: String,
    /// Header names lower-cased, in arrival order.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts status, exact `Content-Type` and exact body.
    #[track_caller]
    pub(crate) fn assert(&self, status: u16, content_type: &str, body: &str) {
        assert_eq!(
            (
                self.status,
                self.header("content-type"),
                self.text().as_str()
            ),
            (status, Some(content_type), body),
            "full response: {self}"
        );
        assert_eq!(self.body, body.as_bytes(), "body bytes");
    }

    /// Asserts `400 application/json {"status":"error","error":"<reason>"}`.
    #[track_caller]
    pub(crate) fn assert_400(&self, reason: &str) {
        self.assert(400, "application/json", &error_body(reason));
    }

    /// Asserts `200 application/json <body>`.
    #[track_caller]
    pub(crate) fn assert_json(&self, body: &str) {
        self.assert(200, "application/json", body);
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "HTTP/1.1 {} {}", self.status, self.reason)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        let t = self.text();
        if t.len() > 2000 {
            let mut cut = 2000;
            while !t.is_char_boundary(cut) {
                cut -= 1;
            }
            write!(f, "\n{}… ({} bytes)", &t[..cut], t.len())
        } else {
            write!(f, "\n{t}")
        }
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Builds the bytes of a request with `Connection: close`.
pub(crate) fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    request_bytes_with(addr, method, path, headers, body, true)
}

/// Builds the bytes of a request; `close` adds `Connection: close`.
pub(crate) fn request_bytes_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if close {
        head.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    let chunked = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
    if !chunked && (!body.is_empty() || method == "POST" || method == "PUT") {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One request on a fresh connection; panics on any I/O error.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_http(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub(crate) fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let raw = request_bytes(addr, method, path, headers, body);
    let mut conn = Conn::open(addr)?;
    conn.write(&raw)?;
    conn.read_response(method == "HEAD")
}

/// Sends raw bytes on a fresh connection and reads one response.
pub(crate) fn raw(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<Response> {
    let mut conn = Conn::open(addr)?;
    conn.write(bytes)?;
    conn.read_response(false)
}

/// A client connection kept open by the test (long-polls, connection caps).
pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub(crate) fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s),
        })
    }

    /// A connection whose receive buffer (and so its TCP window) is a few KiB,
    /// fixed: a client that reads slowly, or not at all, backs up at once.
    pub(crate) fn open_small_window(addr: SocketAddr) -> std::io::Result<Conn> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        sock.set_recv_buffer_size(4096)?;
        sock.connect_timeout(&addr.into(), Duration::from_secs(5))?;
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s),
        })
    }

    pub(crate) fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub(crate) fn set_read_timeout(&self, t: Duration) {
        self.stream().set_read_timeout(Some(t)).unwrap();
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut s = self.reader.get_ref();
        s.write_all(bytes)?;
        s.flush()
    }

    /// Sends a GET with `Connection: close`.
    pub(crate) fn send_get(&mut self, addr: SocketAddr, path: &str) -> std::io::Result<()> {
        let raw = request_bytes(addr, "GET", path, &[], b"");
        self.write(&raw)
    }

    pub(crate) fn read_response(&mut self, head_only: bool) -> std::io::Result<Response> {
        read_response(&mut self.reader, head_only)
    }

    /// Closes with a reset (RST), as a browser or an OS does when it drops a
    /// connection on the floor. A plain close sends a FIN, which on TCP looks
    /// like a half-close: the server keeps the request until it is answered.
    pub(crate) fn reset(self) {
        let s = self.reader.into_inner();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(s);
    }

    /// Shuts the write side (FIN), as `nc -N` does after its request.
    pub(crate) fn half_close(&self) {
        self.stream()
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown(Write)");
    }
}

fn bad(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.read_until(b'\n', &mut buf)?;
    if buf.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a complete response",
        ));
    }
    if !buf.ends_with(b"\r\n") {
        return Err(bad(format!(
            "line not ended by CRLF: {:?}",
            String::from_utf8_lossy(&buf)
        )));
    }
    buf.truncate(buf.len() - 2);
    String::from_utf8(buf).map_err(|e| bad(format!("non-UTF-8 header line: {e}")))
}

/// Reads one response: status line, headers, body by chunked coding, Content-Length
/// or to EOF.
pub(crate) fn read_response(r: &mut impl BufRead, head_only: bool) -> std::io::Result<Response> {
    let status_line = read_line(r)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(bad(format!("bad status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let reason = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if head_only || status / 100 == 1 || status == 204 || status == 304 {
        // no body
    } else if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let size_line = read_line(r)?;
            let size_hex = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| bad(format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // trailers until the empty line
                while !read_line(r)?.is_empty() {}
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            if !read_line(r)?.is_empty() {
                return Err(bad("chunk not followed by CRLF".into()));
            }
        }
    } else if let Some(len) = find("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        reason,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------
// Parsing the JSON the endpoints answer (exactly the shapes PHP's json_encode writes)
// ---------------------------------------------------------------------------

/// One element of a `listenToRecive.php` answer, strings JSON-decoded (so still
/// HTML-escaped, as the server sent them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Msg {
    pub(crate) id: i64,
    pub(crate) user: String,
    pub(crate) message: String,
    pub(crate) time: String,
}

/// Parses a listen answer strictly: no white space, keys `id,user,message,time` in
/// that order, `id` a bare number. Panics with the body on any deviation.
pub(crate) fn parse_messages(r: &Response) -> Vec<Msg> {
    assert_eq!(r.status, 200, "listen: {r}");
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "listen: {r}"
    );
    let mut p = JsonParser {
        s: &r.body,
        i: 0,
        ctx: r,
    };
    let mut out = Vec::new();
    p.expect(b"[");
    if !p.eat(b"]") {
        loop {
            p.expect(b"{\"id\":");
            let id = p.number();
            p.expect(b",\"user\":");
            let user = p.string();
            p.expect(b",\"message\":");
            let message = p.string();
            p.expect(b",\"time\":");
            let time = p.string();
            p.expect(b"}");
            out.push(Msg {
                id,
                user,
                message,
                time,
            });
            if p.eat(b"]") {
                break;
            }
            p.expect(b",");
        }
    }
    p.end();
    out
}

/// Parses a JSON array of strings (an `isTyping.php` answer).
pub(crate) fn parse_string_array(r: &Response) -> Vec<String> {
    let mut p = JsonParser {
        s: &r.body,
        i: 0,
        ctx: r,
    };
    let mut out = Vec::new();
    p.expect(b"[");
    if !p.eat(b"]") {
        loop {
            out.push(p.string());
            if p.eat(b"]") {
                break;
            }
            p.expect(b",");
        }
    }
    p.end();
    out
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
    ctx: &'a Response,
}

impl JsonParser<'_> {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what} at byte {} of the body; response: {}",
            self.i, self.ctx
        )
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, lit: &[u8]) {
        if !self.eat(lit) {
            self.fail(&format!("expected {:?}", String::from_utf8_lossy(lit)));
        }
    }

    fn end(&self) {
        if self.i != self.s.len() {
            self.fail("trailing bytes");
        }
    }

    fn number(&mut self) -> i64 {
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| self.fail("expected a number"))
    }

    fn hex4(&mut self) -> u32 {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .unwrap_or_else(|| self.fail("short \\u escape"));
        // json_encode writes lower-case hex digits.
        if !h
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            self.fail("\\u escape not in lower-case hex");
        }
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap()
    }

    fn string(&mut self) -> String {
        self.expect(b"\"");
        let mut out = String::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                self.fail("unterminated string")
            };
            self.i += 1;
            match b {
                b'"' => return out,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        self.fail("unterminated escape")
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let u = self.hex4();
                            let c = if (0xd800..0xdc00).contains(&u) {
                                self.expect(b"\\u");
                                let l = self.hex4();
                                if !(0xdc00..0xe000).contains(&l) {
                                    self.fail("lone high surrogate");
                                }
                                char::from_u32(0x10000 + ((u - 0xd800) << 10) + (l - 0xdc00))
                            } else {
                                char::from_u32(u)
                            };
                            out.push(c.unwrap_or_else(|| self.fail("bad \\u escape")));
                        }
                        _ => self.fail("unknown escape"),
                    }
                }
                // json_encode's default flags: no raw '/', no raw non-ASCII, no raw controls.
                b'/' => self.fail("unescaped '/' (json_encode writes \\/)"),
                0x80.. => self.fail("raw non-ASCII byte (json_encode writes \\uXXXX)"),
                0..0x20 => self.fail("raw control character"),
                _ => out.push(b as char),
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS`, checked byte by byte.
#[track_caller]
pub(crate) fn assert_time_shape(t: &str) {
    let ok = t.len() == 19
        && t.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    assert!(ok, "time {t:?} is not shaped like 2026-11-25 18:03:15");
}

/// `created_at` (unix seconds) rendered as PHP's `date('Y-m-d H:i:s')` in `tz`.
pub(crate) fn php_date(unix: i64, tz: &str) -> String {
    let tz = jiff::tz::TimeZone::get(tz).expect("time zone");
    jiff::Timestamp::from_second(unix)
        .expect("timestamp")
        .to_zoned_datetime(tz)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Unix seconds now.
pub(crate) fn now_secs() -> i64 {
    now_ms() / 1000
}

/// A JSON object of one message as json_encode writes it (strings given already
/// encoded).
pub(crate) fn msg_json(id: i64, user_json: &str, message_json: &str, time: &str) -> String {
    format!(r#"{{"id":{id},"user":"{user_json}","message":"{message_json}","time":"{time}"}}"#)
}

/// Follows `lastId` from `start` until `want` messages arrived or the deadline passed.
pub(crate) fn follow(
    addr: std::net::SocketAddr,
    start: i64,
    want: usize,
    deadline: std::time::Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Msg> {
    let mut got = Vec::new();
    let mut last = start;
    while got.len() < want
        && std::time::Instant::now() < deadline
        && !stop.load(std::sync::atomic::Ordering::Relaxed)
    {
        let r = http(
            addr,
            "GET",
            &format!("/listenToRecive.php?lastId={last}"),
            &[],
            b"",
        );
        let batch = parse_messages(&r);
        assert!(
            batch.len() <= 100,
            "a follow answered {} messages",
            batch.len()
        );
        if let Some(m) = batch.last() {
            last = m.id;
        }
        got.extend(batch);
    }
    got
}
