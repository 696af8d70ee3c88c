//! Differential test of the "talk to a stranger" chat: one scenario, sent request
//! by request to its PHP reference (`php -S` on `legacy_php/omegle/public`) and to
//! `cometa --profile omegle`, each on a fresh database. Every answer must match:
//! status, `Content-Type` and the body's bytes; then the rows of the five tables
//! (dates aside: each must be a `CURRENT_TIMESTAMP` of the run). The scenario also
//! states what each answer and the final rows must be (the contract,
//! `docs/apps/omegle.md`): a PHP answer that differs is reported too, and
//! `php_reference_meets_the_contract` checks the reference alone.
//!
//! Requests are sent as the page sends them: `POST` with an empty body and no
//! `Content-Type`, the parameters in the query string, a message unencoded as
//! typed and then encoded as the browser encodes a URL (`as_browser_sends`).
//! A few requests use a form body or `GET`, which `$_REQUEST` reads too.
//! `randomChat.php` picks a random waiting user: the scenario never has more than
//! one candidate waiting, so both servers pick the same one.
//!
//! cometa holds a quiet `listenToReceive.php` for its `--hold` (1 s here) and then
//! answers it empty; PHP answers it empty at once. Both bodies are empty, so they
//! compare equal; each request goes to both servers at the same time.
//!
//! Without `php`, the tests say loudly that they are skipped; under `CI=true`
//! they fail.

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::thread;
use std::time::Instant;

use common::omegle::{
    HTML, MsgRow, NO_RESULT, Tables, apply_schema, send_target, start_cometa_in, start_php, user,
};
use common::php::{PhpServer, php_or_skip};
use common::{Response, Server, now_secs, try_http};
use rusqlite::types::Value;

/// Hold of a quiet poll on cometa's side, in seconds.
const HOLD: &str = "1";
/// `saveLog.php` of a user with no delivered message.
const EMPTY_LOG: &str = "<div style='padding:15px;' ></div>";

const ANA: i64 = 1;
const BOB: i64 = 2;

/// What ana types, one message each, and what PHP stores and delivers (the page
/// puts the text in the URL unencoded).
const ANA_TYPES: [(&str, &str); 10] = [
    ("hello stranger", "hello stranger"),
    // `'` is stored (the original's SQL broke on it); `&` ends the message.
    ("it's <b>bold</b> & brave", "it's <b>bold</b> "),
    ("café crème, naïve — 😀", "café crème, naïve — 😀"),
    // `+` is a space; `=` after the first is part of the value.
    ("1+1=2", "1 1=2"),
    // `#` starts the fragment, which the browser never sends: an empty message.
    ("#1 fan", ""),
    ("after the hash", "after the hash"),
    // A stray `%` stays; `%25` is a `%`.
    ("100% sure, 50%25 off", "100% sure, 50% off"),
    ("a;b=c d", "a;b=c d"),
    // The browser drops the URL's trailing spaces; the server trims nothing.
    ("  padded  ", "  padded"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),
];

/// What bob types (all delivered as typed).
const BOB_TYPES: [&str; 3] = ["hi ana 👋", "bye", "x"];

#[test]
fn php_and_cometa_answer_alike() {
    if !php_or_skip("omegle differential") {
        return;
    }
    run(true);
}

#[test]
fn php_reference_meets_the_contract() {
    if !php_or_skip("omegle PHP reference") {
        return;
    }
    run(false);
}

/// The page puts the text in the URL unencoded, so a typed `%FF` reaches PHP as
/// the byte 0xFF: PHP stores and delivers the bytes it decoded, valid UTF-8 or
/// not (the recipient's browser shows U+FFFD). cometa's values are text: it
/// stores and delivers U+FFFD for each bad byte (`src/engine.rs`,
/// `read_params`), which is what the recipient sees either way, but not the
/// same bytes.
#[test]
#[ignore = "known divergence: cometa stores U+FFFD for bytes that are not UTF-8 (the character the browser shows); PHP keeps the bytes"]
fn a_typed_escape_that_is_not_utf8_is_kept_as_php_keeps_it() {
    if !php_or_skip("omegle differential, bytes") {
        return;
    }
    let mut d = Diff::start(true);
    d.page("ana starts", "startChat.php", "1");
    d.page("bob starts", "startChat.php", "2");
    d.page("bob finds ana", "randomChat.php?userId=2", "1");
    for (typed, stored) in [
        ("50%FF off", &b"50\xFF off"[..]),
        ("caf%C3", b"caf\xC3"),
        ("nul %00 byte", b"nul \0 byte"),
    ] {
        d.send(ANA, BOB, typed);
        d.exact(
            "bob's poll",
            Req::page("/listenToReceive.php?userId=2"),
            stored,
        );
    }
    d.finish();
}

fn run(with_cometa: bool) {
    let t0 = Instant::now();
    let mut d = Diff::start(with_cometa);
    let started = t0.elapsed();

    empty(&mut d);
    pairing(&mut d);
    messages(&mut d);
    typing(&mut d);
    save_log(&mut d);
    unknown_users(&mut d);
    leaving(&mut d);
    odd_ids_and_sources(&mut d);
    d.compare_tables(&expected_tables());

    eprintln!(
        "omegle differential ({}): {} exchanges in {:.1?} (servers started in {started:.1?})",
        if with_cometa { "php and cometa" } else { "php" },
        d.compared,
        t0.elapsed(),
    );
    d.finish();
}

// ---------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------

/// Nothing stored yet.
fn empty(d: &mut Diff) {
    d.page("no users", "getNumberOfUsers.php", "0");
    d.page("listen, nobody", "listenToReceive.php?userId=1", NO_RESULT);
    d.page("isTyping, nobody", "isTyping.php?strangerId=1", "");
    d.page(
        "saveLog, nobody",
        "saveLog.php?userId=1&strangerId=2",
        EMPTY_LOG,
    );
}

/// ana waits alone, bob comes, they are paired; repeated calls give the partner.
fn pairing(d: &mut Diff) {
    d.page("ana starts", "startChat.php", "1");
    d.page("ana alone", "randomChat.php?userId=1", "0");
    d.page("ana still alone", "randomChat.php?userId=1", "0");
    d.page("one user", "getNumberOfUsers.php", "1");
    d.page(
        "ana waiting has no chat: the sentinel",
        "listenToReceive.php?userId=1",
        NO_RESULT,
    );
    d.page("bob starts", "startChat.php", "2");
    d.page("bob finds ana", "randomChat.php?userId=2", "1");
    d.page("ana finds bob", "randomChat.php?userId=1", "2");
    d.page("bob again", "randomChat.php?userId=2", "1");
    d.page("two users", "getNumberOfUsers.php", "2");
    d.page("bob's quiet poll", "listenToReceive.php?userId=2", "");
}

/// One message per poll, oldest first; the text raw, as PHP decoded it.
fn messages(d: &mut Diff) {
    // A burst of three arrives over three polls.
    for (typed, _) in &ANA_TYPES[..3] {
        d.send(ANA, BOB, typed);
    }
    for (_, stored) in &ANA_TYPES[..3] {
        d.page(
            "bob's poll in the burst",
            "listenToReceive.php?userId=2",
            stored,
        );
    }
    d.page("bob's queue is empty", "listenToReceive.php?userId=2", "");

    // `#1 fan` and `after the hash` are sent together: the empty message takes
    // one poll of its own.
    for pair in ANA_TYPES[3..].chunks(3) {
        for (typed, _) in pair {
            d.send(ANA, BOB, typed);
        }
        for (_, stored) in pair {
            d.page("bob's poll", "listenToReceive.php?userId=2", stored);
        }
    }

    d.send(BOB, ANA, BOB_TYPES[0]);
    d.page("ana's poll", "listenToReceive.php?userId=1", BOB_TYPES[0]);
    // userId read as (int): "1abc" and " 1" are ana.
    d.send(BOB, ANA, BOB_TYPES[1]);
    d.page(
        "ana's poll as userId=1abc",
        "listenToReceive.php?userId=1abc",
        BOB_TYPES[1],
    );
    d.send(BOB, ANA, BOB_TYPES[2]);
    d.page(
        "ana's poll as userId=%201",
        "listenToReceive.php?userId=%201",
        BOB_TYPES[2],
    );
}

/// typing / isTyping / stopTyping, and where `$_REQUEST` finds a parameter.
fn typing(d: &mut Diff) {
    d.page("ana types", "typing.php?userId=1", "");
    d.page("bob sees ana typing", "isTyping.php?strangerId=1", "typing");
    d.page("ana types on", "typing.php?userId=1", "");
    d.page("ana stops", "stopTyping.php?userId=1", "");
    d.page("bob sees ana stopped", "isTyping.php?strangerId=1", "");
    d.page("ana stops again", "stopTyping.php?userId=1", "");
    d.page("bob types", "typing.php?userId=2", "");
    for (q, body) in [
        ("strangerId=2abc", "typing"),
        ("strangerId=%202", "typing"),
        ("strangerId=2.9", "typing"),
        ("strangerId=2e0", "typing"),
        ("strangerId=0x2", ""),
        ("strangerId=abc", ""),
        ("strangerId=", ""),
        ("strangerId=1&strangerId=2", "typing"),
        ("strangerId=2&strangerId=1", ""),
        ("strangerid=2", ""),
    ] {
        d.page(
            &format!("isTyping ?{q}"),
            &format!("isTyping.php?{q}"),
            body,
        );
    }
    d.exact(
        "isTyping by GET",
        Req::get("/isTyping.php?strangerId=2"),
        "typing",
    );
    d.exact(
        "isTyping, form body",
        Req::form("/isTyping.php", "strangerId=2"),
        "typing",
    );
    d.exact(
        "isTyping, the body's strangerId over the query's",
        Req::form("/isTyping.php?strangerId=1", "strangerId=2"),
        "typing",
    );
    d.exact(
        "isTyping, the body's strangerId over the query's (other way)",
        Req::form("/isTyping.php?strangerId=2", "strangerId=1"),
        "",
    );
}

/// The delivered messages as HTML, by delivery.
fn save_log(d: &mut Diff) {
    let ana_lines: Vec<(bool, &str)> = ANA_TYPES
        .iter()
        .map(|(_, stored)| (true, *stored))
        .chain(BOB_TYPES.iter().map(|m| (false, *m)))
        .collect();
    let bob_lines: Vec<(bool, &str)> = ana_lines.iter().map(|(you, m)| (!you, *m)).collect();
    let only_ana: Vec<(bool, &str)> = ana_lines.iter().copied().filter(|(you, _)| *you).collect();
    d.page(
        "ana's log",
        "saveLog.php?userId=1&strangerId=2",
        &log_html(&ana_lines),
    );
    d.page(
        "bob's log",
        "saveLog.php?userId=2&strangerId=1",
        &log_html(&bob_lines),
    );
    d.page(
        "ana's log with a wrong strangerId",
        "saveLog.php?userId=1&strangerId=99",
        &log_html(&only_ana),
    );
    d.exact(
        "ana's log by GET (a link)",
        Req::get("/saveLog.php?userId=1&strangerId=2"),
        log_html(&ana_lines),
    );
}

/// Ids nobody has are served like any other: nothing is validated.
fn unknown_users(d: &mut Diff) {
    d.page(
        "listen, unknown",
        "listenToReceive.php?userId=999",
        NO_RESULT,
    );
    d.page(
        "listen, userId=abc",
        "listenToReceive.php?userId=abc",
        NO_RESULT,
    );
    d.page("listen, no userId", "listenToReceive.php", NO_RESULT);
    d.page("isTyping, unknown", "isTyping.php?strangerId=999", "");
    d.page(
        "saveLog, unknown",
        "saveLog.php?userId=999&strangerId=1",
        EMPTY_LOG,
    );
    d.page("leaveChat, unknown", "leaveChat.php?userId=999", "");
    d.send(999, 998, "lost");
    d.page("typing, unknown", "typing.php?userId=999", "");
    d.page("still two users", "getNumberOfUsers.php", "2");
    d.page(
        "randomChat, unknown, nobody waiting",
        "randomChat.php?userId=999",
        "0",
    );
}

/// ana leaves with a message queued for bob: bob gets the sentinel.
fn leaving(d: &mut Diff) {
    d.send(ANA, BOB, "are you there?");
    d.page("ana types before she leaves", "typing.php?userId=1", "");
    d.page("ana leaves", "leaveChat.php?userId=1", "");
    d.page(
        "bob's poll: the sentinel, not the queued message",
        "listenToReceive.php?userId=2",
        NO_RESULT,
    );
    d.page("ana's poll", "listenToReceive.php?userId=1", NO_RESULT);
    d.page("ana no longer counts", "getNumberOfUsers.php", "1");
    d.page(
        "ana's typing row stays",
        "isTyping.php?strangerId=1",
        "typing",
    );
    d.page("bob leaves", "leaveChat.php?userId=2", "");
    d.page("nobody left", "getNumberOfUsers.php", "0");
    d.page("bob leaves again", "leaveChat.php?userId=2", "");
    d.page(
        "bob's log stays",
        "saveLog.php?userId=2&strangerId=1",
        &log_html(
            &ANA_TYPES
                .iter()
                .map(|(_, stored)| (false, *stored))
                .chain(BOB_TYPES.iter().map(|m| (true, *m)))
                .collect::<Vec<_>>(),
        ),
    );
}

/// `userId=abc` is user 0, and is paired like anyone; form bodies and GET.
fn odd_ids_and_sources(d: &mut Diff) {
    d.page("carol starts", "startChat.php", "3");
    d.page(
        "userId=abc (0) is paired with carol",
        "randomChat.php?userId=abc",
        "3",
    );
    d.page(
        "carol's partner is 0, which the page reads as nobody",
        "randomChat.php?userId=3",
        "0",
    );
    d.page("carol's quiet poll", "listenToReceive.php?userId=3", "");
    d.page("userId= (0) leaves", "leaveChat.php?userId=", "");
    d.page(
        "carol's partner left",
        "listenToReceive.php?userId=3",
        NO_RESULT,
    );
    d.page("dave starts", "startChat.php", "4");
    d.page(
        "dave alone (carol is not waiting)",
        "randomChat.php?userId=4",
        "0",
    );
    d.exact(
        "sendMsg with a form body",
        Req::form("/sendMsg.php", "userId=4&strangerId=3&msg=via+body%21"),
        "",
    );
    d.exact(
        "sendMsg by GET",
        Req::get("/sendMsg.php?userId=4&strangerId=3&msg=by%20GET"),
        "",
    );
    d.page("carol and dave", "getNumberOfUsers.php", "2");
}

/// The rows the scenario leaves, as the contract has them.
fn expected_tables() -> Tables {
    let mut oldmsgs = Vec::new();
    for (_, stored) in ANA_TYPES {
        oldmsgs.push((ANA, BOB, stored));
    }
    for m in BOB_TYPES {
        oldmsgs.push((BOB, ANA, m));
    }
    let row = |(i, (from, to, msg)): (usize, &(i64, i64, &str))| {
        MsgRow::new(i64::try_from(i).unwrap() + 1, *from, *to, msg)
    };
    let delivered = oldmsgs.len();
    let queued = [
        (999, 998, "lost"),
        (ANA, BOB, "are you there?"),
        (4, 3, "via body!"),
        (4, 3, "by GET"),
    ];
    Tables {
        users: vec![user(3, "Y"), user(4, "N")],
        chats: vec![],
        msgs: queued
            .iter()
            .enumerate()
            .map(|(i, r)| row((delivered + i, r)))
            .collect(),
        oldmsgs: oldmsgs.iter().enumerate().map(row).collect(),
        typing: vec![Value::Integer(1), Value::Integer(2), Value::Integer(999)],
        dates: vec![],
    }
}

/// `saveLog.php`'s HTML for these lines (`true`: sent by the user).
fn log_html(lines: &[(bool, &str)]) -> String {
    let mut s = String::from("<div style='padding:15px;' >");
    for (you, msg) in lines {
        let (class, source) = if *you {
            ("youmsg", "You:")
        } else {
            ("strangermsg", "Stranger:")
        };
        let _ = write!(
            s,
            "<div class='logitem'><div class='{class}'><span class='msgsource'>{source}</span> {msg}</div></div>"
        );
    }
    s.push_str("</div>");
    s
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// One request, sent alike to both servers.
#[derive(Clone)]
struct Req {
    method: &'static str,
    target: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

impl Req {
    /// As the page sends it: `POST`, empty body, no `Content-Type`.
    fn page(target: &str) -> Req {
        Req {
            method: "POST",
            target: target.to_string(),
            content_type: None,
            body: Vec::new(),
        }
    }

    fn get(target: &str) -> Req {
        Req {
            method: "GET",
            ..Req::page(target)
        }
    }

    /// `POST` with an `application/x-www-form-urlencoded` body.
    fn form(target: &str, body: &str) -> Req {
        Req {
            content_type: Some("application/x-www-form-urlencoded"),
            body: body.as_bytes().to_vec(),
            ..Req::page(target)
        }
    }

    fn run(&self, addr: SocketAddr) -> Result<(Response, std::time::Duration), String> {
        let headers: Vec<(&str, &str)> = self
            .content_type
            .map(|ct| vec![("Content-Type", ct)])
            .unwrap_or_default();
        let t0 = Instant::now();
        try_http(addr, self.method, &self.target, &headers, &self.body)
            .map(|r| (r, t0.elapsed()))
            .map_err(|e| format!("I/O error: {e}"))
    }
}

impl std::fmt::Display for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.target)?;
        if let Some(ct) = self.content_type {
            write!(f, "\nContent-Type: {ct}")?;
        }
        if !self.body.is_empty() {
            write!(f, "\nbody: {}", self.body.escape_ascii())?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------

/// The servers, and the differences found so far.
struct Diff {
    php: PhpServer,
    cometa: Option<Server>,
    /// Unix seconds at the start, for the dates of the rows.
    started: i64,
    compared: usize,
    mismatches: Vec<String>,
    _php_dir: tempfile::TempDir,
    _cometa_dir: tempfile::TempDir,
}

impl Diff {
    fn start(with_cometa: bool) -> Diff {
        let started = now_secs();
        let php_dir = tempfile::tempdir().expect("tempdir");
        let cometa_dir = tempfile::tempdir().expect("tempdir");
        let php_db = php_dir.path().join("omegle.sqlite");
        apply_schema(&php_db);
        let (php, cometa) = thread::scope(|s| {
            let php = s.spawn(|| start_php(&php_db));
            let cometa = with_cometa.then(|| start_cometa_in(cometa_dir.path(), HOLD));
            (php.join().expect("php -S start"), cometa)
        });
        Diff {
            php,
            cometa,
            started,
            compared: 0,
            mismatches: Vec::new(),
            _php_dir: php_dir,
            _cometa_dir: cometa_dir,
        }
    }

    /// A request as the page sends it (`target` without its leading `/`), and
    /// the body PHP must answer.
    fn page(&mut self, label: &str, target: &str, body: &str) {
        self.exact(label, Req::page(&format!("/{target}")), body);
    }

    /// ana's or bob's page sends `typed` to the other: an empty answer.
    fn send(&mut self, from: i64, to: i64, typed: &str) {
        self.exact(
            &format!("send {typed:?}"),
            Req::page(&send_target(from, to, typed)),
            "",
        );
    }

    /// Both answer alike (when cometa runs), and PHP answers `200 text/html` with
    /// exactly `body`.
    fn exact(&mut self, label: &str, req: Req, body: impl AsRef<[u8]>) {
        let body = body.as_ref();
        self.compared += 1;
        let (php, cometa) = thread::scope(|s| {
            let cometa = self.cometa.as_ref().map(|c| s.spawn(|| req.run(c.addr)));
            let php = req.run(self.php.addr);
            (
                php,
                cometa.map(|h| h.join().expect("cometa request thread")),
            )
        });
        let mut problems = Vec::new();
        match &php {
            Ok((p, _)) => {
                if p.status != 200 || p.header("content-type") != Some(HTML) {
                    problems.push(format!(
                        "php does not answer what the contract says: 200 {HTML}"
                    ));
                }
                if p.body != body {
                    problems.push(format!(
                        "php's body is not the contract's: {}",
                        where_bodies_differ("the contract", body, "php", &p.body)
                    ));
                }
            }
            Err(e) => problems.push(format!("php: {e}")),
        }
        if let Some(cometa) = &cometa {
            match (&php, cometa) {
                (Ok((p, _)), Ok((c, _))) => problems.extend(differences(p, c)),
                (_, Err(e)) => problems.push(format!("cometa: {e}")),
                (Err(_), Ok(_)) => {}
            }
        }
        if problems.is_empty() {
            return;
        }
        let mut s = format!(
            "==== {label}\n---- request\n  {}\n",
            indent(&req.to_string())
        );
        for p in &problems {
            let _ = writeln!(s, "  * {p}");
        }
        for (name, answer) in [("php", Some(&php)), ("cometa", cometa.as_ref())] {
            match answer {
                Some(Ok((r, took))) => {
                    let _ = writeln!(s, "---- {name}, {took:.0?}\n  {}", indent(&show(r)));
                }
                Some(Err(e)) => {
                    let _ = writeln!(s, "---- {name}: {e}");
                }
                None => {}
            }
        }
        self.mismatches.push(s);
    }

    /// PHP's rows are the expected ones; cometa's are PHP's; every date is one of
    /// the run.
    fn compare_tables(&mut self, expected: &Tables) {
        let now = now_secs();
        let php = Tables::read(&self.php.db);
        let mut problems = Vec::new();
        for p in php.date_problems(self.started, now) {
            problems.push(format!("php: {p}"));
        }
        if php.without_dates() != *expected {
            problems.push(format!(
                "php's rows are not the contract's\n{}",
                table_diff("expected", expected, "php", &php)
            ));
        }
        if let Some(cometa) = &self.cometa {
            let c = Tables::read(&cometa.db);
            for p in c.date_problems(self.started, now) {
                problems.push(format!("cometa: {p}"));
            }
            if c.without_dates() != php.without_dates() {
                problems.push(format!(
                    "cometa's rows differ from php's\n{}",
                    table_diff("php", &php, "cometa", &c)
                ));
            }
        }
        if !problems.is_empty() {
            self.mismatches
                .push(format!("==== the tables\n{}", problems.join("\n")));
        }
    }

    fn finish(self) {
        if self.mismatches.is_empty() {
            return;
        }
        panic!(
            "{} problem(s) in {} exchanges:\n\n{}",
            self.mismatches.len(),
            self.compared,
            self.mismatches.join("\n")
        );
    }
}

/// Where two answers differ: status, `Content-Type`, body bytes.
fn differences(php: &Response, cometa: &Response) -> Vec<String> {
    let mut out = Vec::new();
    if php.status != cometa.status {
        out.push(format!(
            "status: php {}, cometa {}",
            php.status, cometa.status
        ));
    }
    if php.header("content-type") != cometa.header("content-type") {
        out.push(format!(
            "content-type: php {:?}, cometa {:?}",
            php.header("content-type"),
            cometa.header("content-type")
        ));
    }
    if php.body != cometa.body {
        out.push(format!(
            "body: {}",
            where_bodies_differ("php", &php.body, "cometa", &cometa.body)
        ));
    }
    out
}

/// The first byte where two bodies differ, with up to 40 bytes either side.
fn where_bodies_differ(a_name: &str, a: &[u8], b_name: &str, b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let around = |s: &[u8]| {
        let from = at.saturating_sub(40);
        let to = (at + 40).min(s.len());
        format!(
            "{}{}{}",
            if from > 0 { "…" } else { "" },
            s[from..to].escape_ascii(),
            if to < s.len() { "…" } else { "" }
        )
    };
    format!(
        "they differ at byte {at}: {a_name} \"{}\" ({} bytes), {b_name} \"{}\" ({} bytes)",
        around(a),
        a.len(),
        around(b),
        b.len()
    )
}

/// The tables' rows, one per line, side by side where they differ.
fn table_diff(a_name: &str, a: &Tables, b_name: &str, b: &Tables) -> String {
    let mut s = String::new();
    let lines = |t: &Tables| -> Vec<String> {
        let mut v = Vec::new();
        v.extend(t.users.iter().map(|r| format!("users {r:?}")));
        v.extend(t.chats.iter().map(|r| format!("chats {r:?}")));
        v.extend(t.msgs.iter().map(|r| format!("msgs {r:?}")));
        v.extend(t.oldmsgs.iter().map(|r| format!("oldmsgs {r:?}")));
        v.extend(t.typing.iter().map(|r| format!("typing {r:?}")));
        v
    };
    let (la, lb) = (lines(a), lines(b));
    for l in &la {
        if !lb.contains(l) {
            let _ = writeln!(s, "    only in {a_name}: {l}");
        }
    }
    for l in &lb {
        if !la.contains(l) {
            let _ = writeln!(s, "    only in {b_name}: {l}");
        }
    }
    if s.is_empty() {
        s.push_str("    (the same rows in another order)\n");
    }
    s
}

fn show(r: &Response) -> String {
    format!(
        "HTTP/1.1 {} {}\ncontent-type: {:?}\nbody ({} bytes): {:?}",
        r.status,
        r.reason,
        r.header("content-type"),
        r.body.len(),
        cut(&r.text(), 300)
    )
}

fn indent(s: &str) -> String {
    s.replace('\n', "\n  ")
}

/// At most `max` characters of `s`.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
