//! Profiles as an operator meets them: `cometa check` on good and bad files,
//! the server refusing a bad one with the same message, `migrate` on the app's
//! own tables, and a profile written from scratch (one `ajax.php` dispatching
//! on `act`, a cursor in a cookie) served byte for byte.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, open_db};

/// Runs the binary to completion (bounded); status code, stdout, stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cometa"))
        .args(args)
        .env_remove("CHAT_DB")
        .env_remove("COMETA_PROFILE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("spawn cometa");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cometa {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(out).unwrap(),
        std::fs::read_to_string(err).unwrap(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

const CLASSIC: &str = include_str!("../profiles/classic.toml");

/// A copy of the classic profile, changed by `edit`, with its schema beside it.
fn classic_copy(dir: &Path, edit: impl Fn(&str) -> String) -> String {
    write(
        dir,
        "classic.schema.sql",
        include_str!("../profiles/classic.schema.sql"),
    );
    let text = edit(CLASSIC);
    assert_ne!(text, CLASSIC, "the edit applies");
    write(dir, "p.toml", &text)
}

#[test]
fn check_lists_the_routes_of_each_builtin_profile() {
    let (code, out, err) = run(&["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("profile classic"), "{out}");
    for path in [
        "/sendMessage.php",
        "/listenToRecive.php",
        "/getNumberOfUsers.php",
        "/isTyping.php",
    ] {
        assert!(out.contains(path), "{path} missing from {out}");
    }
    assert!(
        out.contains("/listenToRecive.php  params: room, user, lastId  (holds)"),
        "{out}"
    );
    let (code, out, err) = run(&["check", "--profile", "omegle"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("/listenToReceive.php  params: userId  (holds, writes)"),
        "{out}"
    );
    assert_eq!(out.matches(".php").count(), 10, "{out}");
}

#[test]
fn a_typo_is_named_by_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = CLASSIC.replacen(
        "[[route.answer]]\nuse = \"messages\"",
        "[[route.answer]]\nuse = \"messages\"\nstaus = 200",
        1,
    );
    let line = text.lines().position(|l| l.starts_with("staus")).unwrap() + 1;
    let file = write(dir.path(), "typo.toml", &text);
    let (code, out, err) = run(&["check", "--profile", &file]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains(&format!("{file}:{line}")), "{err}");
    assert!(err.contains("unknown field `staus`"), "{err}");
    assert!(
        out.is_empty(),
        "no routes are listed for a bad profile: {out}"
    );
}

#[test]
fn a_missing_template_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = classic_copy(dir.path(), |t| {
        t.replacen(
            "[[route.answer]]\nuse = \"messages\"",
            "[[route.answer]]\nfile = \"messages.j2\"",
            1,
        )
    });
    let (code, _, err) = run(&["check", "--profile", &file]);
    assert_eq!(code, 1);
    assert!(err.contains("messages.j2"), "{err}");
    assert!(
        err.contains("route[1] \"/listenToRecive.php\".answer[0].file"),
        "{err}"
    );
    // With the file beside the profile, it loads.
    write(dir.path(), "messages.j2", "[]");
    let (code, _, err) = run(&["check", "--profile", &file]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn sql_on_a_table_that_does_not_exist_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = classic_copy(dir.path(), |t| {
        t.replacen(
            "FROM presence WHERE room = :room AND seen_ms",
            "FROM presense WHERE room = :room AND seen_ms",
            1,
        )
    });
    let (code, _, err) = run(&["check", "--profile", &file]);
    assert_eq!(code, 1);
    assert!(err.contains("no such table: presense"), "{err}");
    assert!(err.contains("\"/getNumberOfUsers.php\".sql[0]"), "{err}");
}

#[test]
fn check_against_a_database_without_the_apps_tables_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.sqlite");
    open_db(&db)
        .execute_batch("CREATE TABLE unrelated (x)")
        .unwrap();
    let (code, _, err) = run(&["check", "--db", db.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("no such table: messages"), "{err}");
    assert!(err.contains(db.to_str().unwrap()), "{err}");
}

#[test]
fn the_server_refuses_an_invalid_profile_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = classic_copy(dir.path(), |t| {
        t.replacen(
            "body = \"{{ online[0].n }}\"",
            "body = \"{{ online[0].n }\"",
            1,
        )
    });
    let (code, _, check) = run(&["check", "--profile", &file]);
    assert_eq!(code, 1);
    assert!(check.contains("template does not compile"), "{check}");
    let db = dir.path().join("db.sqlite");
    let (code, out, serve) = run(&[
        "--profile",
        &file,
        "--db",
        db.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_ne!(code, 0);
    assert!(!out.contains("listening"), "{out}");
    // The same message, whatever the logger puts before it (a timestamp).
    let message = |s: &str| s[s.find("invalid profile:").unwrap_or(0)..].to_string();
    assert_eq!(message(&serve), message(&check), "the same message");
    assert!(
        !db.exists(),
        "nothing created for a profile that does not load"
    );
}

#[test]
fn an_unknown_profile_name_says_which_are_built_in() {
    let (code, _, err) = run(&["check", "--profile", "omegel"]);
    assert_eq!(code, 1);
    assert!(err.contains("built-in: classic, omegle"), "{err}");
}

#[test]
fn migrate_creates_the_apps_tables_and_never_alters_existing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.sqlite");
    // The PHP app made `users` first, with a column of its own and a row.
    open_db(&db)
        .execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, inchat TEXT NOT NULL, nick TEXT);
             INSERT INTO users (inchat, nick) VALUES ('N', 'kept');",
        )
        .unwrap();
    for _ in 0..2 {
        let (code, out, err) = run(&[
            "migrate",
            "--profile",
            "omegle",
            "--db",
            db.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("omegle"), "{out}");
    }
    let c = open_db(&db);
    let nick: String = c
        .query_row("SELECT nick FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(nick, "kept");
    let names: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for want in [
        "chats",
        "cometa_changes",
        "cometa_wake_inbox_insert",
        "cometa_wake_pairing_delete",
        "msgs",
        "oldmsgs",
        "typing",
        "users",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
}

#[test]
fn omegle_serves_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::builder()
        .dir(dir.path())
        .arg("--profile")
        .arg("omegle")
        .start();
    let r = s.post("/startChat.php", "");
    assert_eq!((r.status, r.text().as_str()), (200, "1"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
    let r = s.get("/getNumberOfUsers.php");
    assert_eq!(r.text(), "1");
}

/// A chat nobody here has seen, written from the docs: one `ajax.php`,
/// `act=send` (POST) and `act=load` (GET, cursor in a cookie), JSON answers.
const AJAX: &str = r#"
[profile]
name = "ajaxchat"
schema = "ajax.sql"

[params.act]
from = "get"
[params.name]
from = "post"
trim = true
max_bytes = 20
errors = { too_long = "name too long" }
[params.text]
from = "post"
default = ""
[params.since]
from = "cookie"
type = "int"
default = 0

[topics.line]
table = "lines"
on = ["insert"]
key = "'all'"

[[route]]
path = "/ajax.php"
methods = ["POST"]
match = { act = "send" }
params = ["act", "name", "text"]
[[route.sql]]
sql = "INSERT INTO lines (name, text) VALUES (:name, :text)"
[[route.answer]]
content_type = "application/json"
body = '{"ok":true,"id":{{ insert_id }}}'

[[route]]
path = "/ajax.php"
methods = ["GET"]
match = { act = "load" }
params = ["act", "since"]
[[route.sql]]
name = "rows"
sql = "SELECT id, name, text FROM lines WHERE id > :since ORDER BY id"
[route.hold]
while = "not rows"
wake = [{ topic = "line", key = "'all'" }]
[[route.answer]]
when = "timed_out"
content_type = "application/json"
body = '{"lines":[],"timeout":true}'
[[route.answer]]
content_type = "application/json"
body = '{"lines":{{ rows|json }},"timeout":false}'
"#;

#[test]
fn a_profile_written_from_scratch_serves_its_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "ajax.toml", AJAX);
    write(
        dir.path(),
        "ajax.sql",
        "CREATE TABLE IF NOT EXISTS lines (id INTEGER PRIMARY KEY, name TEXT NOT NULL, text TEXT NOT NULL);",
    );
    let (code, out, err) = run(&["check", "--profile", &file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("POST       /ajax.php?act=send"), "{out}");
    let s = Server::builder()
        .dir(dir.path())
        .hold("1")
        .arg("--profile")
        .arg(&file)
        .start();
    let r = s.request(
        "POST",
        "/ajax.php?act=send",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"name=+ana+&text=a%2Fb+%C3%A9",
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, r#"{"ok":true,"id":1}"#)
    );
    let r = s.request(
        "POST",
        "/ajax.php?act=send",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"name=abcdefghijklmnopqrstuvwxyz",
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, r#"{"status":"error","error":"name too long"}"#)
    );
    let r = s.request("GET", "/ajax.php?act=load", &[("Cookie", "since=0")], b"");
    assert_eq!(
        r.text(),
        r#"{"lines":[{"id":1,"name":"ana","text":"a\/b \u00e9"}],"timeout":false}"#
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = s.request(
        "GET",
        "/ajax.php?act=load",
        &[("Cookie", "x=1; since=1")],
        b"",
    );
    assert_eq!(r.text(), r#"{"lines":[],"timeout":true}"#);
    let r = s.request("GET", "/ajax.php?act=send", &[], b"");
    assert_eq!(r.status, 405, "{}", r.text());
}
