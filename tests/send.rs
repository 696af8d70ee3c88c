//! `sendMessage.php`: the happy path, exact answer bytes, what lands in the database.

mod common;

use common::{Server, form, now_secs, parse_send_ok};

/// Reads one stored message row: (room, user, message, created_at).
fn row(s: &Server, id: i64) -> (String, String, String, i64) {
    s.db()
        .query_row(
            "SELECT room, user, message, created_at FROM messages WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap_or_else(|e| panic!("message {id} not stored: {e}"))
}

#[test]
fn post_answers_ok_with_consecutive_ids_and_stores_the_row() {
    let s = Server::start();
    let before = now_secs();
    let r = s.post("/sendMessage.php", "user=ana&message=hola");
    r.assert_json(r#"{"status":"ok","id":1}"#);
    let r = s.post("/sendMessage.php", "user=bob&message=hi+there");
    r.assert_json(r#"{"status":"ok","id":2}"#);
    let after = now_secs();

    let (room, user, message, created_at) = row(&s, 1);
    assert_eq!(
        (room.as_str(), user.as_str(), message.as_str()),
        ("main", "ana", "hola")
    );
    assert!(
        (before - 1..=after + 1).contains(&created_at),
        "created_at {created_at} is not unix seconds of now ({before}..={after})"
    );
    let (_, user, message, _) = row(&s, 2);
    assert_eq!((user.as_str(), message.as_str()), ("bob", "hi there"));
    assert_eq!(s.counts().0, 2);
}

#[test]
fn get_works_like_post() {
    let s = Server::start();
    let r = s.get("/sendMessage.php?user=ana&message=hola&room=r1");
    r.assert_json(r#"{"status":"ok","id":1}"#);
    let (room, user, message, _) = row(&s, 1);
    assert_eq!(
        (room.as_str(), user.as_str(), message.as_str()),
        ("r1", "ana", "hola")
    );
}

#[test]
fn message_and_user_are_stored_raw_not_escaped() {
    let s = Server::start();
    let user = "<b>O'Neil\"&é😀/";
    let message = "<script>alert(\"x's\")</script> & &amp; /é😀\\";
    let id = s.send(user, message, "main");
    assert_eq!(id, 1);
    let (_, u, m, _) = row(&s, 1);
    assert_eq!(u, user);
    assert_eq!(m, message);
}

#[test]
fn room_is_stored() {
    let s = Server::start();
    assert_eq!(s.send("ana", "one", "Room_1-x"), 1);
    assert_eq!(s.send("ana", "two", "main"), 2);
    assert_eq!(row(&s, 1).0, "Room_1-x");
    assert_eq!(row(&s, 2).0, "main");
}

#[test]
fn ids_are_never_reused_after_deletion() {
    let s = Server::start();
    assert_eq!(s.send("ana", "one", "main"), 1);
    assert_eq!(s.send("ana", "two", "main"), 2);
    s.db().execute("DELETE FROM messages", []).unwrap();
    assert_eq!(s.send("ana", "three", "main"), 3);
}

#[test]
fn ids_continue_after_rows_written_by_another_process() {
    // The PHP app writes the same file: the next id comes from the database.
    let s = Server::start();
    assert_eq!(s.send("ana", "one", "main"), 1);
    s.db()
        .execute(
            "INSERT INTO messages (room, user, message, created_at) VALUES ('main', 'php', 'x', ?1)",
            [now_secs()],
        )
        .unwrap();
    let r = s.post(
        "/sendMessage.php",
        &form(&[("user", "ana"), ("message", "three")]),
    );
    assert_eq!(parse_send_ok(&r), 3);
}
