//! The legacy PHP app under PHP's built-in web server (`php -S`), for tests that
//! compare it with cometa: a fresh database migrated by the `cometa` binary, a free
//! port on 127.0.0.1, a bounded wait for readiness, and the whole process group
//! (the server and its `PHP_CLI_SERVER_WORKERS` children) killed on drop.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::stack::kill_group;
use super::try_http;

/// How long `php -S` may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports are tried when `php -S` cannot bind the one picked.
const BIND_ATTEMPTS: usize = 5;
/// Worker processes of the built-in server: a held poll occupies one.
const WORKERS: &str = "8";

/// `legacy_php/public`, the PHP app's web root.
pub(crate) fn web_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("legacy_php/public")
}

/// Why PHP cannot run the legacy app here, if it cannot: `php` missing, or
/// without `pdo_sqlite` / `mbstring`.
pub(crate) fn php_unavailable() -> Option<String> {
    let out = Command::new("php")
        .args([
            "-r",
            "foreach (['pdo_sqlite', 'mbstring'] as $e) { if (!extension_loaded($e)) { echo \"$e \"; } }",
        ])
        .stdin(Stdio::null())
        .output();
    match out {
        Err(e) => Some(format!("php not installed ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "php does not run: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )),
        Ok(o) if !o.stdout.is_empty() => Some(format!(
            "php lacks the extensions: {}",
            String::from_utf8_lossy(&o.stdout).trim()
        )),
        Ok(_) => None,
    }
}

/// Whether a test that needs PHP can run. Without PHP: under `CI=true` the test
/// fails with the reason; otherwise it says loudly on stderr that it is skipped and
/// the caller returns.
pub(crate) fn php_or_skip(test: &str) -> bool {
    super::tool_or_skip(test, php_unavailable(), "php-cli php-sqlite3 php-mbstring")
}

/// Creates the classic schema in a new database file with `cometa migrate --db PATH`.
pub(crate) fn migrate(db: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_cometa"))
        .arg("migrate")
        .arg("--db")
        .arg(db)
        .env_remove("CHAT_DB")
        .stdin(Stdio::null())
        .output()
        .expect("run cometa migrate");
    assert!(
        out.status.success(),
        "cometa migrate --db {} failed: {:?}\n{}",
        db.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `php -S` serving `legacy_php/public` on a fresh database.
pub(crate) struct PhpServer {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    pub(crate) db: PathBuf,
    pub(crate) log: PathBuf,
    _dir: tempfile::TempDir,
}

impl PhpServer {
    /// Starts the app with `CHAT_HOLD=hold` and `date.timezone=timezone`.
    pub(crate) fn start(hold: &str, timezone: &str) -> PhpServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("chat.sqlite");
        migrate(&db);
        PhpServer::start_in(dir, db, hold, timezone)
    }

    /// Starts the app on an existing, migrated database (say, one cometa serves
    /// at the same time); its log goes to a temporary folder of its own.
    pub(crate) fn start_on(db: &Path, hold: &str, timezone: &str) -> PhpServer {
        let dir = tempfile::tempdir().expect("tempdir");
        PhpServer::start_in(dir, db.to_owned(), hold, timezone)
    }

    /// Starts another app (web root `root`, say `legacy_php/omegle/public`) on an
    /// existing database that already has that app's schema.
    pub(crate) fn start_app(root: &Path, db: &Path) -> PhpServer {
        let dir = tempfile::tempdir().expect("tempdir");
        PhpServer::start_root(root, dir, db.to_owned(), "25", "UTC")
    }

    fn start_in(dir: tempfile::TempDir, db: PathBuf, hold: &str, timezone: &str) -> PhpServer {
        PhpServer::start_root(&web_root(), dir, db, hold, timezone)
    }

    fn start_root(
        root: &Path,
        dir: tempfile::TempDir,
        db: PathBuf,
        hold: &str,
        timezone: &str,
    ) -> PhpServer {
        let index = std::fs::read(root.join("index.html")).expect("read index.html");
        let mut failures = String::new();
        for attempt in 1..=BIND_ATTEMPTS {
            let log = dir.path().join(format!("php{attempt}.log"));
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut child = spawn(root, addr, &db, &log, hold, timezone);
            match wait_ready(&mut child, addr, &index) {
                Ok(()) => {
                    return PhpServer {
                        child: Some(child),
                        addr,
                        db,
                        log,
                        _dir: dir,
                    };
                }
                Err(why) => {
                    kill_group(child);
                    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                    failures.push_str(&format!("attempt {attempt} on {addr}: {why}\n{log_text}\n"));
                    // Only a port taken in the meantime is worth another try.
                    if !log_text.contains("Failed to listen") {
                        break;
                    }
                }
            }
        }
        panic!("php -S did not start:\n{failures}");
    }

    /// The tail of the server's log (one line per request, PHP's errors).
    pub(crate) fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// `php -S addr -t root` in its own process group, output to `log`.
fn spawn(
    root: &Path,
    addr: SocketAddr,
    db: &Path,
    log: &Path,
    hold: &str,
    timezone: &str,
) -> Child {
    let out = std::fs::File::create(log).expect("php log file");
    let err = out.try_clone().expect("php log file");
    Command::new("php")
        .arg("-d")
        .arg(format!("date.timezone={timezone}"))
        .arg("-S")
        .arg(addr.to_string())
        .arg("-t")
        .arg(root)
        .env("PHP_CLI_SERVER_WORKERS", WORKERS)
        .env("CHAT_DB", db)
        .env("CHAT_HOLD", hold)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        // Its own process group, so that one signal reaches the workers too.
        .process_group(0)
        .spawn()
        .expect("spawn php -S")
}

/// Waits (bounded) until the server answers `GET /index.html` with the file.
fn wait_ready(child: &mut Child, addr: SocketAddr, index: &[u8]) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("php exited: {st:?}"));
        }
        match try_http(addr, "GET", "/index.html", &[], b"") {
            Ok(r) if r.status == 200 && r.body == index => return Ok(()),
            Ok(r) => return Err(format!("unexpected answer to GET /index.html:\n{r}")),
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(25)),
            Err(e) => return Err(format!("not ready within {START_TIMEOUT:?}: {e}")),
        }
    }
}

impl Drop for PhpServer {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- php -S log ({}) ---\n{}",
                self.log.display(),
                self.log_tail()
            );
        }
        if let Some(child) = self.child.take() {
            kill_group(child);
        }
    }
}
