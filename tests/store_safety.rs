//! The database under trouble (issue 9, items 1–4): the file replaced or
//! deleted while cometa runs, another process holding the write lock, text
//! that is not UTF-8 written by someone else, and a database cometa cannot
//! write. Nothing acknowledged may be lost, nothing refused may be stored.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, open_db, wait_for};

/// A fresh classic database at `path` (as a restored backup would be).
fn make_db(path: &Path, rows: &[&str]) {
    let st = Command::new(env!("CARGO_BIN_EXE_cometa"))
        .args(["migrate", "--db", path.to_str().unwrap()])
        .env_remove("CHAT_DB")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let c = open_db(path);
    for r in rows {
        c.execute(
            "INSERT INTO messages (room, user, message, created_at) VALUES ('main', 'backup', ?1, 0)",
            [r],
        )
        .unwrap();
    }
}

fn messages_at(path: &Path) -> Vec<String> {
    open_db(path)
        .prepare("SELECT message FROM messages ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Sends until one is acknowledged; every refusal must be a 503 with
/// `Retry-After` and the JSON error. The acknowledged texts, in order.
fn send_until_acknowledged(s: &Server, prefix: &str) -> Vec<String> {
    let mut acked = Vec::new();
    let mut i = 0;
    wait_for(Duration::from_secs(10), "a send acknowledged", || {
        i += 1;
        let text = format!("{prefix}{i}");
        let r = s.post("/sendMessage.php", &format!("user=ana&message={text}"));
        match r.status {
            200 => {
                acked.push(text);
                Some(())
            }
            503 => {
                assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text());
                assert!(
                    r.text().starts_with(r#"{"status":"error","error":"#),
                    "{}",
                    r.text()
                );
                thread::sleep(Duration::from_millis(50));
                None
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    });
    acked
}

#[test]
fn a_database_replaced_with_mv_is_reopened_and_waiters_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::builder().dir(dir.path()).hold("10").start();
    assert_eq!(s.send("ana", "before", "main"), 1);
    let backup = dir.path().join("backup.sqlite");
    make_db(&backup, &["restored one", "restored two"]);
    // A poll waiting above id 1: after the swap, the file at the path has id 2.
    let poll = {
        let addr = s.addr;
        thread::spawn(move || common::http(addr, "GET", "/listenToRecive.php?lastId=1", &[], b""))
    };
    s.wait_waiters(1, Duration::from_secs(5));
    std::fs::rename(&backup, &s.db).unwrap();
    let r = poll.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("restored two"),
        "the waiter read the restored file: {}",
        r.text()
    );
    let acked = send_until_acknowledged(&s, "after");
    let at_path = messages_at(&s.db);
    for a in &acked {
        assert!(
            at_path.contains(a),
            "{a} acknowledged but not in the file at the path: {at_path:?}"
        );
    }
    assert!(!at_path.contains(&"before".to_owned()));
}

#[test]
fn a_deleted_database_refuses_writes_until_a_valid_one_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::builder().dir(dir.path()).start();
    assert_eq!(s.send("ana", "before", "main"), 1);
    std::fs::remove_file(&s.db).unwrap();
    // Never acknowledged into the unlinked file.
    let r = s.post("/sendMessage.php", "user=ana&message=lost");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    make_db(&dir.path().join("new.sqlite"), &[]);
    std::fs::rename(dir.path().join("new.sqlite"), &s.db).unwrap();
    let acked = send_until_acknowledged(&s, "back");
    let at_path = messages_at(&s.db);
    assert_eq!(
        at_path, acked,
        "exactly what was acknowledged, nothing refused"
    );
}

/// Another process holds the write lock until the returned sender is dropped.
fn hold_write_lock(db: &Path) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let db = db.to_owned();
    thread::spawn(move || {
        let c = open_db(&db);
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        ready_tx.send(()).unwrap();
        let _ = rx.recv_timeout(Duration::from_secs(30));
        c.execute_batch("ROLLBACK").unwrap();
    });
    ready.recv().unwrap();
    tx
}

#[test]
fn a_held_write_lock_refuses_queued_sends_once_and_never_delays_a_poll() {
    let s = Server::builder().arg("--busy-timeout").arg("1").start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let lock = hold_write_lock(&s.db);
    // A poll with a user answers while the lock is held: its presence mark waits for nobody.
    let r = s.listen_q("lastId=0&user=bob");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("first"));
    // Eight sends queued together wait the busy timeout once, not one after another.
    let started = Instant::now();
    let sends: Vec<_> = (0..8)
        .map(|i| {
            let addr = s.addr;
            thread::spawn(move || {
                common::http(
                    addr,
                    "POST",
                    "/sendMessage.php",
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    format!("user=ana&message=blocked{i}").as_bytes(),
                )
            })
        })
        .collect();
    for t in sends {
        let r = t.join().unwrap();
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "sends were retried one by one: {:?}",
        started.elapsed()
    );
    drop(lock);
    assert_eq!(messages_at(&s.db), ["first"], "nothing refused is stored");
    let id = s.send("ana", "after", "main");
    assert!(id > 1);
}

#[test]
fn sigterm_with_a_blocked_writer_exits_within_the_shutdown_timeout() {
    let mut s = Server::builder()
        .arg("--busy-timeout")
        .arg("30")
        .arg("--shutdown-timeout")
        .arg("1")
        .start();
    let lock = hold_write_lock(&s.db);
    let send = {
        let addr = s.addr;
        thread::spawn(move || {
            common::http(
                addr,
                "POST",
                "/sendMessage.php",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"user=ana&message=queued",
            )
        })
    };
    let poll = {
        let addr = s.addr;
        thread::spawn(move || common::http(addr, "GET", "/listenToRecive.php?lastId=1", &[], b""))
    };
    s.wait_waiters(1, Duration::from_secs(5));
    // The send is queued behind the lock (no answer yet).
    thread::sleep(Duration::from_millis(100));
    assert!(!send.is_finished());
    let t = Instant::now();
    s.signal("TERM");
    let status = s
        .wait_exit(Duration::from_secs(4))
        .expect("exits with the writer blocked");
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let r = send.join().unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    let p = poll.join().unwrap();
    assert_eq!((p.status, p.text().as_str()), (200, "[]"));
    drop(lock);
    assert!(messages_at(&s.db).is_empty());
}

#[test]
fn text_another_process_wrote_that_is_not_utf8_reads_with_replacement_characters() {
    let s = Server::start();
    assert_eq!(s.send("ana", "ok", "main"), 1);
    open_db(&s.db)
        .execute(
            "INSERT INTO messages (room, user, message, created_at) VALUES ('main', 'php', CAST(X'6869FF21' AS TEXT), 0)",
            [],
        )
        .unwrap();
    let r = s.listen_q("lastId=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains(r#""message":"hi\ufffd!""#),
        "{}",
        r.text()
    );
    // The rows after it are not stuck behind it.
    let id = s.send("ana", "later", "main");
    let r = s.listen_q(&format!("lastId={}", id - 1));
    assert!(r.text().contains("later"), "{}", r.text());
}

#[test]
fn an_unwritable_database_refuses_to_start_naming_file_and_permission() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ro.sqlite");
    make_db(&db, &[]);
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd;
    if root {
        // Root writes anything: run as nobody on root's 0644 file in a 0755 folder.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_cometa"));
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
        cmd = Command::new(env!("CARGO_BIN_EXE_cometa"));
    }
    let out = cmd
        .args(["--listen", "127.0.0.1:0", "--db", db.to_str().unwrap()])
        .env_remove("CHAT_DB")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(db.to_str().unwrap()), "{err}");
    assert!(err.contains("permission"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
}
