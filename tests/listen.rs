//! `listenToRecive.php`: history, following `lastId`, the hold, wake-ups, rooms, time.

mod common;

use common::{Msg, Server, assert_time_shape, msg_json, now_secs, parse_messages, php_date};
use std::thread;
use std::time::{Duration, Instant};

fn ids(msgs: &[Msg]) -> Vec<i64> {
    msgs.iter().map(|m| m.id).collect()
}

fn created_at(s: &Server, id: i64) -> i64 {
    s.db()
        .query_row("SELECT created_at FROM messages WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
}

#[test]
fn empty_room_answers_empty_array_at_once() {
    let s = Server::builder().hold("20").start();
    for q in [
        "",
        "lastId=0",
        "lastId=0&room=main",
        "room=other",
        "lastId=-3",
    ] {
        let t0 = Instant::now();
        let r = s.listen_q(q);
        r.assert_json("[]");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "history {q:?} was held {:?}",
            t0.elapsed()
        );
    }
    // Without any query string at all.
    let r = s.get("/listenToRecive.php");
    r.assert_json("[]");
}

#[test]
fn one_message_exact_bytes_in_utc() {
    let s = Server::start();
    let before = now_secs();
    assert_eq!(s.send("ana", "hola", "main"), 1);
    let after = now_secs();
    let r = s.listen(0, "main");
    let msgs = parse_messages(&r);
    assert_eq!(msgs.len(), 1, "{r}");
    let t = &msgs[0].time;
    assert_time_shape(t);
    let ca = created_at(&s, 1);
    assert!((before - 1..=after + 1).contains(&ca));
    assert_eq!(
        *t,
        php_date(ca, "UTC"),
        "time must be created_at printed in UTC"
    );
    r.assert_json(&format!("[{}]", msg_json(1, "ana", "hola", t)));
}

#[test]
fn time_is_printed_in_the_configured_zone() {
    let s = Server::builder().timezone("America/New_York").start();
    assert_eq!(s.send("ana", "hola", "main"), 1);
    let r = s.listen(0, "main");
    let msgs = parse_messages(&r);
    let t = &msgs[0].time;
    assert_time_shape(t);
    let ca = created_at(&s, 1);
    assert!((now_secs() - ca).abs() <= 5, "created_at {ca} is not now");
    assert_eq!(
        *t,
        php_date(ca, "America/New_York"),
        "time must be printed in America/New_York"
    );
    // And it is not UTC: New York is 4 or 5 hours behind.
    let utc = php_date(ca, "UTC");
    let hour = |s: &str| s[11..13].parse::<i64>().unwrap();
    let diff = (hour(&utc) - hour(t)).rem_euclid(24);
    assert!(diff == 4 || diff == 5, "New York time {t} vs UTC {utc}");
    r.assert_json(&format!("[{}]", msg_json(1, "ana", "hola", t)));
}

#[test]
fn history_is_the_newest_50_oldest_first() {
    let s = Server::start();
    for i in 1..=60 {
        assert_eq!(s.send("ana", &format!("m{i}"), "main"), i);
    }
    let r = s.listen(0, "main");
    let msgs = parse_messages(&r);
    assert_eq!(ids(&msgs), (11..=60).collect::<Vec<_>>(), "{r}");
    for m in &msgs {
        assert_eq!(m.message, format!("m{}", m.id));
        assert_eq!(m.user, "ana");
        assert_time_shape(&m.time);
    }
}

#[test]
fn follow_returns_newer_messages_at_most_100() {
    let s = Server::start();
    for i in 1..=150 {
        assert_eq!(s.send("bob", &format!("n{i}"), "main"), i);
    }
    let first = parse_messages(&s.listen(1, "main"));
    assert_eq!(ids(&first), (2..=101).collect::<Vec<_>>());
    let rest = parse_messages(&s.listen(101, "main"));
    assert_eq!(ids(&rest), (102..=150).collect::<Vec<_>>());
    for m in first.iter().chain(&rest) {
        assert_eq!(m.message, format!("n{}", m.id));
    }
}

#[test]
fn follow_exact_bytes() {
    let s = Server::start();
    for (i, m) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(s.send("ana", m, "main"), i as i64 + 1);
    }
    let r = s.listen(1, "main");
    let msgs = parse_messages(&r);
    let expected = format!(
        "[{},{}]",
        msg_json(2, "ana", "b", &msgs[0].time),
        msg_json(3, "ana", "c", &msgs[1].time)
    );
    r.assert_json(&expected);
}

#[test]
fn last_id_is_read_like_php_int_cast() {
    let s = Server::builder().hold("0.5").start();
    for i in 1..=15 {
        assert_eq!(s.send("ana", &format!("m{i}"), "main"), i);
    }
    let all: Vec<i64> = (1..=15).collect();
    let cases: &[(&str, Vec<i64>)] = &[
        ("lastId=12abc", (13..=15).collect()),
        ("lastId=12.9", (13..=15).collect()),
        ("lastId=abc", all.clone()),
        ("lastId=", all.clone()),
        ("lastId=-5", all.clone()),
        ("lastId=0x1A", all.clone()),
        ("lastId=%207", (8..=15).collect()),
        ("lastId=+7", (8..=15).collect()),
        ("lastId=%0A%097", (8..=15).collect()),
        ("lastId=1e0", (2..=15).collect()),
        ("lastId=1.2e1", (13..=15).collect()),
        ("lastId=%2B14", vec![15]),
        ("lastId=014", vec![15]),
    ];
    for (q, want) in cases {
        // A wrongly held poll would answer [] and fail here as well.
        let r = s.listen_q(q);
        assert_eq!(ids(&parse_messages(&r)), *want, "query {q:?}: {r}");
    }
    // "1e3" is 1000: nothing newer, so the poll is held and ends with [].
    let t0 = Instant::now();
    let r = s.listen_q("lastId=1e3");
    r.assert_json("[]");
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "lastId=1e3 must be 1000 (held), got {r}"
    );
    // Last of repeated names wins.
    let r = s.listen_q("lastId=1&lastId=14");
    assert_eq!(ids(&parse_messages(&r)), vec![15]);
}

#[test]
fn quiet_poll_ends_with_empty_array_after_the_hold() {
    let s = Server::builder().hold("0.5").start();
    assert_eq!(s.send("ana", "x", "main"), 1);
    let t0 = Instant::now();
    let r = s.listen(1, "main");
    let took = t0.elapsed();
    r.assert_json("[]");
    assert!(
        took >= Duration::from_millis(450),
        "answered before the hold: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "hold of 0.5 s took {took:?}");
    // A poll beyond the last id is held too.
    let t0 = Instant::now();
    s.listen(5000, "main").assert_json("[]");
    assert!(t0.elapsed() >= Duration::from_millis(450));
}

#[test]
fn held_poll_is_answered_as_soon_as_a_message_is_sent() {
    let s = Server::builder().hold("20").start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let addr = s.addr;
    let listener = thread::spawn(move || {
        let r = common::http(
            addr,
            "GET",
            "/listenToRecive.php?lastId=1&user=bob",
            &[],
            b"",
        );
        (r, Instant::now())
    });
    s.wait_waiters(1, Duration::from_secs(10));
    let sent = Instant::now();
    assert_eq!(s.send("ana", "second", "main"), 2);
    let (r, answered) = listener.join().unwrap();
    let lag = answered.duration_since(sent);
    let msgs = parse_messages(&r);
    assert_eq!(ids(&msgs), vec![2], "{r}");
    r.assert_json(&format!(
        "[{}]",
        msg_json(2, "ana", "second", &msgs[0].time)
    ));
    assert!(
        lag < Duration::from_millis(1500),
        "woken {lag:?} after the send"
    );
    s.wait_waiters(0, Duration::from_secs(5));
}

#[test]
fn held_poll_is_woken_by_a_write_from_another_process() {
    // The legacy PHP app writes the same SQLite file; its rows must wake our waiters.
    let s = Server::builder().hold("6").start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let addr = s.addr;
    let listener = thread::spawn(move || {
        let r = common::http(addr, "GET", "/listenToRecive.php?lastId=1", &[], b"");
        (r, Instant::now())
    });
    s.wait_waiters(1, Duration::from_secs(10));
    let ca = now_secs();
    let written = Instant::now();
    s.db()
        .execute(
            "INSERT INTO messages (room, user, message, created_at) VALUES ('main', 'php', '<from php>', ?1)",
            [ca],
        )
        .unwrap();
    let (r, answered) = listener.join().unwrap();
    let lag = answered.duration_since(written);
    r.assert_json(&format!(
        "[{}]",
        msg_json(2, "php", "&lt;from php&gt;", &php_date(ca, "UTC"))
    ));
    assert!(
        lag < Duration::from_secs(2),
        "foreign write woke the waiter only after {lag:?}"
    );
}

#[test]
fn rooms_are_isolated() {
    let s = Server::builder().hold("1").start();
    assert_eq!(s.send("ana", "in a", "a"), 1);
    assert_eq!(s.send("bob", "in b", "b"), 2);
    assert_eq!(s.send("ana", "in a again", "a"), 3);
    assert_eq!(ids(&parse_messages(&s.listen(0, "a"))), vec![1, 3]);
    assert_eq!(ids(&parse_messages(&s.listen(0, "b"))), vec![2]);
    assert_eq!(ids(&parse_messages(&s.listen(1, "a"))), vec![3]);
    s.listen(0, "c").assert_json("[]");
    s.listen(0, "main").assert_json("[]");

    // A waiter in room b is not answered by a message to room a.
    let addr = s.addr;
    let listener = thread::spawn(move || {
        let t0 = Instant::now();
        let r = common::http(addr, "GET", "/listenToRecive.php?lastId=3&room=b", &[], b"");
        (r, t0.elapsed())
    });
    s.wait_waiters(1, Duration::from_secs(10));
    assert_eq!(s.send("ana", "a only", "a"), 4);
    let (r, took) = listener.join().unwrap();
    r.assert_json("[]");
    assert!(
        took >= Duration::from_millis(900),
        "room b waiter answered after {took:?}: {r}"
    );
}

#[test]
fn default_room_is_main() {
    let s = Server::start();
    // No room at all, then explicit room=main.
    let r = s.post("/sendMessage.php", "user=ana&message=implicit");
    r.assert_json(r#"{"status":"ok","id":1}"#);
    assert_eq!(s.send("bob", "explicit", "main"), 2);
    assert_eq!(s.send("bob", "elsewhere", "other"), 3);
    let implicit = s.get("/listenToRecive.php");
    let explicit = s.get("/listenToRecive.php?room=main&lastId=0");
    assert_eq!(ids(&parse_messages(&implicit)), vec![1, 2]);
    assert_eq!(implicit.body, explicit.body);
    let stored: String = s
        .db()
        .query_row("SELECT room FROM messages WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, "main");
}

#[test]
fn post_works_like_get() {
    let s = Server::start();
    assert_eq!(s.send("ana", "a", "r"), 1);
    assert_eq!(s.send("ana", "b", "r"), 2);
    let g = s.get("/listenToRecive.php?lastId=1&room=r");
    let p = s.post("/listenToRecive.php", "lastId=1&room=r");
    assert_eq!(ids(&parse_messages(&p)), vec![2]);
    assert_eq!(g.body, p.body);
}

#[test]
fn many_waiters_are_all_woken_by_one_send() {
    let s = Server::builder().hold("20").start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let addr = s.addr;
    let listeners: Vec<_> = (0..10)
        .map(|_| {
            thread::spawn(move || {
                common::http(addr, "GET", "/listenToRecive.php?lastId=1", &[], b"")
            })
        })
        .collect();
    s.wait_waiters(10, Duration::from_secs(10));
    let sent = Instant::now();
    assert_eq!(s.send("ana", "second", "main"), 2);
    for l in listeners {
        let r = l.join().unwrap();
        assert_eq!(ids(&parse_messages(&r)), vec![2]);
    }
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "waking 10 waiters took {:?}",
        sent.elapsed()
    );
}
