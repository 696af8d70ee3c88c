//! Commits by another process — the legacy PHP code itself, through
//! `chat_store_message()` of `legacy_php/lib/chat.php` — wake the waiters that
//! cometa holds, with file-system events (`--watch notify`, the default) and with
//! the periodic check alone (`--watch poll`, for NFS). The hold is long, so an
//! answer before it proves a wake-up, not a timeout.
//!
//! Without `php`, the tests say loudly that they are skipped; under `CI=true` they fail.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::php::{php_or_skip, web_root};
use common::{Server, parse_messages};

/// Long enough that an answer before it can only come from a wake-up.
const HOLD_SECS: u64 = 20;

/// Stores one message the way the legacy `sendMessage.php` does, from a PHP
/// process of its own; returns its id.
fn php_store(db: &Path, room: &str, user: &str, message: &str) -> i64 {
    let lib = web_root().join("../lib/chat.php");
    let script = format!(
        "require {lib:?}; echo chat_store_message($argv[1], $argv[2], $argv[3]);",
        lib = lib.display().to_string()
    );
    let out = Command::new("php")
        .arg("-r")
        .arg(script)
        .arg(room)
        .arg(user)
        .arg(message)
        .env("CHAT_DB", db)
        .stdin(Stdio::null())
        .output()
        .expect("run php");
    assert!(
        out.status.success(),
        "php failed: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("php printed {:?}", String::from_utf8_lossy(&out.stdout)))
}

/// Holds a poll in `room` and one in `other`, lets PHP store a message in `room`,
/// and checks that the first waiter is answered with it long before the hold,
/// while the waiter of the other room keeps waiting.
fn php_write_wakes_the_waiter(s: &Server) {
    let first = s.send("ana", "hello", "lobby");
    let addr = s.addr;
    let poll = thread::spawn(move || {
        let t = Instant::now();
        let r = common::http(
            addr,
            "GET",
            &format!("/listenToRecive.php?lastId={first}&room=lobby"),
            &[],
            b"",
        );
        (r, t.elapsed())
    });
    let other = thread::spawn(move || {
        common::http(
            addr,
            "GET",
            &format!("/listenToRecive.php?lastId={first}&room=quiet"),
            &[],
            b"",
        )
    });
    s.wait_waiters(2, Duration::from_secs(5));

    let id = php_store(&s.db, "lobby", "php", "from <PHP> & co");
    let (r, took) = poll.join().expect("poll thread");
    let got = parse_messages(&r);
    assert_eq!(
        got.iter()
            .map(|m| (m.id, m.user.as_str(), m.message.as_str()))
            .collect::<Vec<_>>(),
        vec![(id, "php", "from &lt;PHP&gt; &amp; co")]
    );
    assert!(
        took < Duration::from_secs(HOLD_SECS / 2),
        "the waiter was answered after {took:?}: by the hold, not by PHP's commit"
    );
    // The other room's waiter was not woken by it.
    s.wait_waiters(1, Duration::from_secs(5));
    assert!(!other.is_finished());
}

#[test]
fn php_commits_wake_waiters_with_file_events() {
    if !php_or_skip("foreign_writes") {
        return;
    }
    let s = Server::builder()
        .hold(&HOLD_SECS.to_string())
        // A fallback longer than the hold: only the file event can wake in time.
        .arg("--fallback-poll")
        .arg("60")
        .start();
    php_write_wakes_the_waiter(&s);
}

#[test]
fn php_commits_wake_waiters_with_polling_only() {
    if !php_or_skip("foreign_writes") {
        return;
    }
    let s = Server::builder()
        .hold(&HOLD_SECS.to_string())
        .arg("--watch")
        .arg("poll")
        .arg("--fallback-poll")
        .arg("0.2")
        .start();
    php_write_wakes_the_waiter(&s);
}
