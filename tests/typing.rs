//! `isTyping.php`: set, clear, lapse after 5 s, sorted, others only, cleared by a send.

mod common;

use common::{Server, now_ms, parse_string_array};

fn insert_typing(s: &Server, room: &str, user: &str, set_ms: i64) {
    s.db()
        .execute(
            "INSERT OR REPLACE INTO typing (room, user, set_ms) VALUES (?1, ?2, ?3)",
            rusqlite::params![room, user, set_ms],
        )
        .unwrap();
}

#[test]
fn typing_is_seen_by_others_not_by_oneself() {
    let s = Server::start();
    s.typing("user=ana&typing=1").assert_json("[]");
    s.typing("user=bob").assert_json(r#"["ana"]"#);
    s.typing("user=ana").assert_json("[]");
    // GET works too.
    s.get("/isTyping.php?user=bob").assert_json(r#"["ana"]"#);
    // The row is in the shared schema with unix milliseconds.
    let set_ms: i64 = s
        .db()
        .query_row(
            "SELECT set_ms FROM typing WHERE room = 'main' AND user = 'ana'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        (now_ms() - set_ms).abs() < 10_000,
        "set_ms {set_ms} is not now in ms"
    );
}

#[test]
fn list_is_sorted_by_bytes_and_excludes_the_caller() {
    let s = Server::start();
    for u in ["bob", "Zed", "ana", "carol", "_x", "émile"] {
        let r = s.typing(&format!("user={}&typing=1", common::enc(u)));
        assert_eq!(r.status, 200, "{u}: {r}");
    }
    // Byte order: upper case before '_' before lower case, multi-byte last.
    s.typing("user=carol")
        .assert_json(r#"["Zed","_x","ana","bob","\u00e9mile"]"#);
    s.typing("user=nobody")
        .assert_json(r#"["Zed","_x","ana","bob","carol","\u00e9mile"]"#);
    let list = parse_string_array(&s.typing("user=Zed"));
    assert_eq!(list, ["_x", "ana", "bob", "carol", "émile"]);
}

#[test]
fn typing_zero_clears_and_absent_leaves_unchanged() {
    let s = Server::start();
    s.typing("user=ana&typing=1").assert_json("[]");
    s.typing("user=ana").assert_json("[]");
    s.typing("user=bob").assert_json(r#"["ana"]"#);
    s.typing("user=ana&typing=0").assert_json("[]");
    s.typing("user=bob").assert_json("[]");
    assert_eq!(s.counts().2, 0, "typing=0 deletes the row");
}

#[test]
fn typing_values_are_read_as_php_int() {
    let s = Server::start();
    // "1abc" is 1, " 1" is 1: set.
    for v in ["1abc", "%201", "1.5", "01"] {
        s.typing(&format!("user=ana&typing={v}")).assert_json("[]");
        s.typing("user=bob").assert_json(r#"["ana"]"#);
        s.typing("user=ana&typing=0").assert_json("[]");
        s.typing("user=bob").assert_json("[]");
    }
    // "abc" and "" are 0: clear.
    for v in ["abc", "", "0.5"] {
        s.typing("user=ana&typing=1").assert_json("[]");
        s.typing(&format!("user=ana&typing={v}")).assert_json("[]");
        s.typing("user=bob").assert_json("[]");
    }
}

#[test]
fn a_send_clears_the_typing_flag() {
    let s = Server::start();
    s.typing("user=ana&typing=1").assert_json("[]");
    s.typing("user=carol&typing=1").assert_json(r#"["ana"]"#);
    s.typing("user=bob").assert_json(r#"["ana","carol"]"#);
    assert_eq!(s.send("ana", "done typing", "main"), 1);
    s.typing("user=bob").assert_json(r#"["carol"]"#);
    // A send in another room does not clear this room's flag.
    assert_eq!(s.send("carol", "elsewhere", "other"), 2);
    s.typing("user=bob").assert_json(r#"["carol"]"#);
}

#[test]
fn typing_is_per_room() {
    let s = Server::start();
    s.typing("user=ana&typing=1&room=r1").assert_json("[]");
    s.typing("user=bob&room=r1").assert_json(r#"["ana"]"#);
    s.typing("user=bob&room=r2").assert_json("[]");
    s.typing("user=bob").assert_json("[]");
}

#[test]
fn flag_lapses_five_seconds_after_it_was_set() {
    let s = Server::start();
    let now = now_ms();
    insert_typing(&s, "main", "fresh", now - 4_500);
    insert_typing(&s, "main", "stale", now - 5_500);
    insert_typing(&s, "main", "ancient", now - 600_000);
    insert_typing(&s, "other", "elsewhere", now);
    s.typing("user=bob").assert_json(r#"["fresh"]"#);
    // Setting it again renews it.
    s.typing("user=stale&typing=1").assert_json(r#"["fresh"]"#);
    s.typing("user=bob").assert_json(r#"["fresh","stale"]"#);
}

#[test]
fn names_are_escaped_like_htmlspecialchars_and_json_encode() {
    let s = Server::start();
    let user = "<i>\"O'Neil\" & /é😀";
    s.typing(&format!("user={}&typing=1", common::enc(user)))
        .assert_json("[]");
    s.typing("user=bob")
        .assert_json(r#"["&lt;i&gt;&quot;O&#039;Neil&quot; &amp; \/\u00e9\ud83d\ude00"]"#);
    let stored: String = s
        .db()
        .query_row("SELECT user FROM typing", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, user, "typing.user is stored raw");
}

#[test]
fn caller_is_excluded_after_trimming() {
    let s = Server::start();
    s.typing("user=ana&typing=1").assert_json("[]");
    s.typing("user=%20ana%09").assert_json("[]");
    s.typing("user=+ana+&typing=0").assert_json("[]");
    s.typing("user=bob").assert_json("[]");
}

#[test]
fn a_call_without_typing_does_not_renew_the_flag() {
    let s = Server::start();
    let set = now_ms() - 4_000;
    insert_typing(&s, "main", "ana", set);
    s.typing("user=ana").assert_json("[]");
    s.typing("user=ana&typing=").assert_json("[]");
    let row: Option<i64> = s
        .db()
        .query_row("SELECT set_ms FROM typing WHERE user = 'ana'", [], |r| {
            r.get(0)
        })
        .ok();
    // `typing=` is (int)"" = 0 and clears; the call before it left set_ms alone.
    assert_eq!(row, None);
    insert_typing(&s, "main", "ana", set);
    s.typing("user=ana").assert_json("[]");
    let after: i64 = s
        .db()
        .query_row("SELECT set_ms FROM typing WHERE user = 'ana'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        after, set,
        "isTyping without `typing` must leave set_ms unchanged"
    );
}
