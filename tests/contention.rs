//! cometa and the legacy PHP code writing the same SQLite file at once.
//!
//! - PHP holds a write transaction (`BEGIN IMMEDIATE`, the way a slow PHP request
//!   would) while cometa is asked to store a message: cometa must wait for the
//!   lock (`busy_timeout`), not fail, and store its message after PHP's.
//! - PHP senders (the real `sendMessage.php` under `php -S`) and cometa senders
//!   write together while followers on both servers follow `lastId`: no send
//!   fails, and every follower receives every message exactly once, in id order.
//!
//! Without `php`, the tests say loudly that they are skipped; under `CI=true` they fail.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::php::{PhpServer, php_or_skip};
use common::{Server, follow, form, parse_messages, parse_send_ok};

/// A PHP process (CLI, PDO as in `legacy_php/lib/chat.php`) that opens a write
/// transaction, inserts one message, says `locked <id>`, and commits only when
/// told to on stdin; then says `committed`.
const HOLD_LOCK_PHP: &str = r#"
$db = new PDO('sqlite:' . getenv('CHAT_DB'), null, null, [
    PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
    PDO::SQLITE_ATTR_OPEN_FLAGS => PDO::SQLITE_OPEN_READWRITE,
]);
$db->exec('PRAGMA busy_timeout = 5000');
$db->exec('BEGIN IMMEDIATE');
$db->prepare('INSERT INTO messages (room, user, message, created_at) VALUES (?, ?, ?, ?)')
   ->execute(['main', 'php', 'written under a held lock', time()]);
echo 'locked ', $db->lastInsertId(), "\n";
fgets(STDIN);
$db->exec('COMMIT');
echo "committed\n";
"#;

struct LockHolder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl LockHolder {
    /// Starts the PHP process and waits (bounded by the pipe) until it holds the lock.
    fn start(db: &std::path::Path) -> (LockHolder, i64) {
        let mut child = Command::new("php")
            .arg("-r")
            .arg(HOLD_LOCK_PHP)
            .env("CHAT_DB", db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn php");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("php stdout"));
        let mut h = LockHolder {
            child,
            stdin,
            stdout,
        };
        let line = h.line();
        let id = line
            .strip_prefix("locked ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("php did not take the lock: {line:?}"));
        (h, id)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read php stdout");
        line.trim_end().to_string()
    }

    fn commit(&mut self) {
        let mut stdin = self.stdin.take().expect("commit once");
        stdin.write_all(b"commit\n").expect("tell php to commit");
        drop(stdin);
        assert_eq!(self.line(), "committed");
        let st = self.child.wait().expect("wait php");
        assert!(st.success(), "php exited with {st:?}");
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn cometa_waits_for_a_php_write_transaction_and_succeeds() {
    if !php_or_skip("contention") {
        return;
    }
    let s = Server::builder().hold("10").start();
    let first = s.send("ana", "before", "main");
    // A follower of the room, held by cometa before PHP writes anything.
    let addr = s.addr;
    let (poll_tx, poll_rx) = mpsc::channel();
    let poll = thread::spawn({
        let tx = poll_tx;
        move || {
            let r = common::http(
                addr,
                "GET",
                &format!("/listenToRecive.php?lastId={first}"),
                &[],
                b"",
            );
            let _ = tx.send(());
            r
        }
    });
    s.wait_waiters(1, Duration::from_secs(5));

    let (mut php, php_id) = LockHolder::start(&s.db);

    // cometa is asked to store a message while PHP holds the write lock.
    let (tx, rx) = mpsc::channel();
    let sender = thread::spawn(move || {
        let r = common::http(
            addr,
            "POST",
            "/sendMessage.php",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form(&[("user", "bea"), ("message", "during the lock")]).as_bytes(),
        );
        let _ = tx.send(());
        r
    });
    // Nothing can be committed while PHP holds the lock: neither the send nor
    // the follower may answer (an error answer would come at once).
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "cometa answered the send while PHP held the write lock: {:?}",
        sender.join().unwrap()
    );
    assert!(
        poll_rx.try_recv().is_err(),
        "the follower answered before PHP committed"
    );

    php.commit();
    let r = sender.join().expect("sender thread");
    let id = parse_send_ok(&r);
    assert!(
        id > php_id,
        "cometa's message ({id}) is stored after PHP's ({php_id})"
    );

    // The follower is answered with PHP's message (and perhaps cometa's).
    let got = parse_messages(&poll.join().expect("poll thread"));
    assert_eq!(
        got.first().map(|m| (m.id, m.message.as_str())),
        Some((php_id, "written under a held lock")),
        "the held follower gets PHP's message: {got:?}"
    );
    let all = parse_messages(&s.listen(0, "main"));
    let ids: Vec<i64> = all.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![first, php_id, id]);
}

#[test]
fn php_and_cometa_senders_together_lose_nothing() {
    if !php_or_skip("contention") {
        return;
    }
    const PER_SENDER: usize = 80;
    const SENDERS_EACH_SIDE: usize = 3;
    let s = Server::builder().hold("2").start();
    let seed = s.send("seed", "seed", "main");
    let php = PhpServer::start_on(&s.db, "2", "UTC");
    let total = 2 * SENDERS_EACH_SIDE * PER_SENDER;
    let deadline = Instant::now() + Duration::from_secs(90);

    // Two followers on cometa, one on the PHP long-poll.
    let followers: Vec<_> = [s.addr, s.addr, php.addr]
        .into_iter()
        .map(|addr| {
            let never = Arc::new(AtomicBool::new(false));
            thread::spawn(move || (addr, follow(addr, seed, total, deadline, never)))
        })
        .collect();

    let senders: Vec<_> = (0..2 * SENDERS_EACH_SIDE)
        .map(|k| {
            let (addr, side) = if k % 2 == 0 {
                (s.addr, "rust")
            } else {
                (php.addr, "php")
            };
            thread::spawn(move || {
                (0..PER_SENDER)
                    .map(|i| {
                        let body = form(&[
                            ("user", &format!("{side}{k}")),
                            ("message", &format!("{side}{k}-{i}")),
                        ]);
                        let r = common::http(
                            addr,
                            "POST",
                            "/sendMessage.php",
                            &[("Content-Type", "application/x-www-form-urlencoded")],
                            body.as_bytes(),
                        );
                        (format!("{side}{k}-{i}"), parse_send_ok(&r))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut sent: Vec<(String, i64)> = Vec::new();
    for h in senders {
        let mine = h.join().expect("a sender failed");
        // Each sender's messages are stored in the order it sent them.
        assert!(mine.windows(2).all(|w| w[0].1 < w[1].1), "{mine:?}");
        sent.extend(mine);
    }
    assert_eq!(sent.len(), total);
    let sent_ids: HashSet<i64> = sent.iter().map(|(_, id)| *id).collect();
    assert_eq!(sent_ids.len(), sent.len(), "every send got its own id");

    for h in followers {
        let (addr, got) = h.join().expect("a follower failed");
        let ids: Vec<i64> = got.iter().map(|m| m.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "follower on {addr}: ids not strictly increasing (a repeat or a reorder)"
        );
        assert_eq!(
            got.len(),
            total,
            "follower on {addr} got {} of {total} messages",
            got.len()
        );
        let got_ids: HashSet<i64> = ids.into_iter().collect();
        assert_eq!(
            got_ids, sent_ids,
            "follower on {addr}: not the messages sent"
        );
        for m in &got {
            let (text, _) = sent.iter().find(|(_, id)| *id == m.id).unwrap();
            assert_eq!(&m.message, text, "message {} on {addr}", m.id);
        }
    }
    let (messages, _, _) = s.counts();
    assert_eq!(messages as usize, total + 1);
}
