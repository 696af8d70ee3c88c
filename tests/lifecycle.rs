//! Process lifecycle: the listening line, `migrate`, `CHAT_DB`, restarts, SIGKILL
//! durability, SIGTERM/SIGINT shutdown, and the stats endpoint.

mod common;

use common::{Conn, Server, counts, open_db, parse_messages, php_date};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const SCHEMA: &str = include_str!("../profiles/classic.schema.sql");

fn run_migrate(args: &[&str], envs: &[(&str, &Path)]) -> std::process::ExitStatus {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cometa"));
    cmd.arg("migrate").args(args).env_remove("CHAT_DB");
    cmd.stdout(Stdio::from(log.reopen().unwrap()));
    cmd.stderr(Stdio::from(log.reopen().unwrap()));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn cometa migrate");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            if !st.success() {
                eprintln!(
                    "--- cometa migrate output ---\n{}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                );
            }
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cometa migrate did not exit within 10 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn schema_objects(db: &Path) -> Vec<(String, String)> {
    open_db(db)
        .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn assert_schema(db: &Path) {
    let objs = schema_objects(db);
    for (ty, name) in [
        ("table", "messages"),
        ("table", "presence"),
        ("table", "typing"),
        ("index", "messages_room_id"),
    ] {
        assert!(
            objs.iter().any(|(t, n)| t == ty && n == name),
            "{ty} {name} missing; schema has {objs:?}"
        );
    }
    // Columns as the PHP side expects them.
    let c = open_db(db);
    c.execute(
        "INSERT INTO messages (room, user, message, created_at) VALUES ('r', 'u', 'm', 1)",
        [],
    )
    .unwrap();
    c.execute(
        "INSERT INTO presence (room, user, seen_ms) VALUES ('r', 'u', 1)",
        [],
    )
    .unwrap();
    c.execute(
        "INSERT INTO typing (room, user, set_ms) VALUES ('r', 'u', 1)",
        [],
    )
    .unwrap();
    c.execute("DELETE FROM messages", []).unwrap();
    c.execute("DELETE FROM presence", []).unwrap();
    c.execute("DELETE FROM typing", []).unwrap();
}

#[test]
fn prints_exactly_one_listening_line_and_exits_0_on_sigterm() {
    let mut s = Server::start();
    let expected = format!("cometa listening on http://127.0.0.1:{}\n", s.addr.port());
    assert_eq!(s.stdout(), expected);
    s.get("/getNumberOfUsers.php")
        .assert(200, "text/html; charset=UTF-8", "0");
    s.stop();
    assert_eq!(
        s.stdout(),
        expected,
        "stdout must hold the listening line only"
    );
}

#[test]
fn stats_endpoint() {
    // The brief gives `{"waiters":0,"connections":1}` as the shape: these two fields
    // first, in this order; further fields are allowed after them.
    let s = Server::start();
    let r = s.get("/_cometa/stats");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r}");
    let t = r.text();
    assert!(
        t == r#"{"waiters":0,"connections":1}"#
            || t.starts_with(r#"{"waiters":0,"connections":1,""#) && t.ends_with('}'),
        "stats of an idle server (this request is its only connection): {t}"
    );
}

#[test]
fn migrate_creates_the_schema_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.sqlite");
    let st = run_migrate(&["--db", db.to_str().unwrap()], &[]);
    assert!(st.success(), "migrate: {st:?}");
    assert_schema(&db);
    let st = run_migrate(&["--db", db.to_str().unwrap()], &[]);
    assert!(st.success(), "second migrate: {st:?}");
    assert_schema(&db);
}

#[test]
fn migrate_reads_chat_db() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.sqlite");
    let st = run_migrate(&[], &[("CHAT_DB", &db)]);
    assert!(st.success(), "migrate with CHAT_DB: {st:?}");
    assert_schema(&db);
}

#[test]
fn server_reads_chat_db() {
    let s = Server::builder().db_via_env().start();
    assert_eq!(s.send("ana", "via env", "main"), 1);
    let m: String = open_db(&s.db)
        .query_row("SELECT message FROM messages WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(m, "via env");
}

#[test]
fn starts_on_a_database_the_php_app_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.sqlite");
    {
        let c = open_db(&db);
        c.execute_batch(SCHEMA).unwrap();
        c.execute(
            "INSERT INTO messages (room, user, message, created_at) VALUES ('main', 'old', 'from php', 1764093795)",
            [],
        )
        .unwrap();
    }
    let st = run_migrate(&["--db", db.to_str().unwrap()], &[]);
    assert!(st.success(), "migrate over the PHP schema: {st:?}");
    let s = Server::builder()
        .dir(dir.path())
        .timezone("Europe/Madrid")
        .start();
    let r = s.listen(0, "main");
    r.assert_json(&format!(
        "[{}]",
        common::msg_json(1, "old", "from php", &php_date(1764093795, "Europe/Madrid"))
    ));
    assert_eq!(php_date(1764093795, "Europe/Madrid"), "2025-11-25 19:03:15");
    assert_eq!(s.send("ana", "new", "main"), 2);
}

#[test]
fn restart_keeps_history_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let mut s = Server::builder().dir(dir.path()).start();
        for (i, m) in ["one", "two", "three"].iter().enumerate() {
            assert_eq!(s.send("ana", m, "main"), i as i64 + 1);
        }
        assert_eq!(s.send("bob", "elsewhere", "r"), 4);
        before = s.listen(0, "main").body;
        assert_eq!(parse_messages(&s.listen(0, "main")).len(), 3);
        s.stop();
    }
    let s = Server::builder().dir(dir.path()).start();
    let after = s.listen(0, "main");
    assert_eq!(
        String::from_utf8_lossy(&after.body),
        String::from_utf8_lossy(&before)
    );
    assert_eq!(
        s.send("ana", "four", "main"),
        5,
        "ids continue after a restart"
    );
}

#[test]
fn sigkill_right_after_acknowledged_sends_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<i64, (String, String)> = BTreeMap::new();
    {
        let mut s = Server::builder().dir(dir.path()).start();
        let handles: Vec<_> = (0..4)
            .map(|k| {
                let addr = s.addr;
                thread::spawn(move || {
                    (0..60)
                        .map(|i| {
                            let (u, m) = (format!("k{k}"), format!("m{k}-{i}"));
                            let r = common::http(
                                addr,
                                "POST",
                                "/sendMessage.php",
                                &[("Content-Type", "application/x-www-form-urlencoded")],
                                common::form(&[("user", &u), ("message", &m)]).as_bytes(),
                            );
                            (common::parse_send_ok(&r), (u, m))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            acked.extend(h.join().unwrap());
        }
        s.kill9();
    }
    assert_eq!(acked.len(), 240);
    let db = dir.path().join("chat.sqlite");
    let rows: BTreeMap<i64, (String, String)> = open_db(&db)
        .prepare("SELECT id, user, message FROM messages")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows, acked,
        "rows after SIGKILL differ from the acknowledged sends"
    );
    // And the restarted server serves them.
    let s = Server::builder().dir(dir.path()).start();
    let newest: Vec<i64> = parse_messages(&s.listen(0, "main"))
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(newest, (191..=240).collect::<Vec<_>>());
    assert_eq!(s.send("ana", "after", "main"), 241);
}

#[test]
fn sigterm_answers_held_polls_with_empty_array_and_exits_0() {
    let mut s = Server::builder().hold("20").start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let mut polls: Vec<Conn> = (0..3)
        .map(|_| {
            let mut c = Conn::open(s.addr).unwrap();
            c.send_get(s.addr, "/listenToRecive.php?lastId=1").unwrap();
            c
        })
        .collect();
    s.wait_waiters(3, Duration::from_secs(10));
    let t0 = Instant::now();
    s.signal("TERM");
    for c in &mut polls {
        c.set_read_timeout(Duration::from_secs(10));
        let r = c
            .read_response(false)
            .expect("held poll answered on SIGTERM");
        r.assert_json("[]");
    }
    let answered = t0.elapsed();
    assert!(
        answered < Duration::from_secs(2),
        "held polls answered {answered:?} after SIGTERM"
    );
    let st = s
        .wait_exit(Duration::from_secs(5))
        .expect("exit within 5 s of SIGTERM");
    assert!(st.success(), "exit status {st:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn sigint_behaves_like_sigterm() {
    let mut s = Server::builder().hold("20").start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let mut c = Conn::open(s.addr).unwrap();
    c.send_get(s.addr, "/listenToRecive.php?lastId=1").unwrap();
    s.wait_waiters(1, Duration::from_secs(10));
    let t0 = Instant::now();
    s.signal("INT");
    c.set_read_timeout(Duration::from_secs(10));
    c.read_response(false)
        .expect("held poll answered on SIGINT")
        .assert_json("[]");
    assert!(t0.elapsed() < Duration::from_secs(2));
    let st = s
        .wait_exit(Duration::from_secs(5))
        .expect("exit within 5 s of SIGINT");
    assert!(st.success(), "exit status {st:?}");
}

#[test]
fn sigterm_keeps_every_acknowledged_send() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::builder().dir(dir.path()).start();
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|k| {
            let (addr, stop) = (s.addr, Arc::clone(&stop));
            thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..2000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let body = format!("user=k{k}&message=m{i}");
                    match common::try_http(
                        addr,
                        "POST",
                        "/sendMessage.php",
                        &[("Content-Type", "application/x-www-form-urlencoded")],
                        body.as_bytes(),
                    ) {
                        Ok(r) if r.status == 200 => acked.push((
                            common::parse_send_ok(&r),
                            format!("k{k}"),
                            format!("m{i}"),
                        )),
                        // Refused or cut off during shutdown: not acknowledged.
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    let db = s.db.clone();
    common::wait_for(Duration::from_secs(10), "some sends stored", || {
        (counts(&db).0 >= 20).then_some(())
    });
    s.signal("TERM");
    let st = s
        .wait_exit(Duration::from_secs(10))
        .expect("exit within 10 s of SIGTERM");
    stop.store(true, Ordering::Relaxed);
    assert!(st.success(), "exit status {st:?}");
    let acked: Vec<(i64, String, String)> = senders
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(acked.len() >= 20);
    let c = open_db(&db);
    for (id, u, m) in &acked {
        let row: Option<(String, String)> = c
            .query_row(
                "SELECT user, message FROM messages WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        assert_eq!(
            row.as_ref(),
            Some(&(u.clone(), m.clone())),
            "acknowledged send {id} lost by SIGTERM"
        );
    }
}

#[test]
fn idle_keep_alive_connections_do_not_delay_shutdown() {
    let mut s = Server::start();
    let mut c = Conn::open(s.addr).unwrap();
    c.write(&common::request_bytes_with(
        s.addr,
        "GET",
        "/getNumberOfUsers.php",
        &[],
        b"",
        false,
    ))
    .unwrap();
    c.read_response(false)
        .unwrap()
        .assert(200, "text/html; charset=UTF-8", "0");
    // The connection stays open and idle.
    let t0 = Instant::now();
    s.signal("TERM");
    let st = s
        .wait_exit(Duration::from_secs(5))
        .expect("exit with an idle keep-alive connection open");
    assert!(st.success(), "exit status {st:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    drop(c);
}

#[test]
fn a_stuck_request_is_dropped_after_the_shutdown_timeout_and_new_connections_refused() {
    let mut s = Server::builder().arg("--shutdown-timeout").arg("1").start();
    // A POST whose body never completes keeps a request in flight.
    let mut stuck = Conn::open(s.addr).unwrap();
    let head = format!(
        "POST /sendMessage.php HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nuser=ana",
        s.addr
    );
    stuck.write(head.as_bytes()).unwrap();
    common::wait_for(
        Duration::from_secs(5),
        "the stuck request's connection",
        || (s.stats().1 >= 2).then_some(()),
    );
    let addr = s.addr;
    let t0 = Instant::now();
    s.signal("TERM");
    // Shortly after the signal, new connections are no longer served.
    thread::sleep(Duration::from_millis(300));
    if let Ok(r) = common::try_http(addr, "GET", "/getNumberOfUsers.php", &[], b"") {
        assert_ne!(r.status, 200, "served a new connection after SIGTERM: {r}");
    }
    let st = s
        .wait_exit(Duration::from_secs(6))
        .expect("exit within a few seconds with --shutdown-timeout 1 and a stuck request");
    assert!(st.success(), "exit status {st:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "exit took {:?}",
        t0.elapsed()
    );
    assert_eq!(counts(&s.db).0, 0);
}

/// `--listen unix:PATH`: a second cometa on the socket of a running one refuses
/// to start (it must not take the socket over), a stale socket file is replaced,
/// and a file that is not a socket is left alone.
#[test]
fn unix_socket_is_never_taken_over_from_a_live_server() {
    use std::os::unix::net::UnixStream;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("cometa.sock");
    let start = |db: &str| {
        Command::new(env!("CARGO_BIN_EXE_cometa"))
            .arg("--public-stats")
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .arg("--db")
            .arg(dir.path().join(db))
            .env_remove("CHAT_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cometa")
    };
    let get_stats = || {
        let mut s = UnixStream::connect(&sock)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        std::io::Write::write_all(
            &mut s,
            b"GET /_cometa/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )?;
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out)?;
        Ok::<_, std::io::Error>(out)
    };

    // A stale socket file (its listener is gone) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let mut first = start("one.sqlite");
    common::wait_for(
        Duration::from_secs(10),
        "first cometa on the socket",
        || get_stats().ok().filter(|r| r.starts_with("HTTP/1.1 200")),
    );

    // A second one on the same path fails at once, saying why.
    let second = start("two.sqlite").wait_with_output().unwrap();
    assert!(
        !second.status.success(),
        "second cometa: {:?}",
        second.status
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another process is listening on"),
        "second cometa's stderr: {err}"
    );
    // The first still serves on the socket.
    assert!(get_stats().unwrap().starts_with("HTTP/1.1 200"));
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(first.id().to_string())
        .status();
    assert!(first.wait().unwrap().success());
    assert!(!sock.exists(), "the socket file is removed on exit");

    // A regular file at the path is not deleted.
    std::fs::write(&sock, b"not a socket").unwrap();
    let third = start("three.sqlite").wait_with_output().unwrap();
    assert!(!third.status.success());
    assert_eq!(std::fs::read(&sock).unwrap(), b"not a socket");
}

/// `--threads 3` runs the connections on a multi-threaded runtime: the same
/// answers, the same wake-up.
#[test]
fn more_threads_serve_alike() {
    let s = Server::builder()
        .hold("10")
        .arg("--threads")
        .arg("3")
        .start();
    let first = s.send("ana", "one", "main");
    let addr = s.addr;
    let poll = std::thread::spawn(move || {
        common::http(
            addr,
            "GET",
            &format!("/listenToRecive.php?lastId={first}"),
            &[],
            b"",
        )
    });
    s.wait_waiters(1, Duration::from_secs(5));
    let second = s.send("bea", "two", "main");
    let got = common::parse_messages(&poll.join().unwrap());
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), vec![second]);
    let bad = s.request("GET", "/cometa?x", &[], b"");
    assert_eq!(bad.status, 404);
}

#[test]
fn zero_threads_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cometa"))
        .args([
            "--threads",
            "0",
            "--db",
            "/nonexistent/never-created.sqlite",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}
