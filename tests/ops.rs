//! Operations: what an operator reads and sends to a running cometa.
//!
//! - `/metrics` on the admin listener parses as Prometheus text and counts
//!   what was done; `/healthz` and `/readyz` answer (readiness fails while
//!   another process holds the database's write lock); `/_cometa/stats` is off
//!   the public listener unless asked for.
//! - `--log-format json`: every line is a JSON object; one access line per
//!   request with how its hold ended; no ANSI escapes in a log file.
//! - A log reader that never reads does not freeze the server (lines are
//!   dropped and counted); a flood of refused connections is one warning.
//! - Settings from `COMETA_*` variables and a `--config` file, in that order
//!   of precedence; `cometa check`; `--version`.
//! - SIGHUP reloads the log filter and keeps held polls; systemd hears
//!   READY=1 after the bind and STOPPING=1 at shutdown.

mod common;

use std::collections::HashMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Conn, Response, Server, form, http, parse_messages, wait_for};

// ---------------------------------------------------------------------------
// Prometheus text, parsed
// ---------------------------------------------------------------------------

/// One sample of the exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses the text format strictly enough to catch a broken exposition: every
/// sample belongs to a metric declared by `# TYPE` before it, labels are
/// `name="value"` pairs, values are numbers.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), HashMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = HashMap::new();
                for pair in split_labels(body) {
                    let (k, v) = pair.split_once('=').expect("label pair");
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("unquoted label in {line:?}"));
                    labels.insert(k.to_string(), v.to_string());
                }
                (name.to_string(), labels)
            }
        };
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains_key(*b)))
            .unwrap_or(&name);
        assert!(typed.contains_key(base), "{name} has no # TYPE line");
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// `a="x",b="y,z"` → the pairs (commas inside quotes kept).
fn split_labels(body: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in body.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The value of the sample `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn scrape(admin: SocketAddr) -> Vec<Sample> {
    let r = http(admin, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_exposition(&r.text())
}

fn admin(s: &Server) -> SocketAddr {
    s.admin.expect("started with .admin()")
}

/// Holds a long-poll on a connection of its own; the answer on join.
fn hold(s: &Server, last_id: i64) -> thread::JoinHandle<Response> {
    let addr = s.addr;
    thread::spawn(move || {
        http(
            addr,
            "GET",
            &format!("/listenToRecive.php?lastId={last_id}"),
            &[],
            b"",
        )
    })
}

// ---------------------------------------------------------------------------
// Metrics, health, stats
// ---------------------------------------------------------------------------

#[test]
fn metrics_are_scraped_and_count_what_was_done() {
    let s = Server::builder().admin().start();
    let first = s.send("ana", "one", "main");
    parse_messages(&s.listen(0, "main"));
    let poll = hold(&s, first);
    s.wait_waiters(1, Duration::from_secs(10));
    let m = scrape(admin(&s));
    assert_eq!(value(&m, "cometa_held_polls", &[]), Some(1.0));
    assert!(value(&m, "cometa_open_connections", &[]).unwrap() >= 1.0);
    let second = s.send("bea", "two", "main");
    let got = parse_messages(&poll.join().unwrap());
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [second]);

    let m = scrape(admin(&s));
    let requests = |route, status| {
        value(
            &m,
            "cometa_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/sendMessage.php", "200"), Some(2.0));
    assert_eq!(requests("/listenToRecive.php", "200"), Some(2.0));
    assert_eq!(
        value(&m, "cometa_holds_ended_total", &[("how", "answered")]),
        Some(1.0)
    );
    assert!(value(&m, "cometa_wakeups_total", &[]).unwrap() >= 1.0);
    assert!(value(&m, "cometa_answers_per_wakeup_count", &[]).unwrap() >= 1.0);
    assert!(value(&m, "cometa_wake_latency_seconds_count", &[]).unwrap() >= 1.0);
    assert!(value(&m, "cometa_store_commits_total", &[("result", "ok")]).unwrap() >= 2.0);
    assert!(value(&m, "cometa_store_batch_size_count", &[]).unwrap() >= 2.0);
    assert!(value(&m, "cometa_store_statements_total", &[]).unwrap() > 0.0);
    assert!(value(&m, "cometa_watcher_probes_total", &[]).is_some());
    assert_eq!(
        value(
            &m,
            "cometa_http_request_duration_seconds_bucket",
            &[("route", "/listenToRecive.php"), ("le", "+Inf")]
        ),
        Some(2.0)
    );
    let build = m
        .iter()
        .find(|s| s.name == "cometa_build_info")
        .expect("build info");
    assert_eq!(build.value, 1.0);
    assert_eq!(build.labels["version"], env!("CARGO_PKG_VERSION"));
    assert!(!build.labels["commit"].is_empty());

    // HEAD like GET without a body; other methods refused.
    let head = http(admin(&s), "HEAD", "/metrics", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(http(admin(&s), "POST", "/metrics", &[], b"").status, 405);
}

#[test]
fn health_answers_and_readiness_needs_a_writable_database() {
    let s = Server::builder().admin().start();
    let a = admin(&s);
    http(a, "GET", "/healthz", &[], b"").assert(200, "text/plain; charset=utf-8", "ok\n");
    http(a, "GET", "/readyz", &[], b"").assert(200, "text/plain; charset=utf-8", "ready\n");
    let head = http(a, "HEAD", "/readyz", &[], b"");
    assert_eq!((head.status, head.body.len()), (200, 0));

    // Another process holds the write lock: not ready, and says why.
    let db = s.db();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let r = http(a, "GET", "/readyz", &[], b"");
    assert_eq!(r.status, 503, "{r}");
    assert!(r.text().contains("store:"), "{r}");
    http(a, "GET", "/healthz", &[], b"").assert(200, "text/plain; charset=utf-8", "ok\n");
    db.execute_batch("ROLLBACK").unwrap();
    assert_eq!(http(a, "GET", "/readyz", &[], b"").status, 200);
}

#[test]
fn stats_leave_the_public_listener() {
    let s = Server::builder().no_public_stats().admin().start();
    assert_eq!(s.get("/_cometa/stats").status, 404);
    let r = http(admin(&s), "GET", "/_cometa/stats", &[], b"");
    assert_eq!(r.status, 200, "{r}");
    assert!(r.text().starts_with(r#"{"waiters":0,"#), "{r}");

    // The admin listener is never public.
    let out = Command::new(env!("CARGO_BIN_EXE_cometa"))
        .args(["--admin-listen", "0.0.0.0:0", "--listen", "127.0.0.1:0"])
        .arg("--db")
        .arg(s.dir.join("other.sqlite"))
        .env_remove("CHAT_DB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

/// The log's lines, each parsed as JSON (panics on a line that is not).
fn json_lines(s: &Server) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(&s.log).unwrap();
    assert!(!text.contains('\x1b'), "ANSI escapes in the log:\n{text}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn access_lines(s: &Server) -> Vec<serde_json::Value> {
    json_lines(s)
        .into_iter()
        .filter(|v| v["target"] == "cometa::access")
        .collect()
}

#[test]
fn json_logs_have_one_access_line_per_request() {
    let mut s = Server::builder()
        .hold("2")
        .arg("--log-format")
        .arg("json")
        .start();
    // Answered at once, with a request id passed through.
    let r = s.request(
        "GET",
        "/listenToRecive.php?lastId=0",
        &[("X-Request-Id", "req-42")],
        b"",
    );
    assert_eq!(r.status, 200);
    // Empty: the hold runs out.
    s.listen(1000, "main").assert_json("[]");
    // Client gone: the poll's connection closes while it is held.
    let mut gone = Conn::open(s.addr).unwrap();
    gone.send_get(s.addr, "/listenToRecive.php?lastId=2000")
        .unwrap();
    s.wait_waiters(1, Duration::from_secs(5));
    // A reset: a FIN alone is a half-close on TCP, and the poll would be kept.
    gone.reset();
    wait_for(Duration::from_secs(5), "the client_gone line", || {
        access_lines(&s)
            .iter()
            .any(|v| v["hold"] == "client_gone")
            .then_some(())
    });
    // Shutdown: a held poll answered at SIGTERM.
    let poll = hold(&s, 3000);
    s.wait_waiters(1, Duration::from_secs(5));
    s.stop();
    poll.join().unwrap().assert_json("[]");

    let lines = access_lines(&s);
    let polls: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["path"] == "/listenToRecive.php")
        .collect();
    let holds: Vec<&str> = polls.iter().map(|v| v["hold"].as_str().unwrap()).collect();
    assert_eq!(
        holds,
        ["-", "empty", "client_gone", "shutdown"],
        "{lines:#?}"
    );
    let first = polls[0];
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], 2);
    assert_eq!(first["route"], "/listenToRecive.php");
    assert_eq!(first["request_id"], "req-42");
    assert!(first["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(first["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(polls[2]["status"], 499);
    assert!(polls[1]["duration_ms"].as_f64().unwrap() >= 2000.0);
    assert_ne!(
        polls[1]["request_id"], polls[3]["request_id"],
        "generated ids differ"
    );
    // The start-up line goes through the same logger.
    assert!(json_lines(&s).iter().any(|v| v["message"] == "serving"));
}

#[test]
fn a_stalled_log_reader_never_freezes_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cometa"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--db")
        .arg(dir.path().join("chat.sqlite"))
        .env_remove("CHAT_DB")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Nobody ever reads this pipe: it fills after a few hundred lines.
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 256];
    while out.lines().count() < 2 {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "cometa exited: {out}");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let addr_after = |prefix: &str| -> SocketAddr {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in {out}"))
    };
    let public = addr_after("cometa listening on http://");
    let admin = addr_after("cometa admin on http://");
    let _stderr_never_read = child.stderr.take();
    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                for _ in 0..1500 {
                    let r = http(public, "GET", "/listenToRecive.php?lastId=0", &[], b"");
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "6000 requests took {:?}",
        started.elapsed()
    );
    let m = scrape(admin);
    let dropped = value(&m, "cometa_log_lines_dropped_total", &[]).unwrap();
    assert!(
        dropped > 0.0,
        "the pipe filled, so lines must have been dropped"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_flood_of_refused_connections_is_one_warning_and_counted() {
    let s = Server::builder()
        .admin()
        .arg("--max-connections")
        .arg("1")
        .start();
    let poll = hold(&s, 1000);
    s.wait_waiters(1, Duration::from_secs(5));
    for _ in 0..30 {
        let r = http(s.addr, "GET", "/listenToRecive.php?lastId=0", &[], b"");
        assert_eq!(r.status, 503, "{r}");
    }
    let m = scrape(admin(&s));
    assert_eq!(
        value(
            &m,
            "cometa_rejections_total",
            &[("reason", "connection_cap")]
        ),
        Some(30.0)
    );
    let log = std::fs::read_to_string(&s.log).unwrap();
    let warnings = log.matches("connection cap reached").count();
    assert_eq!(warnings, 1, "{log}");
    drop(poll);
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[test]
fn settings_come_from_flags_then_environment_then_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("cometa.toml");
    std::fs::write(
        &conf,
        "# cometa\nbase-path = \"/file\"\nmax-body = 100\nlog-format = \"json\"\n",
    )
    .unwrap();
    let s = Server::builder()
        .dir(dir.path())
        .arg("--config")
        .arg(conf.to_str().unwrap())
        .env("COMETA_BASE_PATH", "/env")
        .start();
    // The environment beats the file.
    assert_eq!(s.get("/env/listenToRecive.php?lastId=0").status, 200);
    assert_eq!(s.get("/file/listenToRecive.php?lastId=0").status, 404);
    // The file beats the default.
    let big = form(&[("user", "ana"), ("message", &"x".repeat(200))]);
    assert_eq!(s.post("/env/sendMessage.php", &big).status, 413);
    assert!(std::fs::read_to_string(&s.log).unwrap().starts_with('{'));
}

fn cometa(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cometa"));
    cmd.args(args).env_remove("CHAT_DB");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn check_validates_the_whole_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.sqlite");
    let db = db.to_str().unwrap();
    let stat = dir.path().to_str().unwrap();
    // `check --db` also prepares the profile's statements against the database.
    let (code, out) = cometa(&["migrate", "--db", db], &[]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = cometa(&["check", "--db", db, "--static-dir", stat], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("/listenToRecive.php") && out.ends_with("ok\n"),
        "{out}"
    );

    let (code, out) = cometa(
        &["check", "--db", db, "--static-dir", stat],
        &[("COMETA_HOLD", "45")],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("--client-timeout"), "{out}");

    let conf = dir.path().join("bad.toml");
    std::fs::write(&conf, "hold = 20\nmax_conections = 5\n").unwrap();
    let (code, out) = cometa(&["check", "--config", conf.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("bad.toml:2: unknown key `max_conections`"),
        "{out}"
    );

    // The server refuses what check refuses, naming the folder.
    let (code, out) = cometa(
        &[
            "--listen",
            "127.0.0.1:0",
            "--db",
            "/proc/version/chat.sqlite",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("/proc/version is not a folder"), "{out}");
}

#[test]
fn an_address_in_use_is_refused_before_the_database_is_touched() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new").join("chat.sqlite");
    let (code, out) = cometa(&["--listen", &addr, "--db", db.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot listen"), "{out}");
    assert!(
        !db.exists(),
        "the database was created before the bind failed"
    );
}

#[test]
fn a_new_database_is_group_writable_under_the_units_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("chat.sqlite");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 0007 && exec {} migrate --db {}",
            env!("CARGO_BIN_EXE_cometa"),
            db.display()
        ))
        .env_remove("CHAT_DB")
        .status()
        .unwrap();
    assert!(st.success());
    // SQLite alone would make it 0640: read-only for php-fpm's group.
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "{mode:o}");
}

#[test]
fn version_names_the_commit_and_build_date() {
    let (code, out) = cometa(&["--version"], &[]);
    assert_eq!(code, Some(0));
    let line = out.trim();
    assert!(
        line.starts_with(&format!("cometa {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(line.contains(", built 20"), "{line}");
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

#[test]
fn sighup_reloads_the_log_filter_and_keeps_held_polls() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("cometa.toml");
    std::fs::write(&conf, "log-level = \"info\"\n").unwrap();
    let mut s = Server::builder()
        .dir(dir.path())
        .hold("20")
        .arg("--config")
        .arg(conf.to_str().unwrap())
        .start();
    let first = s.send("ana", "one", "main");
    let poll = hold(&s, first);
    s.wait_waiters(1, Duration::from_secs(5));

    std::fs::write(&conf, "log-level = \"cometa=debug,info\"\n").unwrap();
    s.signal("HUP");
    let log_path = s.log.clone();
    let log = || std::fs::read_to_string(&log_path).unwrap();
    wait_for(Duration::from_secs(5), "the reload line", || {
        log().contains("SIGHUP: log filter reloaded").then_some(())
    });
    assert!(log().contains("cometa=debug,info"), "{}", log());
    // A broken file is refused; the server keeps serving.
    std::fs::write(&conf, "log-levle = \"debug\"\n").unwrap();
    s.signal("HUP");
    wait_for(Duration::from_secs(5), "the refusal line", || {
        log()
            .contains("SIGHUP: configuration not reloaded")
            .then_some(())
    });
    assert!(
        s.wait_exit(Duration::from_millis(100)).is_none(),
        "SIGHUP killed it"
    );
    assert_eq!(s.stats().0, 1, "the held poll is still held");

    let second = s.send("bea", "two", "main");
    let got = parse_messages(&poll.join().unwrap());
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [second]);
    assert!(!log().contains('\x1b'), "ANSI escapes in a log file");
    s.stop();
}

#[test]
fn sighup_reloads_the_profile_and_keeps_held_polls() {
    let dir = tempfile::tempdir().unwrap();
    let classic = include_str!("../profiles/classic.toml");
    std::fs::write(
        dir.path().join("classic.schema.sql"),
        include_str!("../profiles/classic.schema.sql"),
    )
    .unwrap();
    let profile = dir.path().join("chat.toml");
    std::fs::write(&profile, classic).unwrap();
    let mut s = Server::builder()
        .dir(dir.path())
        .hold("20")
        .arg("--profile")
        .arg(profile.to_str().unwrap())
        .start();
    let first = s.send("ana", "one", "main");
    let poll = hold(&s, first);
    s.wait_waiters(1, Duration::from_secs(5));
    s.get("/getNumberOfUsers.php")
        .assert(200, "text/html; charset=UTF-8", "1");

    // The operator changes an answer of the profile and reloads.
    let edited = classic.replacen(
        "body = \"{{ online[0].n }}\"",
        "body = \"n={{ online[0].n }}\"",
        1,
    );
    assert_ne!(edited, classic);
    std::fs::write(&profile, edited).unwrap();
    s.signal("HUP");
    let log_path = s.log.clone();
    let log = || std::fs::read_to_string(&log_path).unwrap();
    wait_for(Duration::from_secs(10), "the profile reload line", || {
        log().contains("SIGHUP: profile reloaded").then_some(())
    });
    s.get("/getNumberOfUsers.php")
        .assert(200, "text/html; charset=UTF-8", "n=1");
    // A broken profile is refused; the last good one keeps serving.
    std::fs::write(&profile, "[[route]]\npaht = 1\n").unwrap();
    s.signal("HUP");
    wait_for(Duration::from_secs(10), "the refusal line", || {
        log().contains("SIGHUP: profile not reloaded").then_some(())
    });
    s.get("/getNumberOfUsers.php")
        .assert(200, "text/html; charset=UTF-8", "n=1");
    // The poll held across both reloads still gets its message.
    assert_eq!(s.stats().0, 1, "the held poll is still held");
    let second = s.send("bea", "two", "main");
    let got = parse_messages(&poll.join().unwrap());
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [second]);
    s.stop();
}

#[test]
fn systemd_hears_ready_after_the_bind_and_stopping_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut s = Server::builder()
        .env("NOTIFY_SOCKET", sock_path.to_str().unwrap())
        .start();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("READY within 10 s");
    let ready = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Ready means serving.
    assert_eq!(s.listen(0, "main").status, 200);
    s.stop();
    let n = sock.recv(&mut buf).expect("STOPPING");
    let stopping = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}
