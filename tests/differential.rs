//! Differential test: one scenario, sent request by request to the legacy PHP app
//! (`php -S` on `legacy_php/public`) and to cometa, each on a fresh database. Every
//! answer must match: status, `Content-Type`, `Allow` and the body's bytes. Both
//! databases start empty and get the same sequence, so the ids match as they are;
//! only a message's `"time":"YYYY-MM-DD HH:MM:SS"` may differ, by at most a second
//! (the two servers store the same message a few milliseconds apart). Other headers
//! (`Date`, `X-Powered-By`, `Connection`, …) are not compared, nor is the 404 of an
//! unknown path (`php -S` has its own page).
//!
//! Each request goes to both servers at the same time, so that the time windows of
//! presence (30 s) and typing (5 s) and the hold of a long-poll (1 s on both sides)
//! run alike. Every difference is collected; the test fails at the end with a
//! readable report of each (the request and both answers). Where the scenario also
//! states what the answer must be (`docs/wire.md`), a PHP answer that differs is
//! reported too.
//!
//! Without `php`, the test says loudly that it is skipped; under `CI=true` it fails.

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::php::{PhpServer, php_or_skip};
use common::{Conn, Response, Server, enc, error_body, form, open_db, request_bytes, try_http};

/// Hold time of a quiet long-poll, both sides (`CHAT_HOLD` and `--hold`).
const HOLD: Duration = Duration::from_secs(1);
/// Time zone of the printed times, both sides (`date.timezone` and `--timezone`):
/// not UTC and not a whole hour away from it, so that a wrong zone shows.
const TZ: &str = "Asia/Kolkata";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=UTF-8";
/// The four legacy endpoints.
const ENDPOINTS: [&str; 4] = [
    "sendMessage.php",
    "listenToRecive.php",
    "getNumberOfUsers.php",
    "isTyping.php",
];

#[test]
fn php_and_cometa_answer_alike() {
    if !php_or_skip("differential") {
        return;
    }
    let t0 = Instant::now();
    let mut d = Diff::start();
    let started = t0.elapsed();

    empty_state(&mut d);
    history_and_follow_cap(&mut d);
    validation(&mut d);
    methods_and_sizes(&mut d);
    parameters(&mut d);
    escaping_and_lengths(&mut d);
    rooms(&mut d);
    typing(&mut d);
    presence(&mut d);
    long_poll(&mut d);
    d.compare_databases();

    eprintln!(
        "differential: {} exchanges compared in {:.1?} (servers started in {:.1?})",
        d.compared,
        t0.elapsed(),
        started
    );
    d.finish();
}

// ---------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------

/// Nothing stored yet.
fn empty_state(d: &mut Diff) {
    d.exact(
        "listen, no params",
        Req::get("/listenToRecive.php"),
        200,
        JSON,
        "[]",
    );
    d.exact(
        "listen lastId=0, main",
        get("listenToRecive.php", "lastId=0&room=main"),
        200,
        JSON,
        "[]",
    );
    d.exact(
        "users, no params",
        Req::get("/getNumberOfUsers.php"),
        200,
        HTML,
        "0",
    );
    d.exact(
        "users by POST",
        post("getNumberOfUsers.php", "room=main"),
        200,
        HTML,
        "0",
    );
    d.exact(
        "typing, nobody else",
        post("isTyping.php", "user=ana"),
        200,
        JSON,
        "[]",
    );
    d.exact(
        "users after isTyping",
        Req::get("/getNumberOfUsers.php"),
        200,
        HTML,
        "1",
    );
}

/// Room `many` gets ids 1..=120: history is the newest 50, a follow at most 100;
/// `lastId` is read as PHP's `(int)` of the trimmed value.
fn history_and_follow_cap(d: &mut Diff) {
    let users = ["ana", "bob", "carol"];
    for i in 1..=120 {
        let user = users[i % 3];
        let message = format!("message {i}");
        let pairs = [("user", user), ("message", &message), ("room", "many")];
        let req = if i % 3 == 0 {
            get("sendMessage.php", &form(&pairs))
        } else {
            post("sendMessage.php", &form(&pairs))
        };
        let id = d.send(&format!("send {i} to many"), req);
        assert_eq!(
            id,
            i64::try_from(i).unwrap(),
            "the scenario expects room many to hold ids 1..=120"
        );
    }
    let history: Vec<i64> = (71..=120).collect();
    d.ids(
        "history of many (newest 50)",
        get("listenToRecive.php", "lastId=0&room=many"),
        &history,
    );
    d.ids(
        "history by POST",
        post("listenToRecive.php", "lastId=0&room=many"),
        &history,
    );
    d.ids(
        "history, lastId absent",
        get("listenToRecive.php", "room=many"),
        &history,
    );
    // (int) of these is 0 or less: history.
    for raw in [
        "abc",
        "-3",
        "",
        "%20",
        "0x1A",
        "-0",
        "+-1",
        "%00",
        "-99999999999999999999",
    ] {
        d.ids(
            &format!("lastId={raw} is history"),
            get("listenToRecive.php", &format!("lastId={raw}&room=many")),
            &history,
        );
    }
    d.ids(
        "main is still empty",
        get("listenToRecive.php", "lastId=0"),
        &[],
    );
    // Follows.
    let from = |first: i64| -> Vec<i64> { (first..=120).take(100).collect() };
    for (raw, first) in [
        ("1", 2),
        ("12abc", 13),
        ("%207", 8),
        ("+7", 8),
        ("7%20", 8),
        ("%09%0A7%0D%0B", 8),
        ("%007", 8),
        ("7%00", 8),
        ("1e0", 2),
        ("1E1", 11),
        ("7.9", 8),
        ("1e2", 101),
        ("0.5e2", 51),
        (".5e2", 51),
        ("%2B5", 6),
        ("0012", 13),
        ("12%20abc", 13),
        ("1e", 2),
        ("1e%2B1", 11),
        ("100", 101),
        ("119", 120),
    ] {
        d.ids(
            &format!("follow lastId={raw}"),
            get("listenToRecive.php", &format!("lastId={raw}&room=many")),
            &from(first),
        );
    }
    d.ids(
        "follow by POST",
        post("listenToRecive.php", "lastId=110&room=many&user=ana"),
        &from(111),
    );
    d.ids(
        "follow: body lastId over query lastId",
        post("listenToRecive.php?lastId=1&room=many", "lastId=115"),
        &from(116),
    );
    d.ids(
        "follow: last repeat wins",
        get("listenToRecive.php", "lastId=1&lastId=117&room=many"),
        &from(118),
    );
}

/// Every 400 of `docs/wire.md`, in the documented order.
fn validation(d: &mut Diff) {
    let long_room = "r".repeat(65);
    // `room`, on every endpoint, before anything else.
    for ep in ENDPOINTS {
        let valid = "user=ana&message=hi&lastId=1&typing=1";
        for room in [
            "room=",
            "room=%20%09",
            "room=%00",
            "room=a%20b",
            "room=bad!",
            "room=m%C3%A1in",
            "room=main%2F",
            "room=..",
            &format!("room={long_room}"),
            "room[]=main",
            "room[x]=main",
            "room=%FF",
            "room=%C3",
        ] {
            d.err400(
                &format!("{ep} {room}"),
                get(ep, &format!("{valid}&{room}")),
                "invalid room",
            );
        }
        // Room first even when everything else is wrong too.
        d.err400(
            &format!("{ep} every param wrong"),
            get(ep, "room=!&user[]=x&message[]=y&lastId[]=1&typing=7"),
            "invalid room",
        );
        d.err400(
            &format!("{ep} bad room in the body"),
            post(&format!("{ep}?room=main"), "room=%20&user=ana&message=hi"),
            "invalid room",
        );
    }

    // `user` where it is required (send, typing).
    let long_ascii = "u".repeat(33);
    let long_accents = "é".repeat(33);
    for ep in ["sendMessage.php", "isTyping.php"] {
        for (q, reason) in [
            ("message=hi", "missing user"),
            ("user=&message=hi", "missing user"),
            ("user&message=hi", "missing user"),
            ("user=%20%09%0A%0D%00%0B&message=hi", "missing user"),
            ("user=+++&message=hi", "missing user"),
            (&format!("user={long_ascii}&message=hi"), "user too long"),
            (
                &format!("user={}&message=hi", enc(&long_accents)),
                "user too long",
            ),
            ("user[]=ana&message=hi", "invalid user"),
            ("user[a][b]=ana&message=hi", "invalid user"),
            ("user%5B%5D=ana&message=hi", "invalid user"),
            ("user=%FF&message=hi", "invalid user"),
            ("user=%C3&message=hi", "invalid user"),
            ("user=%C3%28&message=hi", "invalid user"),
            ("user=%ED%A0%80&message=hi", "invalid user"),
            ("user=%C0%AF&message=hi", "invalid user"),
            ("user=%F4%90%80%80&message=hi", "invalid user"),
            ("user=%20%FF%20&message=hi", "invalid user"),
            // `user` before `message` / `typing`.
            ("user=&message=&typing=9", "missing user"),
            ("user[]=a&message[]=b&typing[]=1", "invalid user"),
            (
                &format!("user={long_ascii}&message=%FF&typing=%FF"),
                "user too long",
            ),
        ] {
            d.err400(&format!("{ep} {q}"), get(ep, q), reason);
        }
        d.err400(
            &format!("{ep} empty body user over the query's"),
            post(&format!("{ep}?user=ana"), "user=&message=hi"),
            "missing user",
        );
    }

    // `user` where it is optional (listen): empty is no user, the rest as above.
    for (q, reason) in [
        ("user[]=ana", "invalid user"),
        ("user=%FF", "invalid user"),
        ("user=%C3%28&lastId[]=1", "invalid user"),
        (&format!("user={long_ascii}"), "user too long"),
        (&format!("user={long_ascii}&lastId=%FF"), "user too long"),
        ("user=ana&lastId[]=1", "invalid lastId"),
        ("lastId[a]=1", "invalid lastId"),
        ("lastId=%FF", "invalid lastId"),
        ("lastId=1%FF", "invalid lastId"),
        ("lastId=%C3", "invalid lastId"),
        ("user=&lastId[]=1", "invalid lastId"),
    ] {
        d.err400(
            &format!("listen {q}"),
            get("listenToRecive.php", &format!("room=many&{q}")),
            reason,
        );
    }
    d.ids(
        "listen user= is no user",
        get("listenToRecive.php", "room=many&lastId=119&user="),
        &[120],
    );
    d.ids(
        "listen user of spaces is no user",
        get("listenToRecive.php", "room=many&lastId=119&user=%20%00"),
        &[120],
    );

    // `message`.
    let long_message = "m".repeat(1001);
    let long_message_cp = "ñ".repeat(1001);
    for (q, reason) in [
        ("user=ana", "missing message"),
        ("user=ana&message=", "missing message"),
        ("user=ana&message", "missing message"),
        ("user=ana&message=%20%09%0A%0D%00%0B%20", "missing message"),
        (
            &format!("user=ana&message={long_message}"),
            "message too long",
        ),
        (
            &format!(
                "user=ana&message={}",
                enc(&format!("  {long_message_cp}  "))
            ),
            "message too long",
        ),
        ("user=ana&message[]=hi", "invalid message"),
        ("user=ana&message[x]=hi", "invalid message"),
        ("user=ana&message=%FF", "invalid message"),
        ("user=ana&message=hi%C3", "invalid message"),
        ("user=ana&message=%E2%82", "invalid message"),
        ("user=ana&message=%ED%BF%BF", "invalid message"),
        ("user=ana&message=%F8%88%80%80%80", "invalid message"),
    ] {
        d.err400(
            &format!("send {}", cut(q, 60)),
            post("sendMessage.php", q),
            reason,
        );
    }

    // `typing`.
    for (q, reason) in [
        ("typing=2", "invalid typing"),
        ("typing=-1", "invalid typing"),
        ("typing=1e1", "invalid typing"),
        ("typing=10", "invalid typing"),
        ("typing=99999999999999999999", "invalid typing"),
        ("typing[]=1", "invalid typing"),
        ("typing=%FF", "invalid typing"),
        ("typing=1%FF", "invalid typing"),
    ] {
        d.err400(
            &format!("typing {q}"),
            post("isTyping.php", &format!("user=ana&room=vt&{q}")),
            reason,
        );
    }

    // Parameters an endpoint does not read are never checked.
    d.send(
        "send ignores lastId/typing/junk",
        get(
            "sendMessage.php",
            "user=ana&message=ignored&room=vt&lastId[]=1&typing=%FF&_[]=x&extra=%FF&%FF=1",
        ),
    );
    d.ids(
        "listen ignores message/typing",
        get(
            "listenToRecive.php",
            "room=many&lastId=119&message[]=x&typing=9&_=%FF",
        ),
        &[120],
    );
    d.exact(
        "users ignores user/lastId",
        get(
            "getNumberOfUsers.php",
            "room=vt&user[]=x&user=%FF&lastId[]=1",
        ),
        200,
        HTML,
        "1",
    );
    d.exact(
        "typing ignores message/lastId",
        get("isTyping.php", "room=vt&user=ana&message=%FF&lastId[]=2"),
        200,
        JSON,
        "[]",
    );
}

/// 405 (with `Allow`) before 413 before validation.
fn methods_and_sizes(d: &mut Diff) {
    let allow = "GET, POST";
    for ep in ENDPOINTS {
        for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
            let req = Req::new(method, &format!("/{ep}?user=ana&message=hi"));
            d.exact_allow(&format!("{method} {ep}"), req, 405, allow);
        }
        d.exact_allow(
            &format!("PUT {ep} with a body over the cap"),
            Req::new("PUT", &format!("/{ep}")).body(Some(FORM), vec![b'x'; 70_000]),
            405,
            allow,
        );
        d.exact_allow(
            &format!("DELETE {ep} with a form body"),
            Req::new("DELETE", &format!("/{ep}")).body(Some(FORM), b"user=ana&message=hi".to_vec()),
            405,
            allow,
        );
    }

    // The body cap: 64 KiB exactly is read, one byte more is refused.
    let prefix = "user=ana&message=at+the+cap&room=cap&_=";
    let at_cap = format!("{prefix}{}", "x".repeat(65_536 - prefix.len()));
    d.send(
        "send, body exactly 64 KiB",
        post("sendMessage.php", &at_cap),
    );
    let over = format!("{at_cap}x");
    for ep in ENDPOINTS {
        d.err413(
            &format!("{ep} body 64 KiB + 1"),
            post(&format!("/{ep}"), &over),
        );
        d.err413(
            &format!("{ep} over the cap with bad params"),
            post(
                &format!("/{ep}?room=!"),
                &format!("room=!&user[]=x&_={}", "z".repeat(70_000)),
            ),
        );
        d.err413(
            &format!("{ep} over the cap, not a form"),
            Req::new("POST", &format!("/{ep}")).body(Some("text/plain"), vec![b'y'; 70_000]),
        );
        d.err413(
            &format!("{ep} over the cap, no Content-Type"),
            Req::new("POST", &format!("/{ep}")).body(None, vec![b'y'; 65_537]),
        );
        d.err413(
            &format!("GET {ep} with a body over the cap"),
            Req::new("GET", &format!("/{ep}?user=ana&message=hi&room=cap"))
                .body(Some(FORM), vec![b'g'; 70_000]),
        );
    }
    let at_cap = d.last_id;
    d.ids(
        "nothing over the cap was stored",
        get("listenToRecive.php", "room=cap"),
        &[at_cap],
    );
}

/// `$_REQUEST`: query and urlencoded body, decoding, repeats, names, limits.
fn parameters(d: &mut Diff) {
    let first = d.last_id + 1;
    // Body over query, per name.
    d.send(
        "body over query",
        post(
            "sendMessage.php?user=query&message=query&room=query",
            "message=body&room=params",
        ),
    );
    d.send(
        "last repeat wins (query and body)",
        post(
            "sendMessage.php?user=a1&user=a2&room=params",
            "message=m1&message=m2",
        ),
    );
    d.send(
        "query only, empty POST body",
        post("sendMessage.php?user=q&message=query+only&room=params", ""),
    );
    d.send(
        "+ and percent decoding",
        get(
            "sendMessage.php",
            "user=jos%C3%A9+luis&message=hello+world%21+%2B1+100%25+a%2bb&room=params",
        ),
    );
    d.send(
        "malformed percent escapes stay",
        get(
            "sendMessage.php",
            "user=pct&message=100%+sure%zz%4%&room=params",
        ),
    );
    d.send(
        "value holding =",
        get("sendMessage.php", "user=eq&message=a=b==c&room=params"),
    );
    d.send(
        "jQuery cache buster and empty pieces",
        get(
            "sendMessage.php",
            "&&_=1700000000123&user=ana&&message=busted&room=params&",
        ),
    );
    d.send(
        "empty pieces in the body",
        post(
            "sendMessage.php",
            "&user=ana&&message=body+pieces&&room=params&",
        ),
    );
    d.send(
        "name with a leading space",
        get(
            "sendMessage.php",
            "%20user=lead&message=leading+space+name&room=params",
        ),
    );
    d.send(
        "names mangled: user.x and user x are user_x, not user",
        get(
            "sendMessage.php",
            "user.x=no&user%20x=no&user=mangle&message=ok&room=params",
        ),
    );
    d.err400(
        "name cut at NUL: us%00er is us",
        get("sendMessage.php", "us%00er=x&message=hi&room=params"),
        "missing user",
    );
    d.err400(
        "user[ is user_, not user",
        get("sendMessage.php", "user[=x&message=hi&room=params"),
        "missing user",
    );
    d.err400(
        "user] is not user",
        get("sendMessage.php", "user]=x&message=hi&room=params"),
        "missing user",
    );
    d.send(
        "user[ after user leaves user alone",
        get("sendMessage.php", "user=brk&user[=x&message=hi&room=params"),
    );
    // Nesting over max_input_nesting_level removes the variable from its source.
    let deep = "[a]".repeat(65);
    d.err400(
        "too deep in the query removes user",
        get(
            "sendMessage.php",
            &format!("user=ana&user{deep}=x&message=hi&room=params"),
        ),
        "missing user",
    );
    d.send(
        "too deep in the body leaves the query's user",
        post(
            "sendMessage.php?user=deep&room=params",
            &format!("user{deep}=x&message=deep+body"),
        ),
    );
    let nested = "[a]".repeat(64);
    d.err400(
        "64 levels is still an array",
        get(
            "sendMessage.php",
            &format!("user{nested}=x&message=hi&room=params"),
        ),
        "invalid user",
    );
    // max_input_vars: the 1001st piece of a query is dropped, a body takes 1001.
    let pad = "_=1&".repeat(1000);
    d.err400(
        "query: user as piece 1001 is dropped",
        get(
            "sendMessage.php",
            &format!("{pad}user=ana&message=hi&room=params"),
        ),
        "missing user",
    );
    d.send(
        "body: user as piece 1001 counts",
        post(
            "sendMessage.php?message=vars&room=params",
            &format!("{pad}user=vars"),
        ),
    );
    d.err400(
        "body: piece 1002 is dropped",
        post(
            "sendMessage.php?message=vars&room=params",
            &format!("{pad}_=2&user=vars"),
        ),
        "missing user",
    );

    let params_last = d.last_id;
    // Which bodies are read: urlencoded only, by its media type.
    for (ct, read) in [
        ("application/x-www-form-urlencoded; charset=UTF-8", true),
        ("APPLICATION/X-WWW-FORM-URLENCODED", true),
        ("application/x-www-form-urlencoded;charset=utf-8;x=y", true),
        ("application/x-www-form-urlencoded,text/plain", true),
        ("application/x-www-form-urlencoded charset=UTF-8", true),
        ("application/x-www-form-urlencoded\t;charset=UTF-8", false),
        ("application/x-www-form-urlencodedx", false),
        ("application/x-www-form", false),
        ("text/plain", false),
        ("application/json", false),
    ] {
        let req = Req::new("POST", "/sendMessage.php?room=ctype")
            .body(Some(ct), b"user=ct&message=read".to_vec());
        if read {
            d.send(&format!("Content-Type {ct:?} is read"), req);
        } else {
            d.err400(
                &format!("Content-Type {ct:?} is not read"),
                req,
                "missing user",
            );
        }
    }
    d.err400(
        "no Content-Type: body not read",
        Req::new("POST", "/sendMessage.php?room=ctype").body(None, b"user=ct&message=x".to_vec()),
        "missing user",
    );
    let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nmp\r\n\
                     --XyZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nmp\r\n--XyZ--\r\n";
    d.err400(
        "multipart: only the query counts",
        Req::new("POST", "/sendMessage.php?room=ctype&user=q").body(
            Some("multipart/form-data; boundary=XyZ"),
            multipart.as_bytes().to_vec(),
        ),
        "missing message",
    );
    d.err400(
        "JSON body: only the query counts",
        Req::new("POST", "/sendMessage.php?room=ctype&message=q")
            .body(Some(JSON), br#"{"user":"j","message":"j"}"#.to_vec()),
        "missing user",
    );
    d.err400(
        "a GET's form body is never read",
        Req::new("GET", "/sendMessage.php?room=ctype&user=g")
            .body(Some(FORM), b"message=from+a+get+body".to_vec()),
        "missing message",
    );

    let stored: Vec<i64> = (first..=params_last).collect();
    d.ids(
        "what the parameter tests stored",
        get("listenToRecive.php", "room=params"),
        &stored[..stored.len().min(50)],
    );
    d.same(
        "what the Content-Type tests stored",
        get("listenToRecive.php", "room=ctype"),
    );
}

/// Escaping of names and messages, trimming, lengths in code points.
fn escaping_and_lengths(d: &mut Diff) {
    let first = d.last_id + 1;
    let messages = [
        r#""double" and 'single' quotes"#,
        "<script>alert('x')</script> <b>bold</b>",
        "a & b &amp; &lt; &#039; &#x41; &quot;",
        r"a/b \ c // \\ \/ \u0041 \n",
        r#"{"id":1,"user":"x"}"#,
        "é ñ ü ç ß Å Ø",
        "€ 中文 日本語 한국어 Ελληνικά русский עברית العربية",
        "😀 𝄞 👍🏽 🇪🇸 👨‍👩‍👧",
        "\u{1}\u{2}\u{8}\u{b}\u{c}\u{e}\u{1b}\u{1f}\u{7f} controls",
        "in\tthe\nmiddle\r\nof\u{c}it",
        "nul\0inside",
        "\u{2028}\u{2029}\u{feff}\u{fffe}\u{ffff}\u{10ffff}\u{a0}\u{200b}",
        "  \t\n\r\0\u{b}trimmed both ends\u{b}\0\r\n\t  ",
        "\u{c}form feed is not trimmed\u{c}",
        "\u{a0}nbsp is not trimmed\u{a0}",
        "%41 %2F + = & ? #",
        "x",
    ];
    let users = [
        "<b>\"Ana\"</b>",
        "O'Brien",
        "José",
        "😀",
        "a/b\\c",
        "x&y",
        "tab\tname",
        "nul\0name",
        "\u{c}",
        "  padded  ",
        "%2F",
    ];
    for (i, m) in messages.iter().enumerate() {
        let u = users[i % users.len()];
        let body = form(&[("user", u), ("message", m), ("room", "esc")]);
        d.send(
            &format!("escaping: message {m:?} by {u:?}"),
            post("sendMessage.php", &body),
        );
    }
    // Lengths at the limits, in code points (the body stays under 64 KiB).
    for (user, message) in [
        ("u".repeat(32), "m".repeat(1000)),
        ("😀".repeat(32), "😀".repeat(1000)),
        ("é".repeat(32), "é".repeat(1000)),
        (
            format!(" \t{}\0 ", "中".repeat(32)),
            format!("\n\0{}\t ", "中".repeat(1000)),
        ),
    ] {
        let body = form(&[("user", &user), ("message", &message), ("room", "esc")]);
        d.send(
            &format!("at the limits: user {:?}", cut(&user, 6)),
            post("sendMessage.php", &body),
        );
    }
    for (user, message, reason) in [
        ("😀".repeat(33), "x".to_string(), "user too long"),
        ("ana".to_string(), "😀".repeat(1001), "message too long"),
        (
            "ana".to_string(),
            format!("{}e\u{301}", "e".repeat(999)),
            "message too long",
        ),
    ] {
        let body = form(&[("user", &user), ("message", &message), ("room", "esc")]);
        d.err400(
            &format!("one code point over: {reason}"),
            post("sendMessage.php", &body),
            reason,
        );
    }
    let stored: Vec<i64> = (first..=d.last_id).collect();
    d.ids(
        "escaped history",
        get("listenToRecive.php", "room=esc"),
        &stored,
    );
    d.ids(
        "escaped follow",
        get(
            "listenToRecive.php",
            &format!("room=esc&lastId={}", first + 3),
        ),
        &stored[4..],
    );
}

/// Default room, rooms apart from each other, room names at the limits.
fn rooms(d: &mut Diff) {
    let max_room = "Az09_-".repeat(11)[..64].to_string();
    let main_first = d.last_id + 1;
    d.send(
        "no room is main",
        post("sendMessage.php", "user=ana&message=to+main"),
    );
    d.send(
        "room=main",
        post("sendMessage.php", "user=bob&message=also+main&room=main"),
    );
    d.send(
        "room trimmed to main",
        get(
            "sendMessage.php",
            "user=bob&message=trimmed+room&room=%20main%00%0A",
        ),
    );
    let other = d.send(
        "room=Main is another room",
        post("sendMessage.php", "user=ana&message=capital&room=Main"),
    );
    let longest = d.send(
        "room of 64",
        post(
            "sendMessage.php",
            &format!("user=ana&message=longest&room={max_room}"),
        ),
    );
    let under = d.send(
        "room=_",
        get("sendMessage.php", "user=ana&message=u&room=_"),
    );
    let dash = d.send(
        "room=-",
        get("sendMessage.php", "user=ana&message=d&room=-"),
    );
    let main: Vec<i64> = (main_first..main_first + 3).collect();
    d.ids(
        "main, room absent",
        get("listenToRecive.php", "lastId=0"),
        &main,
    );
    d.ids(
        "main, room=main",
        post("listenToRecive.php", "lastId=0&room=main"),
        &main,
    );
    d.ids(
        "main, follow",
        get("listenToRecive.php", &format!("lastId={}", main_first)),
        &main[1..],
    );
    d.ids("Main", get("listenToRecive.php", "room=Main"), &[other]);
    d.ids(
        "room of 64",
        get("listenToRecive.php", &format!("room={max_room}")),
        &[longest],
    );
    d.ids("room _", get("listenToRecive.php", "room=_"), &[under]);
    d.ids(
        "room -",
        get("listenToRecive.php", "room=-&lastId=1"),
        &[dash],
    );
    d.ids(
        "room never used",
        get("listenToRecive.php", "room=nobody"),
        &[],
    );
    d.exact(
        "users of room of 64",
        get("getNumberOfUsers.php", &format!("room={max_room}")),
        200,
        HTML,
        "1",
    );
}

/// Typing flags: set, clear, send clears, lists the others sorted and escaped.
/// All within a few seconds (a flag lapses after 5 s), in rooms of their own.
fn typing(d: &mut Diff) {
    let t = |q: &str| post("isTyping.php", &format!("room=typ&{q}"));
    d.exact("ana starts", t("user=ana&typing=1"), 200, JSON, "[]");
    d.exact(
        "bob starts",
        t("user=bob&typing=1"),
        200,
        JSON,
        r#"["ana"]"#,
    );
    d.exact(
        "carol looks",
        t("user=carol"),
        200,
        JSON,
        r#"["ana","bob"]"#,
    );
    d.exact("ana looks", t("user=ana"), 200, JSON, r#"["bob"]"#);
    d.exact("bob stops", t("user=bob&typing=0"), 200, JSON, r#"["ana"]"#);
    d.exact(
        "carol looks again",
        t("user=carol"),
        200,
        JSON,
        r#"["ana"]"#,
    );
    d.send(
        "ana sends: her flag goes",
        post("sendMessage.php", "user=ana&message=sent&room=typ"),
    );
    d.exact("carol: nobody types", t("user=carol"), 200, JSON, "[]");
    // typing is read as (int) of the trimmed value.
    for (raw, sets) in [
        ("1e0", true),
        ("0.5", false),
        ("1.9", true),
        ("abc", false),
        ("%201%20", true),
        ("", false),
        ("+1", true),
        ("-0", false),
        ("01", true),
        ("0x1", false),
        ("%001", true),
        ("1abc", true),
        ("%0B0%0B", false),
    ] {
        d.exact(
            &format!("bob typing={raw}"),
            t(&format!("user=bob&typing={raw}")),
            200,
            JSON,
            "[]",
        );
        d.exact(
            &format!("carol sees bob after typing={raw}"),
            t("user=carol"),
            200,
            JSON,
            if sets { r#"["bob"]"# } else { "[]" },
        );
    }
    d.exact(
        "bob typing via GET",
        get("isTyping.php", "room=typ&user=bob&typing=1"),
        200,
        JSON,
        "[]",
    );
    d.exact(
        "typing in the body over the query",
        post("isTyping.php?room=typ&user=bob&typing=1", "typing=0"),
        200,
        JSON,
        "[]",
    );
    d.exact("carol: bob stopped", t("user=carol"), 200, JSON, "[]");
    // Names, escaped, in byte order; the caller is never listed; rooms apart.
    let names = [
        "zed",
        "Zed",
        "ñandú",
        "<b>\"Zoë\"</b>",
        "O'Brien",
        "a/b",
        "x&y",
        "😀",
        "_",
        "nul\0name",
        " trimmed\t",
    ];
    for n in names {
        d.same(
            &format!("{n:?} starts"),
            post(
                "isTyping.php",
                &form(&[("room", "typ2"), ("user", n), ("typing", "1")]),
            ),
        );
    }
    d.same(
        "ana in another room",
        post("isTyping.php", "room=typ3&user=ana&typing=1"),
    );
    d.same("ana lists typ2", post("isTyping.php", "room=typ2&user=ana"));
    d.same("Zed lists typ2", post("isTyping.php", "room=typ2&user=Zed"));
    d.same(
        "trimmed lists typ2",
        post("isTyping.php", "room=typ2&user=trimmed"),
    );
    d.same("main: nobody", post("isTyping.php", "user=ana"));
    for n in names {
        d.same(
            &format!("{n:?} stops"),
            post(
                "isTyping.php",
                &form(&[("room", "typ2"), ("user", n), ("typing", "0")]),
            ),
        );
    }
    d.same(
        "typ3 ana stops",
        post("isTyping.php", "room=typ3&user=ana&typing=0"),
    );
    d.exact(
        "typ2: nobody",
        post("isTyping.php", "room=typ2&user=x"),
        200,
        JSON,
        "[]",
    );
}

/// Presence: distinct users seen in the room within 30 s, by any endpoint that
/// takes `user`; a refused request marks nobody.
fn presence(d: &mut Diff) {
    let n = |d: &mut Diff, label: &str, want: &str| {
        d.exact(
            label,
            get("getNumberOfUsers.php", "room=pres"),
            200,
            HTML,
            want,
        );
    };
    n(d, "nobody in pres", "0");
    d.send(
        "a sends",
        post("sendMessage.php", "room=pres&user=a&message=hi"),
    );
    n(d, "a", "1");
    d.same("b listens", get("listenToRecive.php", "room=pres&user=b"));
    n(d, "a b", "2");
    d.same(
        "listen without user",
        get("listenToRecive.php", "room=pres&user="),
    );
    n(d, "still a b", "2");
    d.same("c types", post("isTyping.php", "room=pres&user=c"));
    n(d, "a b c", "3");
    d.send(
        "a again, trimmed",
        post("sendMessage.php", "room=pres&user=%20a%00&message=again"),
    );
    n(d, "still a b c", "3");
    d.same("a in pres2", post("isTyping.php", "room=pres2&user=a"));
    n(d, "pres2 does not count", "3");
    d.exact(
        "pres2 has a",
        post("getNumberOfUsers.php", "room=pres2"),
        200,
        HTML,
        "1",
    );
    d.err400(
        "refused listen marks nobody",
        get("listenToRecive.php", "room=pres&user=d&lastId[]=1"),
        "invalid lastId",
    );
    d.err400(
        "refused send marks nobody",
        post("sendMessage.php", "room=pres&user=d&message="),
        "missing message",
    );
    d.err400(
        "refused typing marks nobody",
        post("isTyping.php", "room=pres&user=d&typing=5"),
        "invalid typing",
    );
    n(d, "still three", "3");
    d.same("A is not a", get("isTyping.php", "room=pres&user=A&_=1"));
    d.same(
        "😀 listens by POST",
        post(
            "listenToRecive.php",
            &form(&[("room", "pres"), ("user", "😀"), ("lastId", "0")]),
        ),
    );
    n(d, "five", "5");
    d.exact(
        "users body room over query",
        post("getNumberOfUsers.php?room=nobody", "room=pres"),
        200,
        HTML,
        "5",
    );
    d.err400(
        "users: invalid room",
        get("getNumberOfUsers.php", "room=pres%21"),
        "invalid room",
    );
    d.exact(
        "users of a room never used",
        get("getNumberOfUsers.php", "room=never"),
        200,
        HTML,
        "0",
    );
}

/// Long-polls: quiet ones answer `[]` after the hold; held ones are woken by a send.
fn long_poll(d: &mut Diff) {
    let top = d.last_id;
    // Quiet polls, three at a time (php -S has four workers).
    d.polls(
        "quiet",
        vec![
            Poll::quiet(
                "lastId at the top",
                get("listenToRecive.php", &format!("room=many&lastId={top}")),
            ),
            Poll::quiet(
                "lastId=1e3, with a user",
                get("listenToRecive.php", "room=heldroom&lastId=1e3&user=held"),
            ),
            Poll::quiet(
                "lastId saturates",
                post(
                    "listenToRecive.php",
                    "room=many&lastId=99999999999999999999",
                ),
            ),
        ],
        None,
    );
    d.polls(
        "quiet 2",
        vec![
            Poll::quiet(
                "empty room",
                get("listenToRecive.php", "room=wake&lastId=1"),
            ),
            Poll::quiet("main", get("listenToRecive.php", &format!("lastId={top}"))),
        ],
        None,
    );
    d.exact(
        "a held poll marks presence",
        get("getNumberOfUsers.php", "room=heldroom"),
        200,
        HTML,
        "1",
    );

    // Woken: the poll in `wake` gets the message; the one in `quiet` does not.
    let next = top + 1;
    d.polls(
        "woken by a send",
        vec![
            Poll::woken(
                "poll in wake",
                get(
                    "listenToRecive.php",
                    &format!("room=wake&lastId={top}&user=w&_=1"),
                ),
                vec![next],
            ),
            Poll::quiet(
                "poll in quiet",
                get("listenToRecive.php", &format!("room=quiet&lastId={top}")),
            ),
            Poll::woken(
                "older lastId in wake, by POST",
                post("listenToRecive.php", "room=wake&lastId=125"),
                vec![next],
            ),
        ],
        Some(post(
            "sendMessage.php",
            &form(&[
                ("user", "<w>"),
                ("message", "wake \"up\" 😀 </b>"),
                ("room", "wake"),
            ]),
        )),
    );
    let next2 = next + 1;
    d.polls(
        "woken by a GET send to main",
        vec![Poll::woken(
            "poll in main",
            get("listenToRecive.php", &format!("lastId={next}")),
            vec![next2],
        )],
        Some(get("sendMessage.php", "user=m&message=to+main+by+GET")),
    );
    d.ids(
        "wake after the polls",
        get("listenToRecive.php", "room=wake"),
        &[next],
    );
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// One request, sent alike to both servers.
#[derive(Clone)]
struct Req {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn new(method: &'static str, target: &str) -> Req {
        Req {
            method,
            target: target.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn get(target: &str) -> Req {
        Req::new("GET", target)
    }

    /// Sets the body and, if given, its `Content-Type`.
    fn body(mut self, content_type: Option<&str>, body: Vec<u8>) -> Req {
        if let Some(ct) = content_type {
            self.headers.push(("Content-Type".into(), ct.into()));
        }
        self.body = body;
        self
    }

    fn header_refs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// Sends on a fresh connection; the answer and how long it took.
    fn run(&self, addr: SocketAddr) -> Result<Timed, String> {
        let t0 = Instant::now();
        try_http(
            addr,
            self.method,
            &self.target,
            &self.header_refs(),
            &self.body,
        )
        .map(|res| Timed {
            res,
            took: t0.elapsed(),
        })
        .map_err(|e| format!("I/O error: {e}"))
    }

    /// Opens a connection and sends the request without waiting for the answer.
    fn start(&self, addr: SocketAddr) -> Result<Conn, String> {
        let mut c = Conn::open(addr).map_err(|e| format!("connect: {e}"))?;
        c.write(&request_bytes(
            addr,
            self.method,
            &self.target,
            &self.header_refs(),
            &self.body,
        ))
        .map_err(|e| format!("write: {e}"))?;
        Ok(c)
    }
}

impl std::fmt::Display for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} {}", self.method, cut(&self.target, 300))?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {}", v.escape_debug())?;
        }
        if !self.body.is_empty() {
            write!(
                f,
                "body ({} bytes): {}",
                self.body.len(),
                show(&self.body, 300)
            )?;
        }
        Ok(())
    }
}

/// `GET /ep?query`.
fn get(ep: &str, query: &str) -> Req {
    Req::get(&format!("/{ep}?{query}"))
}

/// `POST /ep` (`ep` may carry its own query) with an urlencoded body.
fn post(ep: &str, body: &str) -> Req {
    let target = if ep.starts_with('/') {
        ep.to_string()
    } else {
        format!("/{ep}")
    };
    Req::new("POST", &target).body(Some(FORM), body.as_bytes().to_vec())
}

struct Timed {
    res: Response,
    took: Duration,
}

/// A long-poll of a [`Diff::polls`] step, and what it must answer.
struct Poll {
    label: &'static str,
    req: Req,
    /// `None`: `[]` once the hold is over. `Some(ids)`: those messages, woken.
    woken: Option<Vec<i64>>,
}

impl Poll {
    fn quiet(label: &'static str, req: Req) -> Poll {
        Poll {
            label,
            req,
            woken: None,
        }
    }

    fn woken(label: &'static str, req: Req, ids: Vec<i64>) -> Poll {
        Poll {
            label,
            req,
            woken: Some(ids),
        }
    }
}

// ---------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------

/// Both servers, and the differences found so far.
struct Diff {
    php: PhpServer,
    rust: Server,
    compared: usize,
    mismatches: Vec<String>,
    /// The id of the newest message (from the PHP answers).
    last_id: i64,
}

impl Diff {
    fn start() -> Diff {
        let hold = format!("{}", HOLD.as_secs_f64());
        let (php, rust) = thread::scope(|s| {
            let php = s.spawn(|| PhpServer::start(&hold, TZ));
            let rust = Server::builder().hold(&hold).timezone(TZ).start();
            (php.join().expect("php -S start"), rust)
        });
        Diff {
            php,
            rust,
            compared: 0,
            mismatches: Vec::new(),
            last_id: 0,
        }
    }

    /// Sends `req` to both servers at once.
    fn both(&self, req: &Req) -> (Result<Timed, String>, Result<Timed, String>) {
        thread::scope(|s| {
            let php = s.spawn(|| req.run(self.php.addr));
            let rust = req.run(self.rust.addr);
            (php.join().expect("php request thread"), rust)
        })
    }

    /// Compares two answers; records a mismatch. Returns PHP's answer when both came.
    fn record(
        &mut self,
        label: &str,
        req: &Req,
        php: Result<Timed, String>,
        rust: Result<Timed, String>,
    ) -> Option<Response> {
        self.compared += 1;
        match (php, rust) {
            (Ok(p), Ok(r)) => {
                let diffs = differences(&p.res, &r.res);
                if !diffs.is_empty() {
                    self.mismatch(label, req, &diffs, Some(&p), Some(&r));
                }
                Some(p.res)
            }
            (p, r) => {
                let mut diffs = Vec::new();
                if let Err(e) = &p {
                    diffs.push(format!("php: {e}"));
                }
                if let Err(e) = &r {
                    diffs.push(format!("cometa: {e}"));
                }
                self.mismatch(label, req, &diffs, p.as_ref().ok(), r.as_ref().ok());
                None
            }
        }
    }

    fn mismatch(
        &mut self,
        label: &str,
        req: &Req,
        diffs: &[String],
        php: Option<&Timed>,
        rust: Option<&Timed>,
    ) {
        let mut s = String::new();
        let _ = writeln!(s, "==== {label}");
        let _ = writeln!(s, "---- request\n{}", indent(&req.to_string()));
        let _ = writeln!(s, "---- differences");
        for d in diffs {
            let _ = writeln!(s, "  * {d}");
        }
        for (name, t) in [("php (legacy_php)", php), ("cometa", rust)] {
            match t {
                Some(t) => {
                    let _ = writeln!(
                        s,
                        "---- {name}, {:.0?}\n{}",
                        t.took,
                        indent(&show_response(&t.res))
                    );
                }
                None => {
                    let _ = writeln!(s, "---- {name}: no answer");
                }
            }
        }
        self.mismatches.push(s);
    }

    /// The scenario's own expectation (from `docs/wire.md`) of PHP's answer failed.
    fn expectation(&mut self, label: &str, req: &Req, php: &Response, want: &str) {
        self.mismatches.push(format!(
            "==== {label}: PHP does not answer what docs/wire.md says\n---- request\n{}\n---- expected\n  {want}\n---- php (legacy_php)\n{}\n",
            indent(&req.to_string()),
            indent(&show_response(php)),
        ));
    }

    /// Both answer alike.
    fn same(&mut self, label: &str, req: Req) -> Option<Response> {
        let (p, r) = self.both(&req);
        self.record(label, &req, p, r)
    }

    /// Both answer alike, and PHP answers exactly this.
    fn exact(&mut self, label: &str, req: Req, status: u16, ctype: &str, body: &str) {
        if let Some(p) = self.same(label, req.clone())
            && (p.status != status
                || p.header("content-type") != Some(ctype)
                || p.body != body.as_bytes())
        {
            self.expectation(label, &req, &p, &format!("{status} {ctype} {body}"));
        }
    }

    /// Both answer alike, and PHP answers this 405 with this `Allow`.
    fn exact_allow(&mut self, label: &str, req: Req, status: u16, allow: &str) {
        let head = req.method == "HEAD";
        let body = error_body("method not allowed");
        if let Some(p) = self.same(label, req.clone())
            && (p.status != status
                || p.header("content-type") != Some(JSON)
                || p.header("allow") != Some(allow)
                || (!head && p.body != body.as_bytes()))
        {
            self.expectation(label, &req, &p, &format!("{status} Allow: {allow} {body}"));
        }
    }

    fn err400(&mut self, label: &str, req: Req, reason: &str) {
        self.exact(label, req, 400, JSON, &error_body(reason));
    }

    fn err413(&mut self, label: &str, req: Req) {
        self.exact(label, req, 413, JSON, &error_body("request body too large"));
    }

    /// Both answer alike, and PHP answers these messages.
    fn ids(&mut self, label: &str, req: Req, want: &[i64]) {
        if let Some(p) = self.same(label, req.clone())
            && (p.status != 200
                || p.header("content-type") != Some(JSON)
                || message_ids(&p.body) != want)
        {
            self.expectation(label, &req, &p, &format!("200 {JSON} messages {want:?}"));
        }
    }

    /// A send both accept; the new id (PHP's), which becomes `last_id`.
    fn send(&mut self, label: &str, req: Req) -> i64 {
        let want = self.last_id + 1;
        let body = format!(r#"{{"status":"ok","id":{want}}}"#);
        self.exact(label, req, 200, JSON, &body);
        self.last_id = want;
        want
    }

    /// Long-polls held on both servers at once; then `wake` (a send) to both; then
    /// every poll's answer compared. Quiet polls must answer `[]`, and not before the
    /// hold is over; woken ones the messages given.
    fn polls(&mut self, label: &str, polls: Vec<Poll>, wake: Option<Req>) {
        let t0 = Instant::now();
        let mut open = Vec::new();
        for p in &polls {
            open.push((p.req.start(self.php.addr), p.req.start(self.rust.addr)));
        }
        // Held: cometa counts its waiters; PHP cannot say, so give it a moment.
        self.rust
            .wait_waiters(polls.len() as u64, Duration::from_secs(5));
        thread::sleep(Duration::from_millis(300));
        if let Some(wake) = wake {
            self.send(&format!("{label}: the send"), wake);
        }
        for (poll, (php, rust)) in polls.iter().zip(open) {
            let read = |c: Result<Conn, String>| -> Result<Timed, String> {
                let mut c = c?;
                let res = c.read_response(false).map_err(|e| format!("read: {e}"))?;
                Ok(Timed {
                    res,
                    took: t0.elapsed(),
                })
            };
            let (php, rust) = thread::scope(|s| {
                let p = s.spawn(|| read(php));
                let r = read(rust);
                (p.join().expect("php poll thread"), r)
            });
            let name = format!("{label}: {}", poll.label);
            let took = |t: &Result<Timed, String>| t.as_ref().ok().map(|t| t.took);
            let (php_took, rust_took) = (took(&php), took(&rust));
            let Some(p) = self.record(&name, &poll.req, php, rust) else {
                continue;
            };
            match &poll.woken {
                None => {
                    if p.status != 200 || p.body != b"[]" {
                        self.expectation(&name, &poll.req, &p, "200 [] after the hold");
                    }
                    let early = HOLD.mul_f64(0.9);
                    for (side, took) in [("php", php_took), ("cometa", rust_took)] {
                        if took.is_some_and(|t| t < early) {
                            self.mismatches.push(format!(
                                "==== {name}: {side} answered a quiet poll after {took:.0?}, before the hold of {HOLD:?}\n---- request\n{}\n",
                                indent(&poll.req.to_string())
                            ));
                        }
                    }
                }
                Some(ids) => {
                    if p.status != 200 || message_ids(&p.body) != *ids {
                        self.expectation(&name, &poll.req, &p, &format!("200 messages {ids:?}"));
                    }
                }
            }
            eprintln!("differential: {name}: php {php_took:.0?}, cometa {rust_took:.0?}");
        }
    }

    /// The two databases hold the same rows (times within a second; presence and
    /// typing by key).
    fn compare_databases(&mut self) {
        type Msg = (i64, String, Vec<u8>, Vec<u8>, i64);
        type Key = (String, Vec<u8>);
        let dump = |path: &std::path::Path| -> (Vec<Msg>, Vec<Key>, Vec<Key>) {
            let c = open_db(path);
            let mut st = c
                .prepare("SELECT id, room, CAST(user AS BLOB), CAST(message AS BLOB), created_at FROM messages ORDER BY id")
                .unwrap();
            let msgs = st
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .unwrap()
                .collect::<Result<Vec<Msg>, _>>()
                .unwrap();
            let keys = |table: &str| {
                let mut st = c
                    .prepare(&format!(
                        "SELECT room, CAST(user AS BLOB) FROM {table} ORDER BY 1, 2"
                    ))
                    .unwrap();
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<Result<Vec<Key>, _>>()
                    .unwrap()
            };
            (msgs, keys("presence"), keys("typing"))
        };
        let (pm, pp, pt) = dump(&self.php.db);
        let (rm, rp, rt) = dump(&self.rust.db);
        let mut diffs = Vec::new();
        if pm.len() != rm.len() {
            diffs.push(format!(
                "messages: php {} rows, cometa {}",
                pm.len(),
                rm.len()
            ));
        }
        for (p, r) in pm.iter().zip(&rm) {
            if (p.0, &p.1, &p.2, &p.3) != (r.0, &r.1, &r.2, &r.3) || (p.4 - r.4).abs() > 1 {
                diffs.push(format!(
                    "message row: php (id {}, room {:?}, user {}, message {}, created_at {}) cometa (id {}, room {:?}, user {}, message {}, created_at {})",
                    p.0, p.1, show(&p.2, 80), show(&p.3, 80), p.4, r.0, r.1, show(&r.2, 80), show(&r.3, 80), r.4
                ));
            }
        }
        for (table, p, r) in [("presence", &pp, &rp), ("typing", &pt, &rt)] {
            if p != r {
                diffs.push(format!(
                    "{table}: php {:?}\n    cometa {:?}",
                    p.iter()
                        .map(|(room, u)| format!("{room}/{}", show(u, 40)))
                        .collect::<Vec<_>>(),
                    r.iter()
                        .map(|(room, u)| format!("{room}/{}", show(u, 40)))
                        .collect::<Vec<_>>()
                ));
            }
        }
        if !diffs.is_empty() {
            self.mismatches.push(format!(
                "==== the databases differ\n{}\n",
                diffs
                    .iter()
                    .map(|d| format!("  * {d}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }

    fn finish(self) {
        if self.mismatches.is_empty() {
            return;
        }
        panic!(
            "{} difference(s) between legacy_php and cometa in {} exchanges:\n\n{}",
            self.mismatches.len(),
            self.compared,
            self.mismatches.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Comparing answers
// ---------------------------------------------------------------------------

/// Where two answers differ: status, `Content-Type`, `Allow`, body bytes (times
/// within a second).
fn differences(php: &Response, rust: &Response) -> Vec<String> {
    let mut out = Vec::new();
    if php.status != rust.status {
        out.push(format!(
            "status: php {}, cometa {}",
            php.status, rust.status
        ));
    }
    for h in ["content-type", "allow"] {
        if php.header(h) != rust.header(h) {
            out.push(format!(
                "{h}: php {:?}, cometa {:?}",
                php.header(h),
                rust.header(h)
            ));
        }
    }
    let (p_rest, p_times) = split_times(&php.body);
    let (r_rest, r_times) = split_times(&rust.body);
    if p_rest != r_rest {
        let at = p_rest
            .iter()
            .zip(&r_rest)
            .position(|(a, b)| a != b)
            .unwrap_or(p_rest.len().min(r_rest.len()));
        out.push(format!(
            "body (times aside) differs at byte {at}: php …{}… cometa …{}…",
            show_around(&p_rest, at),
            show_around(&r_rest, at)
        ));
    } else {
        for (i, (p, r)) in p_times.iter().zip(&r_times).enumerate() {
            match (parse_time(p), parse_time(r)) {
                (Some(a), Some(b)) if (a - b).abs() <= 1 => {}
                _ => out.push(format!(
                    "time #{i}: php {p:?}, cometa {r:?} (more than a second apart)"
                )),
            }
        }
    }
    out
}

/// The body with every `"time":"…"` value taken out, and those values.
fn split_times(body: &[u8]) -> (Vec<u8>, Vec<String>) {
    const KEY: &[u8] = b"\"time\":\"";
    let mut rest = Vec::with_capacity(body.len());
    let mut times = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(KEY) {
            let start = i + KEY.len();
            if let Some(len) = body[start..].iter().position(|&b| b == b'"') {
                rest.extend_from_slice(KEY);
                rest.push(b'"');
                times.push(String::from_utf8_lossy(&body[start..start + len]).into_owned());
                i = start + len + 1;
                continue;
            }
        }
        rest.push(body[i]);
        i += 1;
    }
    (rest, times)
}

/// `YYYY-MM-DD HH:MM:SS` as seconds since an arbitrary epoch (both sides use the
/// same zone, so a civil difference is a real one).
fn parse_time(t: &str) -> Option<i64> {
    if t.len() != 19 {
        return None;
    }
    let dt = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", t).ok()?;
    Some(jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()?.as_second())
}

/// The ids of the messages of a listen answer, in order.
fn message_ids(body: &[u8]) -> Vec<i64> {
    let text = String::from_utf8_lossy(body);
    text.match_indices("{\"id\":")
        .filter_map(|(at, key)| {
            let digits: String = text[at + key.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Showing things
// ---------------------------------------------------------------------------

/// Bytes as text with escapes, cut after `max` bytes.
fn show(b: &[u8], max: usize) -> String {
    let shown = b[..b.len().min(max)].escape_ascii().to_string();
    if b.len() > max {
        format!("{shown}… ({} bytes)", b.len())
    } else {
        shown
    }
}

/// 60 bytes either side of `at`.
fn show_around(b: &[u8], at: usize) -> String {
    let from = at.saturating_sub(60);
    let to = (at + 60).min(b.len());
    b[from..to].escape_ascii().to_string()
}

fn show_response(r: &Response) -> String {
    let mut s = format!("HTTP/1.1 {} {}\n", r.status, r.reason);
    for (k, v) in &r.headers {
        let _ = writeln!(s, "{k}: {v}");
    }
    let _ = write!(s, "body ({} bytes): {}", r.body.len(), show(&r.body, 1500));
    s
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// At most `max` characters of `s`.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
