//! Output bytes: `htmlspecialchars(ENT_QUOTES, 'UTF-8')` then PHP's `json_encode` with
//! default flags (`\/`, `\uXXXX` for every non-ASCII character, surrogate pairs).

mod common;

use common::{Server, msg_json, parse_messages};

/// Sends one message and returns the exact listen answer expected for it.
fn roundtrip(user: &str, message: &str, user_json: &str, message_json: &str) {
    let s = Server::start();
    assert_eq!(s.send(user, message, "main"), 1);
    let r = s.listen(0, "main");
    let m = parse_messages(&r);
    assert_eq!(m.len(), 1, "{r}");
    r.assert_json(&format!(
        "[{}]",
        msg_json(1, user_json, message_json, &m[0].time)
    ));
    // The follow path uses the same encoding.
    assert_eq!(s.send("z", "next", "main"), 2);
    let r = s.listen(0, "main");
    let m = parse_messages(&r);
    r.assert_json(&format!(
        "[{},{}]",
        msg_json(1, user_json, message_json, &m[0].time),
        msg_json(2, "z", "next", &m[1].time)
    ));
}

#[test]
fn html_special_characters_in_messages() {
    roundtrip(
        "ana",
        "<script>alert(\"x's\")</script> & done",
        "ana",
        r#"&lt;script&gt;alert(&quot;x&#039;s&quot;)&lt;\/script&gt; &amp; done"#,
    );
}

#[test]
fn entities_are_double_encoded() {
    roundtrip(
        "ana",
        "&amp; &lt; &#039; &#x41;",
        "ana",
        "&amp;amp; &amp;lt; &amp;#039; &amp;#x41;",
    );
}

#[test]
fn slash_and_non_ascii_in_messages() {
    roundtrip(
        "ana",
        "a/b é ñ € 中 😀 𝄞",
        "ana",
        r#"a\/b \u00e9 \u00f1 \u20ac \u4e2d \ud83d\ude00 \ud834\udd1e"#,
    );
}

#[test]
fn control_characters_and_backslash() {
    roundtrip(
        "ana",
        "a\nb\tc\rd\u{1}e\u{8}f\u{c}g\\h\0i\u{1f}j",
        "ana",
        r#"a\nb\tc\rd\u0001e\bf\fg\\h\u0000i\u001fj"#,
    );
}

#[test]
fn user_names_are_escaped_the_same_way() {
    roundtrip(
        "<b>\"O'Neil\" & /é😀",
        "hi",
        r#"&lt;b&gt;&quot;O&#039;Neil&quot; &amp; \/\u00e9\ud83d\ude00"#,
        "hi",
    );
}

#[test]
fn typing_names_are_escaped_the_same_way() {
    let s = Server::start();
    let r = s.typing(&format!(
        "user={}&typing=1",
        common::enc("<b>\"O'Neil\" & /é😀")
    ));
    r.assert_json("[]");
    s.typing("user=x")
        .assert_json(r#"["&lt;b&gt;&quot;O&#039;Neil&quot; &amp; \/\u00e9\ud83d\ude00"]"#);
}

#[test]
fn every_escape_at_once_stays_within_the_limits() {
    // 1000 code points of '<' become 4000 bytes of "&lt;": the limit is on the input.
    let s = Server::start();
    let msg = "<".repeat(1000);
    assert_eq!(s.send("ana", &msg, "main"), 1);
    let r = s.listen(0, "main");
    let m = parse_messages(&r);
    assert_eq!(m[0].message, "&lt;".repeat(1000));
}

#[test]
fn rows_written_by_php_are_escaped_on_read() {
    // A row inserted by another process (raw, as PHP stores it) is escaped on output.
    let s = Server::start();
    s.db()
        .execute(
            "INSERT INTO messages (room, user, message, created_at) VALUES ('main', '<u>', 'x/y \"é\"', 0)",
            [],
        )
        .unwrap();
    let r = s.listen(0, "main");
    r.assert_json(&format!(
        "[{}]",
        msg_json(
            1,
            "&lt;u&gt;",
            r#"x\/y &quot;\u00e9&quot;"#,
            "1970-01-01 00:00:00"
        )
    ));
}
