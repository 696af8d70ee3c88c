//! Parameters read as PHP's `$_REQUEST`: query and form body, trimming, lengths in code
//! points, validation order and every 400 reason of docs/wire.md (each changing nothing).

mod common;

use common::{Server, enc, form, parse_messages};

const SEND: &str = "/sendMessage.php";
const LISTEN: &str = "/listenToRecive.php";
const USERS: &str = "/getNumberOfUsers.php";
const TYPING: &str = "/isTyping.php";

fn rep(s: &str, n: usize) -> String {
    s.repeat(n)
}

/// Every refused request: (path, urlencoded parameters, reason).
fn refused_cases() -> Vec<(&'static str, String, &'static str)> {
    let a33 = rep("a", 33);
    let e33 = enc(&rep("é", 33));
    let emoji33 = enc(&rep("😀", 33));
    let m1001 = rep("a", 1001);
    let me1001 = enc(&rep("é", 1001));
    let room65 = rep("r", 65);
    let v: Vec<(&'static str, String, &'static str)> = vec![
        // sendMessage: user
        (SEND, "".into(), "missing user"),
        (SEND, "message=hi".into(), "missing user"),
        (SEND, "user=&message=hi".into(), "missing user"),
        (
            SEND,
            "user=%20%09%0A%0D%0B%00&message=hi".into(),
            "missing user",
        ),
        (SEND, "user=+++&message=hi".into(), "missing user"),
        (SEND, "User=ana&message=hi".into(), "missing user"),
        (SEND, format!("user={a33}&message=hi"), "user too long"),
        (SEND, format!("user={e33}&message=hi"), "user too long"),
        (SEND, format!("user={emoji33}&message=hi"), "user too long"),
        (
            SEND,
            format!("user=%20{a33}%20&message=hi"),
            "user too long",
        ),
        (SEND, "user=%FF&message=hi".into(), "invalid user"),
        (SEND, "user=ana%C3&message=hi".into(), "invalid user"),
        (SEND, "user=%C0%AF&message=hi".into(), "invalid user"),
        (SEND, "user=%ED%A0%80&message=hi".into(), "invalid user"),
        (SEND, "user[]=x&message=hi".into(), "invalid user"),
        (SEND, "user[k]=x&message=hi".into(), "invalid user"),
        (SEND, "user[]=&message=hi".into(), "invalid user"),
        (SEND, "user=ana&user[]=b&message=hi".into(), "invalid user"),
        // sendMessage: message
        (SEND, "user=ana".into(), "missing message"),
        (SEND, "user=ana&message=".into(), "missing message"),
        (
            SEND,
            "user=ana&message=%20%0A%0D%09%0B%00".into(),
            "missing message",
        ),
        (
            SEND,
            format!("user=ana&message={m1001}"),
            "message too long",
        ),
        (
            SEND,
            format!("user=ana&message={me1001}"),
            "message too long",
        ),
        (SEND, "user=ana&message=%FF".into(), "invalid message"),
        (SEND, "user=ana&message=ok%E2%82".into(), "invalid message"),
        (SEND, "user=ana&message[]=hi".into(), "invalid message"),
        (SEND, "user=ana&message[a][b]=hi".into(), "invalid message"),
        // sendMessage: room
        (SEND, "room=&user=ana&message=hi".into(), "invalid room"),
        (SEND, "room=%20&user=ana&message=hi".into(), "invalid room"),
        (SEND, "room=a+b&user=ana&message=hi".into(), "invalid room"),
        (SEND, "room=r.1&user=ana&message=hi".into(), "invalid room"),
        (
            SEND,
            "room=..%2Fx&user=ana&message=hi".into(),
            "invalid room",
        ),
        (
            SEND,
            "room=caf%C3%A9&user=ana&message=hi".into(),
            "invalid room",
        ),
        (SEND, "room=%FF&user=ana&message=hi".into(), "invalid room"),
        (
            SEND,
            "room[]=main&user=ana&message=hi".into(),
            "invalid room",
        ),
        (
            SEND,
            format!("room={room65}&user=ana&message=hi"),
            "invalid room",
        ),
        // validation order: room, then user, then message
        (SEND, "room=bad!".into(), "invalid room"),
        (
            SEND,
            "room=bad!&user[]=x&message[]=y".into(),
            "invalid room",
        ),
        (SEND, "user=&message=".into(), "missing user"),
        (SEND, format!("user={a33}"), "user too long"),
        (SEND, "user[]=x&message[]=y".into(), "invalid user"),
        (
            SEND,
            format!("user=ana&message[]=y&room={room65}"),
            "invalid room",
        ),
        // listen
        (LISTEN, "room=bad!".into(), "invalid room"),
        (LISTEN, "room[]=x&lastId=0".into(), "invalid room"),
        (LISTEN, "lastId[]=1".into(), "invalid lastId"),
        (LISTEN, "lastId[x]=1".into(), "invalid lastId"),
        (LISTEN, "lastId=%FF".into(), "invalid lastId"),
        (LISTEN, "user=ana&lastId[]=1".into(), "invalid lastId"),
        (LISTEN, "user[]=x".into(), "invalid user"),
        (LISTEN, "user=%FF&lastId=0".into(), "invalid user"),
        (LISTEN, format!("user={a33}&lastId=0"), "user too long"),
        (LISTEN, "user[]=x&lastId[]=1".into(), "invalid user"),
        (
            LISTEN,
            "room=bad!&user[]=x&lastId[]=1".into(),
            "invalid room",
        ),
        // getNumberOfUsers
        (USERS, "room=bad!".into(), "invalid room"),
        (USERS, "room=".into(), "invalid room"),
        (USERS, "room[]=main".into(), "invalid room"),
        (USERS, "room=%FF".into(), "invalid room"),
        (USERS, format!("room={room65}"), "invalid room"),
        // isTyping
        (TYPING, "".into(), "missing user"),
        (TYPING, "typing=1".into(), "missing user"),
        (TYPING, "user=%20&typing=1".into(), "missing user"),
        (TYPING, format!("user={e33}&typing=1"), "user too long"),
        (TYPING, "user[]=ana&typing=1".into(), "invalid user"),
        (TYPING, "user=%FF&typing=1".into(), "invalid user"),
        (TYPING, "user=ana&typing=2".into(), "invalid typing"),
        (TYPING, "user=ana&typing=-1".into(), "invalid typing"),
        (TYPING, "user=ana&typing=1e3".into(), "invalid typing"),
        (TYPING, "user=ana&typing[]=1".into(), "invalid typing"),
        (TYPING, "user=ana&typing=%FF".into(), "invalid typing"),
        (TYPING, "room=bad!&user=ana&typing=1".into(), "invalid room"),
        (TYPING, "room=x+y&typing=2".into(), "invalid room"),
        (TYPING, "user[]=x&typing=2".into(), "invalid user"),
    ];
    v
}

#[test]
fn every_refusal_by_get_answers_400_and_changes_nothing() {
    let s = Server::start();
    for (path, params, reason) in refused_cases() {
        let url = if params.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{params}")
        };
        let r = s.get(&url);
        assert_eq!(
            (r.status, r.header("content-type"), r.text()),
            (400, Some("application/json"), common::error_body(reason)),
            "GET {url}"
        );
        s.assert_nothing_stored(&format!("GET {url}"));
    }
}

#[test]
fn every_refusal_by_post_answers_400_and_changes_nothing() {
    let s = Server::start();
    for (path, params, reason) in refused_cases() {
        let r = s.post(path, &params);
        assert_eq!(
            (r.status, r.header("content-type"), r.text()),
            (400, Some("application/json"), common::error_body(reason)),
            "POST {path} body {params}"
        );
        s.assert_nothing_stored(&format!("POST {path} body {params}"));
    }
}

#[test]
fn refused_listen_with_user_does_not_mark_presence() {
    let s = Server::start();
    s.listen_q("user=ana&lastId[]=1")
        .assert_400("invalid lastId");
    s.typing("user=ana&typing=7").assert_400("invalid typing");
    assert_eq!(s.users("main"), 0);
    s.assert_nothing_stored("refused requests with a valid user");
}

fn stored(s: &Server, id: i64) -> (String, String, String) {
    s.db()
        .query_row(
            "SELECT room, user, message FROM messages WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap_or_else(|e| panic!("message {id}: {e}"))
}

fn send_raw(s: &Server, query: &str, body: &str) -> i64 {
    let path = if query.is_empty() {
        SEND.to_string()
    } else {
        format!("{SEND}?{query}")
    };
    common::parse_send_ok(&s.post(&path, body))
}

#[test]
fn text_is_trimmed_like_php_trim() {
    let s = Server::start();
    let id = send_raw(
        &s,
        "",
        "user=%20%09ana%0A%00%0B%0D&message=%00%20hi%20there%20%0A&room=%20r1%09",
    );
    assert_eq!(
        stored(&s, id),
        ("r1".into(), "ana".into(), "hi there".into())
    );
    // PHP's trim() does not strip form feed or U+00A0 (no-break space) or U+3000.
    let id = send_raw(&s, "", "user=ana&message=%0Chi%0C");
    assert_eq!(stored(&s, id).2, "\u{c}hi\u{c}");
    let id = send_raw(&s, "", "user=%C2%A0bob&message=%C2%A0hi%E3%80%80");
    assert_eq!(
        stored(&s, id),
        ("main".into(), "\u{a0}bob".into(), "\u{a0}hi\u{3000}".into())
    );
    // Inner white space and NUL are kept.
    let id = send_raw(&s, "", "user=a%20%20b&message=x%00y%09z");
    assert_eq!(
        stored(&s, id),
        ("main".into(), "a  b".into(), "x\0y\tz".into())
    );
}

#[test]
fn lengths_count_code_points_after_trimming() {
    let s = Server::start();
    let cases = [
        (rep("a", 32), rep("m", 1000)),
        (rep("é", 32), rep("é", 1000)),
        (rep("😀", 32), rep("😀", 1000)),
        (
            format!("  {}\t", rep("a", 32)),
            format!(" {} ", rep("m", 1000)),
        ),
    ];
    for (i, (user, message)) in cases.iter().enumerate() {
        let id = s.send(user, message, "main");
        assert_eq!(id, i as i64 + 1);
        let (_, u, m) = stored(&s, id);
        assert_eq!((u.as_str(), m.as_str()), (user.trim(), message.trim()));
    }
}

#[test]
fn get_and_post_both_work() {
    let s = Server::start();
    let r = s.get("/sendMessage.php?user=ana&message=by+get");
    r.assert_json(r#"{"status":"ok","id":1}"#);
    let r = s.post("/sendMessage.php", "user=ana&message=by+post");
    r.assert_json(r#"{"status":"ok","id":2}"#);
    assert_eq!(stored(&s, 1).2, "by get");
    assert_eq!(stored(&s, 2).2, "by post");
}

#[test]
fn body_wins_over_query_and_last_repeat_wins() {
    let s = Server::start();
    // Body beats query for the same name.
    let id = send_raw(
        &s,
        "user=query&message=query&room=qroom",
        "user=body&message=body",
    );
    assert_eq!(
        stored(&s, id),
        ("qroom".into(), "body".into(), "body".into())
    );
    // A name only in the query is still read on a POST.
    let id = send_raw(&s, "room=fromquery", "user=ana&message=hi");
    assert_eq!(stored(&s, id).0, "fromquery");
    // The last of repeated names wins.
    let id = send_raw(&s, "", "user=first&user=second&message=a&message=b");
    assert_eq!(stored(&s, id), ("main".into(), "second".into(), "b".into()));
    // An array earlier, a string later: the string wins.
    let id = send_raw(&s, "", "user[]=x&user=ana&message=hi");
    assert_eq!(stored(&s, id).1, "ana");
    // An array in the query, a string in the body: the body wins.
    let id = send_raw(&s, "user[]=x", "user=bob&message=hi");
    assert_eq!(stored(&s, id).1, "bob");
    // An empty body value still wins over the query (and is then missing).
    s.post("/sendMessage.php?user=ana&message=hi", "message=")
        .assert_400("missing message");
}

#[test]
fn plus_is_space_and_percent_escapes_are_decoded() {
    let s = Server::start();
    let id = send_raw(&s, "", "user=ana+maria&message=1%2B1+%3D+2%26more%3Dyes");
    assert_eq!(
        stored(&s, id),
        ("main".into(), "ana maria".into(), "1+1 = 2&more=yes".into())
    );
    let id = s.get("/sendMessage.php?user=a%20b&message=c+d%2Be").text();
    assert_eq!(id, r#"{"status":"ok","id":2}"#);
    assert_eq!(stored(&s, 2), ("main".into(), "a b".into(), "c d+e".into()));
    // Names are decoded too.
    let id = send_raw(&s, "", "us%65r=dec&m%65ssage=oded");
    assert_eq!(stored(&s, id), ("main".into(), "dec".into(), "oded".into()));
}

#[test]
fn unknown_and_unread_parameters_are_ignored() {
    let s = Server::start();
    let id = send_raw(
        &s,
        "_=1732550000000&callback=x",
        "user=ana&message=hi&_=123&typing=%FF&lastId[]=1&foo[]=1&bar=%FF",
    );
    assert_eq!(id, 1);
    s.listen_q("lastId=0&_=123&message[]=x&typing=%FF")
        .assert_json(&{
            let m = parse_messages(&s.listen(0, "main"));
            format!("[{}]", common::msg_json(1, "ana", "hi", &m[0].time))
        });
    s.get("/getNumberOfUsers.php?_=1&user[]=x&lastId=%FF")
        .assert(200, "text/html; charset=UTF-8", "1");
    s.typing("user=bob&_=9&message[]=x&lastId[]=1")
        .assert_json("[]");
}

#[test]
fn form_body_with_charset_is_read_other_body_types_are_not() {
    let s = Server::start();
    let r = s.request(
        "POST",
        SEND,
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )],
        b"user=ana&message=with+charset",
    );
    r.assert_json(r#"{"status":"ok","id":1}"#);
    assert_eq!(stored(&s, 1).2, "with charset");

    // JSON body: not read, only the query counts.
    let r = s.request(
        "POST",
        SEND,
        &[("Content-Type", "application/json")],
        br#"{"user":"ana","message":"json"}"#,
    );
    r.assert_400("missing user");
    let r = s.request(
        "POST",
        &format!("{SEND}?user=ana"),
        &[("Content-Type", "text/plain")],
        b"user=bob&message=plain",
    );
    r.assert_400("missing message");
    // No Content-Type: not a form either.
    let r = s.request(
        "POST",
        &format!("{SEND}?user=ana&message=q"),
        &[],
        b"user=bob&message=none",
    );
    r.assert_json(r#"{"status":"ok","id":2}"#);
    assert_eq!(stored(&s, 2), ("main".into(), "ana".into(), "q".into()));
    // Multipart: not read.
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nmulti\r\n--XyZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\npart\r\n--XyZ--\r\n";
    let r = s.request(
        "POST",
        SEND,
        &[("Content-Type", "multipart/form-data; boundary=XyZ")],
        body,
    );
    r.assert_400("missing user");
    assert_eq!(s.counts().0, 2);
}

#[test]
fn room_rules() {
    let s = Server::start();
    let room64 = rep("R", 64);
    let rooms = ["a", "A-z_0-9", &room64, "main", "-_-"];
    for (i, room) in rooms.iter().enumerate() {
        let id = send_raw(
            &s,
            "",
            &form(&[("user", "ana"), ("message", "x"), ("room", room)]),
        );
        assert_eq!(id, i as i64 + 1);
        assert_eq!(stored(&s, id).0, *room);
    }
    // The room is trimmed first.
    let id = send_raw(&s, "", "user=ana&message=x&room=%20%0Atrimmed%09");
    assert_eq!(stored(&s, id).0, "trimmed");
    // Room names are case sensitive.
    assert_eq!(parse_messages(&s.listen(0, "A")).len(), 0);
    assert_eq!(parse_messages(&s.listen(0, "a")).len(), 1);
}
