//! `getNumberOfUsers.php` and presence: who marks it, the 30 s window, rooms.

mod common;

use common::{Server, now_ms};

fn insert_presence(s: &Server, room: &str, user: &str, seen_ms: i64) {
    s.db()
        .execute(
            "INSERT OR REPLACE INTO presence (room, user, seen_ms) VALUES (?1, ?2, ?3)",
            rusqlite::params![room, user, seen_ms],
        )
        .unwrap();
}

#[test]
fn fresh_room_has_zero_users_exact_bytes() {
    let s = Server::start();
    s.get("/getNumberOfUsers.php")
        .assert(200, "text/html; charset=UTF-8", "0");
    s.get("/getNumberOfUsers.php?room=main")
        .assert(200, "text/html; charset=UTF-8", "0");
    s.post("/getNumberOfUsers.php", "room=main&_=1")
        .assert(200, "text/html; charset=UTF-8", "0");
}

#[test]
fn presence_is_marked_by_send_listen_and_typing() {
    let s = Server::start();
    assert_eq!(s.send("ana", "hi", "main"), 1);
    assert_eq!(s.users("main"), 1);
    // Same user again: counted once.
    assert_eq!(s.send("ana", "again", "main"), 2);
    assert_eq!(s.users("main"), 1);
    // A listen with user marks presence (in the background: the mark never delays the poll).
    common::parse_messages(&s.listen_q("lastId=0&user=bob"));
    common::wait_for(std::time::Duration::from_secs(5), "bob present", || {
        (s.users("main") == 2).then_some(())
    });
    // isTyping marks presence, with or without typing.
    s.typing("user=carol").assert_json("[]");
    assert_eq!(s.users("main"), 3);
    s.typing("user=dave&typing=1").assert_json("[]");
    assert_eq!(s.users("main"), 4);
    // Trimmed names are the same user.
    assert_eq!(s.send(" ana\t", "trimmed", "main"), 3);
    assert_eq!(s.users("main"), 4);
    // The body of getNumberOfUsers is exactly the decimal number.
    s.get("/getNumberOfUsers.php")
        .assert(200, "text/html; charset=UTF-8", "4");

    // The rows are in the shared schema with unix milliseconds.
    let now = now_ms();
    let rows: Vec<(String, i64)> = s
        .db()
        .prepare("SELECT user, seen_ms FROM presence WHERE room = 'main' ORDER BY user")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let names: Vec<&str> = rows.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(names, ["ana", "bob", "carol", "dave"]);
    for (u, seen) in &rows {
        assert!(
            (now - seen).abs() < 10_000,
            "presence of {u}: seen_ms {seen} is not now ({now}) in ms"
        );
    }
}

#[test]
fn listen_without_user_or_with_blank_user_marks_nobody() {
    let s = Server::start();
    for q in [
        "lastId=0",
        "lastId=0&user=",
        "lastId=0&user=%20%09",
        "lastId=0&_=5",
    ] {
        s.listen_q(q).assert_json("[]");
    }
    assert_eq!(s.users("main"), 0);
    assert_eq!(s.counts(), (0, 0, 0));
}

#[test]
fn presence_is_per_room() {
    let s = Server::start();
    assert_eq!(s.send("ana", "hi", "r1"), 1);
    s.listen_q("room=r2&user=bob").assert_json("[]");
    s.typing("user=carol&room=r2").assert_json("[]");
    assert_eq!(s.users("r1"), 1);
    assert_eq!(s.users("r2"), 2);
    assert_eq!(s.users("main"), 0);
    s.get("/getNumberOfUsers.php")
        .assert(200, "text/html; charset=UTF-8", "0");
}

#[test]
fn presence_window_is_30_seconds() {
    let s = Server::start();
    let now = now_ms();
    insert_presence(&s, "main", "recent", now - 29_000);
    insert_presence(&s, "main", "gone", now - 31_000);
    insert_presence(&s, "main", "long_gone", now - 3_600_000);
    insert_presence(&s, "other", "elsewhere", now - 1_000);
    assert_eq!(s.users("main"), 1);
    assert_eq!(s.users("other"), 1);
    // A user seen again becomes present again.
    assert_eq!(s.send("gone", "back", "main"), 1);
    assert_eq!(s.users("main"), 2);
}

#[test]
fn distinct_users_are_counted_once_across_endpoints() {
    let s = Server::start();
    for _ in 0..3 {
        s.send("ana", "x", "main");
        assert_eq!(s.listen_q("user=ana").status, 200);
        s.typing("user=ana&typing=0").assert_json("[]");
    }
    assert_eq!(s.users("main"), 1);
    // Case matters: "Ana" is another user (SQL compares bytes).
    s.typing("user=Ana").assert_json("[]");
    assert_eq!(s.users("main"), 2);
}

#[test]
fn a_poll_rewrites_its_presence_mark_at_most_once_a_second() {
    let s = Server::start();
    common::parse_messages(&s.listen_q("lastId=0&user=ana"));
    let seen = || -> i64 {
        common::wait_for(std::time::Duration::from_secs(5), "ana's mark", || {
            s.db()
                .query_row("SELECT seen_ms FROM presence WHERE user = 'ana'", [], |r| {
                    r.get(0)
                })
                .ok()
        })
    };
    let first = seen();
    // Polls right after it do not write the mark again (a send, awaited,
    // is queued behind any mark they would have written).
    for _ in 0..5 {
        common::parse_messages(&s.listen_q("lastId=0&user=ana"));
    }
    s.send("bob", "flush", "other");
    assert_eq!(seen(), first, "the mark was rewritten within the second");
}
