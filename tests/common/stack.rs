//! The mixed deployment for tests: Debian's nginx and php-fpm plus cometa, all on
//! loopback, each with its own configuration in a temporary directory.
//!
//! The nginx site and the php-fpm pool are rendered from the files an operator
//! installs (`deploy/nginx-cometa.conf`, `deploy/php-fpm-pool.conf`), by filling
//! in their `@NAME@` placeholders; only the main `nginx.conf` and the `[global]`
//! section of php-fpm, which Debian provides on a real machine, are the test's own.
//!
//! The site is rendered twice, on two ports:
//! - `site`: as deployed, `listenToRecive.php` to cometa, every other endpoint to
//!   php-fpm;
//! - `inverse`: `sendMessage.php`, `isTyping.php` and `getNumberOfUsers.php` to
//!   cometa, `listenToRecive.php` to php-fpm (the legacy long-poll).
//!
//! The test's `http` block adds `X-Upstream: $upstream_addr` to every answer, so
//! that a test can tell which back end answered (the php-fpm socket or cometa's).
//! cometa listens on a unix socket, php-fpm too. Every process runs in its own
//! process group, killed on drop; every wait is bounded; the logs are printed when
//! the test panics.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::php::{migrate, web_root};
use super::{Response, try_http};

/// How long each part may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How many times nginx is started on fresh ports when a picked port was taken.
const BIND_ATTEMPTS: usize = 5;
/// The endpoints cometa answers in the deployed site (the first switch-over step).
pub(crate) const SITE_COMETA: &str = "listenToRecive";
/// The endpoints cometa answers in the inverse site.
pub(crate) const INVERSE_COMETA: &str = "sendMessage|isTyping|getNumberOfUsers";

/// `deploy/<name>` in the repository.
pub(crate) fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

/// Replaces every `@NAME@` of `template` by its value; panics if a placeholder of
/// the template has no value or a value names no placeholder.
pub(crate) fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        let key = format!("@{name}@");
        assert!(out.contains(&key), "the template has no placeholder {key}");
        out = out.replace(&key, value);
    }
    if let Some(left) = placeholder_in(&out) {
        panic!("placeholder {left} left unfilled in the rendered template");
    }
    out
}

/// The first `@NAME@` (upper case, digits, `_`) in `s`.
fn placeholder_in(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(at) = s[i..].find('@') {
        let start = i + at;
        let mut j = start + 1;
        while j < b.len() && (b[j].is_ascii_uppercase() || b[j].is_ascii_digit() || b[j] == b'_') {
            j += 1;
        }
        if j > start + 1 && j < b.len() && b[j] == b'@' {
            return Some(s[start..=j].to_string());
        }
        i = start + 1;
    }
    None
}

/// `nginx` and `php-fpm8.2`: on PATH or in /usr/sbin (Debian's places).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Why the mixed deployment cannot run here, if it cannot.
pub(crate) fn stack_unavailable() -> Option<String> {
    if let Some(why) = super::php::php_unavailable() {
        return Some(why);
    }
    let Some(nginx) = tool("nginx") else {
        return Some("nginx not installed (apt-get install nginx)".into());
    };
    let Some(fpm) = tool("php-fpm8.2") else {
        return Some("php-fpm8.2 not installed (apt-get install php-fpm)".into());
    };
    match Command::new(&nginx).arg("-v").stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => {}
        other => return Some(format!("{} -v does not run: {other:?}", nginx.display())),
    }
    match Command::new(&fpm).arg("-m").stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => {
            let mods = String::from_utf8_lossy(&o.stdout).to_ascii_lowercase();
            let missing: Vec<&str> = ["pdo_sqlite", "mbstring"]
                .into_iter()
                .filter(|m| !mods.lines().any(|l| l.trim() == *m))
                .collect();
            if !missing.is_empty() {
                return Some(format!("php-fpm8.2 lacks the extensions {missing:?}"));
            }
        }
        other => return Some(format!("{} -m does not run: {other:?}", fpm.display())),
    }
    None
}

/// Whether a test that needs nginx and php-fpm can run. Without them: under
/// `CI=true` the test fails with the reason; otherwise it says loudly that it is
/// skipped and the caller returns.
pub(crate) fn stack_or_skip(test: &str) -> bool {
    super::tool_or_skip(
        test,
        stack_unavailable(),
        "nginx php-fpm php-sqlite3 php-mbstring",
    )
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn id(flag: &str) -> String {
    let out = Command::new("id")
        .arg(flag)
        .stdin(Stdio::null())
        .output()
        .expect("run id");
    assert!(out.status.success(), "id {flag}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Starts `cmd` in its own process group with stdout and stderr to `log`.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// SIGKILL to the child's process group (a child started with
/// `process_group(0)`, so the group id is its pid), and reap.
pub(crate) fn kill_group(mut child: Child) {
    signal_group(&child, "KILL");
    let _ = child.kill();
    let _ = child.wait();
}

/// `kill -SIG -- -PGID` to the child's process group.
pub(crate) fn signal_group(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{}", child.id()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// cometa behind the sites, on a unix socket.
struct Cometa {
    child: Child,
    log: PathBuf,
}

/// nginx + php-fpm + cometa on one database.
pub(crate) struct Stack {
    /// The deployed split: `listenToRecive.php` to cometa.
    pub(crate) site: SocketAddr,
    /// The inverse split: `listenToRecive.php` to php-fpm, the rest to cometa.
    pub(crate) inverse: SocketAddr,
    pub(crate) db: PathBuf,
    /// cometa's socket (what `X-Upstream` names for cometa's answers).
    pub(crate) cometa_sock: PathBuf,
    /// php-fpm's socket.
    pub(crate) fpm_sock: PathBuf,
    /// cometa's admin listener (stats, metrics, health), of the running cometa.
    pub(crate) cometa_admin: SocketAddr,
    hold: String,
    dir: PathBuf,
    nginx: Option<Child>,
    fpm: Option<Child>,
    cometa: Option<Cometa>,
    cometa_starts: usize,
    cometa_exited_logs: Vec<PathBuf>,
    /// The socket the test holds for cometa, as systemd's `cometa.socket`
    /// does, when started with [`Stack::start_socket_activated`].
    activation: Option<std::os::unix::net::UnixListener>,
    _tmp: tempfile::TempDir,
}

impl Stack {
    /// Starts php-fpm, cometa and nginx with `hold` seconds for both long-polls.
    pub(crate) fn start(hold: &str) -> Stack {
        Stack::start_with(hold, false)
    }

    /// As [`Stack::start`], but cometa's socket belongs to the test, which
    /// passes it to every cometa it starts (`LISTEN_FDS`), as systemd does
    /// with `deploy/cometa.socket`: the socket outlives each cometa.
    pub(crate) fn start_socket_activated(hold: &str) -> Stack {
        Stack::start_with(hold, true)
    }

    fn start_with(hold: &str, activated: bool) -> Stack {
        let tmp = tempfile::Builder::new()
            .prefix("cometa-mixed-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let db = dir.join("chat.sqlite");
        migrate(&db);
        let mut stack = Stack {
            site: SocketAddr::from(([127, 0, 0, 1], 0)),
            inverse: SocketAddr::from(([127, 0, 0, 1], 0)),
            db,
            cometa_sock: dir.join("cometa.sock"),
            fpm_sock: dir.join("php-fpm.sock"),
            cometa_admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            hold: hold.to_string(),
            dir,
            nginx: None,
            fpm: None,
            cometa: None,
            cometa_starts: 0,
            cometa_exited_logs: Vec::new(),
            activation: None,
            _tmp: tmp,
        };
        if activated {
            stack.activation = Some(
                std::os::unix::net::UnixListener::bind(&stack.cometa_sock)
                    .expect("bind cometa's socket"),
            );
        }
        stack.start_fpm();
        stack.start_cometa();
        stack.start_nginx();
        stack.wait_php_ready();
        stack
    }

    fn start_fpm(&mut self) {
        let root = is_root();
        let user = id("-un");
        let group = id("-gn");
        let pool = render(
            &std::fs::read_to_string(deploy_file("php-fpm-pool.conf")).expect("read pool"),
            &[
                ("USER", &user),
                ("GROUP", &group),
                ("POOL_LISTEN", self.fpm_sock.to_str().unwrap()),
                ("SOCKET_USER", &user),
                ("SOCKET_GROUP", &group),
                ("CHAT_DB", self.db.to_str().unwrap()),
                ("CHAT_HOLD", &self.hold),
                ("TIMEZONE", "UTC"),
            ],
        );
        let pool_path = self.dir.join("pool.conf");
        std::fs::write(&pool_path, pool).unwrap();
        let main = format!(
            "[global]\n\
             pid = {dir}/php-fpm.pid\n\
             error_log = {dir}/php-fpm.log\n\
             log_level = notice\n\
             daemonize = no\n\
             include = {pool}\n",
            dir = self.dir.display(),
            pool = pool_path.display()
        );
        let conf = self.dir.join("php-fpm.conf");
        std::fs::write(&conf, main).unwrap();
        let mut cmd = Command::new(tool("php-fpm8.2").expect("php-fpm8.2"));
        cmd.arg("-F").arg("-y").arg(&conf).arg("-p").arg(&self.dir);
        if root {
            // The pool runs as root here (the test's files are root's).
            cmd.arg("-R");
        }
        let mut child = spawn_logged(&mut cmd, &self.dir.join("php-fpm.out"));
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.fpm_sock.exists() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("php-fpm exited at start ({st:?})\n{}", self.fpm_logs());
            }
            if Instant::now() > deadline {
                kill_group(child);
                panic!(
                    "php-fpm made no socket within {START_TIMEOUT:?}\n{}",
                    self.fpm_logs()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.fpm = Some(child);
    }

    fn fpm_logs(&self) -> String {
        format!(
            "--- php-fpm log ---\n{}\n--- php-fpm stdout/stderr ---\n{}",
            tail(&self.dir.join("php-fpm.log"), 40),
            tail(&self.dir.join("php-fpm.out"), 20)
        )
    }

    /// Starts cometa on its socket and waits for its listening line.
    pub(crate) fn start_cometa(&mut self) {
        assert!(self.cometa.is_none(), "cometa is already running");
        let log = self.dir.join(format!("cometa{}.log", self.cometa_starts));
        self.cometa_starts += 1;
        let err = std::fs::File::create(&log).expect("cometa log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cometa"));
        cmd.arg("--listen")
            .arg(format!("unix:{}", self.cometa_sock.display()))
            .arg("--db")
            .arg(&self.db)
            .arg("--hold")
            .arg(&self.hold)
            .arg("--static-dir")
            .arg(web_root())
            .arg("--admin-listen")
            .arg("127.0.0.1:0")
            .env_remove("CHAT_DB")
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .process_group(0);
        if let Some(socket) = &self.activation {
            use command_fds::{CommandFdExt as _, FdMapping};
            let fd: std::os::fd::OwnedFd = socket.try_clone().expect("dup the socket").into();
            cmd.env("LISTEN_FDS", "1");
            cmd.fd_mappings(vec![FdMapping {
                parent_fd: fd,
                child_fd: 3,
            }])
            .expect("map fd 3");
        }
        let mut child = cmd.spawn().expect("spawn cometa");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            // The listening line, then the admin line.
            for _ in 0..2 {
                if let Some(Ok(line)) = lines.next() {
                    let _ = tx.send(line);
                }
            }
            // Keep draining, so that cometa never blocks on a full pipe.
            for _ in lines {}
        });
        let expected = format!("cometa listening on unix:{}", self.cometa_sock.display());
        let admin = match (
            rx.recv_timeout(START_TIMEOUT),
            rx.recv_timeout(START_TIMEOUT),
        ) {
            (Ok(line), Ok(admin)) if line == expected => admin
                .strip_prefix("cometa admin on http://")
                .and_then(|a| a.parse::<SocketAddr>().ok()),
            _ => None,
        };
        let Some(admin) = admin else {
            kill_group(child);
            panic!(
                "cometa: expected {expected:?} and its admin line on stdout\n--- cometa log ---\n{}",
                tail(&log, 40)
            );
        };
        self.cometa_admin = admin;
        self.cometa = Some(Cometa { child, log });
    }

    /// SIGTERM to cometa; waits (bounded) for a clean exit and returns its status.
    pub(crate) fn stop_cometa(&mut self) -> ExitStatus {
        let mut c = self.cometa.take().expect("cometa is not running");
        signal_group(&c.child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = c.child.try_wait().expect("try_wait") {
                // Its log stays for the failure report.
                self.cometa_exited_logs.push(c.log);
                return st;
            }
            if Instant::now() > deadline {
                let log = tail(&c.log, 40);
                kill_group(c.child);
                panic!("cometa did not exit within 10 s of SIGTERM\n--- cometa log ---\n{log}");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn start_nginx(&mut self) {
        let nginx = tool("nginx").expect("nginx");
        for f in ["mime.types", "fastcgi_params"] {
            std::fs::copy(Path::new("/etc/nginx").join(f), self.dir.join(f))
                .unwrap_or_else(|e| panic!("copy /etc/nginx/{f}: {e}"));
        }
        let template =
            std::fs::read_to_string(deploy_file("nginx-cometa.conf")).expect("read the site");
        let root = web_root();
        let cometa = format!("unix:{}", self.cometa_sock.display());
        let fpm = format!("unix:{}", self.fpm_sock.display());
        let mut failures = String::new();
        for attempt in 1..=BIND_ATTEMPTS {
            let site = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let inverse = SocketAddr::from(([127, 0, 0, 1], free_port()));
            for (name, addr, endpoints) in [
                ("site.conf", site, SITE_COMETA),
                ("inverse.conf", inverse, INVERSE_COMETA),
            ] {
                let text = render(
                    &template,
                    &[
                        ("LISTEN", &addr.to_string()),
                        ("SERVER_NAME", "localhost"),
                        ("ROOT", root.to_str().unwrap()),
                        ("PHP_FPM", &fpm),
                        ("COMETA", &cometa),
                        ("COMETA_ENDPOINTS", endpoints),
                    ],
                );
                std::fs::write(self.dir.join(name), text).unwrap();
            }
            let d = self.dir.display();
            let user = if is_root() { "user root;\n" } else { "" };
            let main = format!(
                "{user}worker_processes 1;\n\
                 pid {d}/nginx.pid;\n\
                 events {{ worker_connections 512; }}\n\
                 http {{\n\
                 \x20   include mime.types;\n\
                 \x20   default_type application/octet-stream;\n\
                 \x20   access_log {d}/nginx-access.log;\n\
                 \x20   client_body_temp_path {d}/nginx-body;\n\
                 \x20   proxy_temp_path {d}/nginx-proxy;\n\
                 \x20   fastcgi_temp_path {d}/nginx-fastcgi;\n\
                 \x20   uwsgi_temp_path {d}/nginx-uwsgi;\n\
                 \x20   scgi_temp_path {d}/nginx-scgi;\n\
                 \x20   sendfile on;\n\
                 \x20   # As Debian's nginx.conf, and JSON too: the site must switch it off for the poll.\n\
                 \x20   gzip on;\n\
                 \x20   gzip_types application/json;\n\
                 \x20   # Which back end answered (test only).\n\
                 \x20   add_header X-Upstream $upstream_addr always;\n\
                 \x20   include site.conf;\n\
                 \x20   include inverse.conf;\n\
                 }}\n"
            );
            let conf = self.dir.join("nginx.conf");
            std::fs::write(&conf, main).unwrap();
            let err_log = self.dir.join("nginx-error.log");
            let _ = std::fs::remove_file(&err_log);
            let mut cmd = Command::new(&nginx);
            cmd.arg("-p")
                .arg(format!("{d}/"))
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(&err_log)
                .arg("-g")
                .arg("daemon off;");
            let mut child = spawn_logged(&mut cmd, &self.dir.join("nginx.out"));
            match wait_nginx(&mut child, &[site, inverse]) {
                Ok(()) => {
                    self.site = site;
                    self.inverse = inverse;
                    self.nginx = Some(child);
                    return;
                }
                Err(why) => {
                    kill_group(child);
                    let log = format!(
                        "{}\n{}",
                        tail(&err_log, 20),
                        tail(&self.dir.join("nginx.out"), 20)
                    );
                    failures.push_str(&format!("attempt {attempt}: {why}\n{log}\n"));
                    if !log.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("nginx did not start:\n{failures}");
    }

    /// Waits (bounded) until php-fpm answers through nginx.
    fn wait_php_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match try_http(self.site, "GET", "/getNumberOfUsers.php", &[], b"") {
                Ok(r) if r.status == 200 && r.text() == "0" => return,
                Ok(r) if Instant::now() > deadline => {
                    panic!("php-fpm not ready through nginx: {r}\n{}", self.logs())
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("php-fpm not ready through nginx: {e}\n{}", self.logs())
                }
                _ => thread::sleep(Duration::from_millis(25)),
            }
        }
    }

    /// Whether cometa is running.
    pub(crate) fn cometa_running(&self) -> bool {
        self.cometa.is_some()
    }

    /// The tails of every log of the stack.
    pub(crate) fn logs(&self) -> String {
        let mut s = String::new();
        let mut cometa_logs = self.cometa_exited_logs.clone();
        if let Some(c) = &self.cometa {
            cometa_logs.push(c.log.clone());
        }
        for log in cometa_logs {
            s.push_str(&format!("--- {} ---\n{}\n", log.display(), tail(&log, 40)));
        }
        s.push_str(&self.fpm_logs());
        for f in ["nginx-error.log", "nginx-access.log", "nginx.out"] {
            s.push_str(&format!("\n--- {f} ---\n{}", tail(&self.dir.join(f), 40)));
        }
        s
    }
}

/// Waits (bounded) until nginx serves `index.html` on every address.
fn wait_nginx(child: &mut Child, addrs: &[SocketAddr]) -> Result<(), String> {
    let index = std::fs::read(web_root().join("index.html")).expect("read index.html");
    let deadline = Instant::now() + START_TIMEOUT;
    for &addr in addrs {
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("nginx exited: {st:?}"));
            }
            match try_http(addr, "GET", "/index.html", &[], b"") {
                Ok(r) if r.status == 200 && r.body == index => break,
                Ok(r) => {
                    return Err(format!(
                        "unexpected answer to GET /index.html on {addr}:\n{r}"
                    ));
                }
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("{addr} not ready within {START_TIMEOUT:?}: {e}")),
            }
        }
    }
    Ok(())
}

/// Which back end answered, from the test's `X-Upstream` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    Cometa,
    PhpFpm,
    /// nginx itself (static file, or no back end reached).
    Nginx,
}

impl Stack {
    /// The back end that answered `r`; panics on an unknown upstream.
    pub(crate) fn upstream(&self, r: &Response) -> Upstream {
        let v = r.header("x-upstream").unwrap_or("");
        if v.is_empty() {
            Upstream::Nginx
        } else if v == format!("unix:{}", self.cometa_sock.display()) {
            Upstream::Cometa
        } else if v == format!("unix:{}", self.fpm_sock.display()) {
            Upstream::PhpFpm
        } else {
            panic!("unknown X-Upstream {v:?} in {r}")
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "=== mixed stack logs ({}) ===\n{}",
                self.dir.display(),
                self.logs()
            );
        }
        if let Some(n) = self.nginx.take() {
            kill_group(n);
        }
        if let Some(c) = self.cometa.take() {
            kill_group(c.child);
        }
        if let Some(f) = self.fpm.take() {
            kill_group(f);
        }
    }
}
