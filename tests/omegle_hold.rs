//! What cometa adds to the "talk to a stranger" chat: a held
//! `listenToReceive.php`. It answers the moment a message for that user is
//! committed (by cometa or by the PHP app on the same file) or the partner leaves;
//! a quiet one ends with an empty 200 at the hold and on SIGTERM; and a message
//! goes to exactly one poll even when two tabs of one user poll at once, PHP
//! writing and polling too.
//!
//! The measured wake-up times are printed (they belong in BENCHMARKS.md); the
//! asserts only require an answer well before the hold is over.
//!
//! Tests that need PHP say loudly that they are skipped without it; under
//! `CI=true` they fail.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::omegle::{
    NO_RESULT, Tables, assert_answer, page_post, send_target, start_cometa_in, start_php,
};
use common::php::{PhpServer, php_or_skip};
use common::{Conn, Response, Server, request_bytes, wait_for};

/// A hold far longer than any answer the tests wait for.
const LONG_HOLD: &str = "20";
/// An answer that comes within this came from a wake-up, not from the hold.
const WOKEN_WITHIN: Duration = Duration::from_secs(5);

/// cometa in a temporary folder (kept while the server runs).
struct App {
    cometa: Server,
    _dir: tempfile::TempDir,
}

impl App {
    fn start(hold: &str) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let cometa = start_cometa_in(dir.path(), hold);
        App { cometa, _dir: dir }
    }

    fn addr(&self) -> SocketAddr {
        self.cometa.addr
    }

    /// Two users through cometa, paired: `(first, second)`.
    fn pair(&self) -> (i64, i64) {
        let a = new_user(self.addr());
        let b = new_user(self.addr());
        assert_answer(
            &page_post(self.addr(), &format!("/randomChat.php?userId={b}")),
            &a.to_string(),
        );
        assert_answer(
            &page_post(self.addr(), &format!("/randomChat.php?userId={a}")),
            &b.to_string(),
        );
        (a, b)
    }

    /// Opens `listenToReceive.php?userId=user` and waits (bounded) until cometa
    /// holds it: its waiter count (`/_cometa/stats`) rises. The count is read
    /// before and after rather than compared with a number of polls, so that
    /// the test does not depend on how cometa counts a request that waits on two
    /// keys (its inbox and its pairing).
    fn held_poll(&self, user: i64) -> Poll {
        let before = self.cometa.stats().0;
        let poll = Poll::open(self.addr(), user);
        wait_for(Duration::from_secs(5), "cometa to hold the poll", || {
            (self.cometa.stats().0 > before).then_some(())
        });
        poll
    }

    /// Waits (bounded) until `n` polls are held; otherwise sets `stop` to
    /// `MESSAGES`, so that the pollers end, and fails.
    fn wait_polls(&self, n: u64, stop: &AtomicUsize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut waiters = 0;
        while Instant::now() < deadline {
            waiters = self.cometa.stats().0;
            if waiters >= n {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        stop.store(MESSAGES, Ordering::SeqCst);
        panic!("{n} polls were not held within 5 s: cometa counts {waiters} waiters");
    }
}

/// `startChat.php` → the new id.
fn new_user(addr: SocketAddr) -> i64 {
    let r = page_post(addr, "/startChat.php");
    assert_eq!(r.status, 200, "startChat.php: {r}");
    r.text()
        .parse()
        .unwrap_or_else(|_| panic!("startChat.php answered no id: {r}"))
}

/// A `listenToReceive.php` on its own connection, answered later.
struct Poll {
    conn: Conn,
    sent: Instant,
}

impl Poll {
    fn open(addr: SocketAddr, user: i64) -> Poll {
        let mut conn = Conn::open(addr).expect("connect");
        let target = format!("/listenToReceive.php?userId={user}");
        conn.write(&request_bytes(addr, "POST", &target, &[], b""))
            .expect("send the poll");
        Poll {
            conn,
            sent: Instant::now(),
        }
    }

    /// The answer and how long after `since` it came.
    fn answer(mut self, since: Instant) -> (Response, Duration) {
        let r = self.conn.read_response(false).expect("the poll's answer");
        (r, since.elapsed())
    }
}

#[test]
fn a_held_poll_answers_a_message_sent_through_cometa() {
    let app = App::start(LONG_HOLD);
    let (ana, bob) = app.pair();
    let poll = app.held_poll(bob);
    let t0 = Instant::now();
    assert_answer(
        &page_post(app.addr(), &send_target(ana, bob, "hi <b>bob</b> 😀")),
        "",
    );
    let (r, took) = poll.answer(t0);
    assert_answer(&r, "hi <b>bob</b> 😀");
    assert!(
        took < WOKEN_WITHIN,
        "the held poll answered {took:?} after cometa stored the message (hold {LONG_HOLD} s)"
    );
    eprintln!("omegle hold: woken by cometa's sendMsg.php after {took:.1?}");
    let t = Tables::read(&app.cometa.db);
    assert!(t.msgs.is_empty(), "the message left msgs: {:?}", t.msgs);
    assert_eq!(t.oldmsgs.len(), 1, "the message is in oldmsgs: {t:?}");
}

#[test]
fn a_held_poll_answers_a_message_php_commits() {
    if !php_or_skip("omegle hold: PHP's sendMsg.php") {
        return;
    }
    let app = App::start(LONG_HOLD);
    let php = start_php(&app.cometa.db);
    let (ana, bob) = app.pair();
    // Warm PHP up, so that the timing below is the wake-up, not PHP's start.
    assert_answer(&page_post(php.addr, "/getNumberOfUsers.php"), "2");
    let poll = app.held_poll(bob);
    let t0 = Instant::now();
    assert_answer(
        &page_post(php.addr, &send_target(ana, bob, "from PHP, café")),
        "",
    );
    let stored = t0.elapsed();
    let (r, took) = poll.answer(t0);
    assert_answer(&r, "from PHP, café");
    assert!(
        took < WOKEN_WITHIN,
        "the held poll answered {took:?} after PHP's sendMsg.php was sent (hold {LONG_HOLD} s)"
    );
    eprintln!(
        "omegle hold: woken by PHP's sendMsg.php {:.1?} after its answer ({took:.1?} after the request)",
        took.saturating_sub(stored)
    );
}

#[test]
fn a_held_poll_answers_the_sentinel_when_the_partner_leaves() {
    let app = App::start(LONG_HOLD);
    let (ana, bob) = app.pair();
    let poll = app.held_poll(bob);
    let t0 = Instant::now();
    assert_answer(
        &page_post(app.addr(), &format!("/leaveChat.php?userId={ana}")),
        "",
    );
    let (r, took) = poll.answer(t0);
    assert_answer(&r, NO_RESULT);
    assert!(
        took < WOKEN_WITHIN,
        "the held poll answered {took:?} after the partner left (hold {LONG_HOLD} s)"
    );
    eprintln!("omegle hold: woken by cometa's leaveChat.php after {took:.1?}");
}

#[test]
fn a_held_poll_answers_the_sentinel_when_the_partner_leaves_through_php() {
    if !php_or_skip("omegle hold: PHP's leaveChat.php") {
        return;
    }
    let app = App::start(LONG_HOLD);
    let php = start_php(&app.cometa.db);
    let (ana, bob) = app.pair();
    assert_answer(&page_post(php.addr, "/getNumberOfUsers.php"), "2");
    let poll = app.held_poll(bob);
    let t0 = Instant::now();
    assert_answer(
        &page_post(php.addr, &format!("/leaveChat.php?userId={ana}")),
        "",
    );
    let (r, took) = poll.answer(t0);
    assert_answer(&r, NO_RESULT);
    assert!(
        took < WOKEN_WITHIN,
        "the held poll answered {took:?} after the partner left through PHP (hold {LONG_HOLD} s)"
    );
    eprintln!("omegle hold: woken by PHP's leaveChat.php after {took:.1?}");
}

#[test]
fn a_quiet_poll_ends_empty_at_the_hold() {
    let hold = Duration::from_millis(1500);
    let app = App::start("1.5");
    let (_ana, bob) = app.pair();
    let poll = Poll::open(app.addr(), bob);
    let sent = poll.sent;
    let (r, took) = poll.answer(sent);
    assert_answer(&r, "");
    assert!(
        took >= hold.mul_f64(0.9),
        "a quiet poll answered after {took:?}, before the hold of {hold:?}"
    );
    assert!(
        took < hold + WOKEN_WITHIN,
        "a quiet poll answered after {took:?}, long after the hold of {hold:?}"
    );
    // Another user's message does not end it early either.
    let (carol, dave) = app.pair();
    let poll = app.held_poll(bob);
    let sent = poll.sent;
    assert_answer(
        &page_post(app.addr(), &send_target(carol, dave, "not for bob")),
        "",
    );
    let (r, took) = poll.answer(sent);
    assert_answer(&r, "");
    assert!(
        took >= hold.mul_f64(0.9),
        "bob's poll answered after {took:?}, before the hold, on a message for someone else"
    );
}

#[test]
fn sigterm_answers_held_polls_empty() {
    let mut app = App::start(LONG_HOLD);
    let (ana, bob) = app.pair();
    let first = app.held_poll(ana);
    let second = app.held_poll(bob);
    let t0 = Instant::now();
    app.cometa.signal("TERM");
    for (who, poll) in [("ana", first), ("bob", second)] {
        let (r, took) = poll.answer(t0);
        assert_answer(&r, "");
        assert!(
            took < WOKEN_WITHIN,
            "{who}'s held poll answered {took:?} after SIGTERM (hold {LONG_HOLD} s)"
        );
    }
    let st = app
        .cometa
        .wait_exit(Duration::from_secs(10))
        .expect("cometa did not exit within 10 s of SIGTERM");
    assert!(st.success(), "exit status after SIGTERM: {st:?}");
}

// ---------------------------------------------------------------------------
// Exactly once
// ---------------------------------------------------------------------------

/// How many messages each exactly-once run sends.
const MESSAGES: usize = 60;
/// The longest an exactly-once run may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Polls `listenToReceive.php?userId=user` on `addr` in a loop until `done`
/// reaches `want` or the deadline passes; returns the messages it got, in order.
/// `pause` is the rhythm after an empty answer (for PHP, which does not hold).
fn poller(
    addr: SocketAddr,
    user: i64,
    done: &AtomicUsize,
    want: usize,
    deadline: Instant,
    pause: Duration,
) -> Vec<String> {
    let mut got = Vec::new();
    while done.load(Ordering::SeqCst) < want && Instant::now() < deadline {
        let r = page_post(addr, &format!("/listenToReceive.php?userId={user}"));
        assert_eq!(r.status, 200, "a poll answered {r}");
        let body = r.text();
        assert_ne!(body, NO_RESULT, "the partner has not left");
        if body.is_empty() {
            thread::sleep(pause);
        } else {
            done.fetch_add(1, Ordering::SeqCst);
            got.push(body);
        }
    }
    got
}

/// Sends `m{i}` for each `i` of `ids` from `from` to `to`, each through one of
/// `senders` in turn.
fn send_all(senders: &[SocketAddr], from: i64, to: i64, ids: impl Iterator<Item = usize>) {
    for (n, i) in ids.enumerate() {
        let addr = senders[n % senders.len()];
        assert_answer(
            &page_post(addr, &send_target(from, to, &format!("m{i}"))),
            "",
        );
    }
}

/// Every message arrived once: the union of what the pollers got is what was
/// sent, nothing twice; each poller got its share oldest first (`m{i}` of one
/// sender, `i % senders` alike, in increasing `i`); the queue is empty and every
/// message is archived once.
fn assert_exactly_once(got: &[Vec<String>], db: &std::path::Path, senders: usize) {
    let mut all = Vec::new();
    for (p, list) in got.iter().enumerate() {
        let ids: Vec<usize> = list
            .iter()
            .map(|m| {
                m.strip_prefix('m')
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("poller {p} got {m:?}, which was never sent"))
            })
            .collect();
        for k in 0..senders {
            let of_sender: Vec<usize> = ids.iter().copied().filter(|i| i % senders == k).collect();
            assert!(
                of_sender.windows(2).all(|w| w[0] < w[1]),
                "poller {p} got the messages of one sender out of order: {of_sender:?}"
            );
        }
        all.extend(ids);
    }
    let unique: BTreeSet<usize> = all.iter().copied().collect();
    let sent: BTreeSet<usize> = (0..MESSAGES).collect();
    assert_eq!(
        all.len(),
        unique.len(),
        "a message was delivered twice: {got:?}"
    );
    assert_eq!(
        unique,
        sent,
        "lost: {:?}",
        sent.difference(&unique).collect::<Vec<_>>()
    );
    let t = Tables::read(db);
    assert!(t.msgs.is_empty(), "undelivered rows left: {:?}", t.msgs);
    assert_eq!(t.oldmsgs.len(), MESSAGES, "archived rows");
    eprintln!(
        "omegle exactly once: {MESSAGES} messages over {} pollers, shares {:?}",
        got.len(),
        got.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[test]
fn two_tabs_polling_get_each_message_once() {
    let app = App::start("2");
    let (ana, bob) = app.pair();
    let done = AtomicUsize::new(0);
    let deadline = Instant::now() + RUN_LIMIT;
    let got: Vec<Vec<String>> = thread::scope(|s| {
        let tabs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| poller(app.addr(), bob, &done, MESSAGES, deadline, Duration::ZERO)))
            .collect();
        // Both tabs are waiting before the first message.
        app.wait_polls(2, &done);
        send_all(&[app.addr()], ana, bob, 0..MESSAGES);
        tabs.into_iter()
            .map(|t| t.join().expect("poller"))
            .collect()
    });
    assert_exactly_once(&got, &app.cometa.db, 1);
}

#[test]
fn two_tabs_and_php_polling_while_php_writes_get_each_message_once() {
    if !php_or_skip("omegle exactly once with PHP") {
        return;
    }
    let app = App::start("2");
    let php: PhpServer = start_php(&app.cometa.db);
    let (ana, bob) = app.pair();
    let done = AtomicUsize::new(0);
    let deadline = Instant::now() + RUN_LIMIT;
    // A backlog first (through cometa and PHP in turn), so that the tabs
    // compete for queued messages as well as for fresh ones.
    let backlog = MESSAGES / 3;
    let (cometa, php_addr) = (app.addr(), php.addr);
    send_all(&[app.addr(), php.addr], ana, bob, 0..backlog);
    let got: Vec<Vec<String>> = thread::scope(|s| {
        let done = &done;
        let tab =
            move |addr: SocketAddr| poller(addr, bob, done, MESSAGES, deadline, Duration::ZERO);
        // Two tabs on cometa, a third on the PHP version (which answers at once).
        let pollers = [
            s.spawn(move || tab(cometa)),
            s.spawn(move || tab(cometa)),
            s.spawn(move || tab(php_addr)),
        ];
        // The rest: even ones through cometa, odd ones through PHP, at once.
        let senders = [
            s.spawn(|| {
                send_all(
                    &[cometa],
                    ana,
                    bob,
                    (backlog..MESSAGES).filter(|i| i % 2 == 0),
                )
            }),
            s.spawn(|| {
                send_all(
                    &[php_addr],
                    ana,
                    bob,
                    (backlog..MESSAGES).filter(|i| i % 2 == 1),
                )
            }),
        ];
        for t in senders {
            t.join().expect("sender");
        }
        pollers
            .map(|t| t.join().expect("poller"))
            .into_iter()
            .collect()
    });
    // Two senders at once: names are in id order per sender only.
    assert_exactly_once(&got, &app.cometa.db, 2);
}

/// The reference itself: two tabs on the PHP version (no hold, one
/// `BEGIN IMMEDIATE` transaction per take) while messages are sent.
#[test]
fn php_reference_delivers_each_message_once_to_two_tabs() {
    if !php_or_skip("omegle exactly once, PHP alone") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("omegle.sqlite");
    common::omegle::apply_schema(&db);
    let php = start_php(&db);
    let ana = new_user(php.addr);
    let bob = new_user(php.addr);
    assert_answer(
        &page_post(php.addr, &format!("/randomChat.php?userId={bob}")),
        &ana.to_string(),
    );
    let done = AtomicUsize::new(0);
    let deadline = Instant::now() + RUN_LIMIT;
    let got: Vec<Vec<String>> = thread::scope(|s| {
        let tabs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    poller(
                        php.addr,
                        bob,
                        &done,
                        MESSAGES,
                        deadline,
                        Duration::from_millis(5),
                    )
                })
            })
            .collect();
        send_all(&[php.addr], ana, bob, 0..MESSAGES);
        tabs.into_iter()
            .map(|t| t.join().expect("poller"))
            .collect()
    });
    assert_exactly_once(&got, &db, 1);
}
