//! The "talk to a stranger" app for tests: its PHP reference
//! (`legacy_php/omegle/public` under `php -S`), `cometa --profile omegle`, the
//! requests its page sends, and the rows of its five tables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::types::Value;

use super::php::PhpServer;
use super::{Response, Server, http, open_db};

/// `listenToReceive.php`'s answer once the partner has left.
pub(crate) const NO_RESULT: &str = "||--noResult--||";
/// The `Content-Type` of every answer (PHP's default).
pub(crate) const HTML: &str = "text/html; charset=UTF-8";

/// `legacy_php/omegle/public`, the app's web root.
pub(crate) fn web_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("legacy_php/omegle/public")
}

/// `profiles/omegle.schema.sql`, the app's five tables.
pub(crate) fn schema_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/omegle.schema.sql")
}

/// Creates the five tables from `profiles/omegle.schema.sql` (what an operator
/// without cometa does with sqlite3): the database of a PHP-only run.
pub(crate) fn apply_schema(db: &Path) {
    let sql = std::fs::read_to_string(schema_file()).expect("read profiles/omegle.schema.sql");
    open_db(db)
        .execute_batch(&sql)
        .unwrap_or_else(|e| panic!("apply profiles/omegle.schema.sql to {}: {e}", db.display()));
}

/// `cometa migrate --profile omegle --db PATH`.
pub(crate) fn migrate(db: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_cometa"))
        .args(["migrate", "--profile", "omegle", "--db"])
        .arg(db)
        .env_remove("CHAT_DB")
        .stdin(Stdio::null())
        .output()
        .expect("run cometa migrate");
    assert!(
        out.status.success(),
        "cometa migrate --profile omegle --db {} failed: {:?}\n{}",
        db.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cometa --profile omegle` on `dir/chat.sqlite`, migrated first, holding a
/// quiet `listenToReceive.php` for `hold` seconds, with its admin listener (for
/// the waiter count).
pub(crate) fn start_cometa_in(dir: &Path, hold: &str) -> Server {
    migrate(&dir.join("chat.sqlite"));
    Server::builder()
        .dir(dir)
        .hold(hold)
        .admin()
        .arg("--profile")
        .arg("omegle")
        .start()
}

/// `php -S` on the PHP reference, on `db` (which has the schema already).
pub(crate) fn start_php(db: &Path) -> PhpServer {
    PhpServer::start_app(&web_root(), db)
}

/// What the page sends: `POST target` with an empty body and no `Content-Type`
/// (`open("POST", url); send(null)`). `target` is already as the browser sends
/// it (see [`as_browser_sends`]).
pub(crate) fn page_post(addr: SocketAddr, target: &str) -> Response {
    http(addr, "POST", target, &[], b"")
}

/// The request target a browser sends for a relative URL given to
/// `XMLHttpRequest.open` unencoded (the URL standard's parser, for the parts the
/// page produces): leading and trailing spaces and controls dropped, tabs and
/// newlines removed, everything from `#` on cut (the fragment is never sent),
/// then control characters, space, `"`, `'`, `<`, `>`, DEL and every non-ASCII
/// character percent-encoded as UTF-8. `+`, `&`, `=` and `%` stay as typed.
pub(crate) fn as_browser_sends(url: &str) -> String {
    let trimmed = url.trim_matches(|c: char| c <= ' ');
    let cleaned: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let sent = cleaned.split('#').next().unwrap_or_default();
    let mut out = String::with_capacity(sent.len() * 3);
    for c in sent.chars() {
        if c.is_ascii() && !c.is_ascii_control() && !matches!(c, ' ' | '"' | '\'' | '<' | '>') {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    format!("/{out}")
}

/// The target of the page's `sendMsg.php` for `typed`, as the browser sends it.
pub(crate) fn send_target(from: i64, to: i64, typed: &str) -> String {
    as_browser_sends(&format!(
        "sendMsg.php?userId={from}&strangerId={to}&msg={typed}"
    ))
}

/// Asserts `200 text/html; charset=UTF-8` and exactly `body`.
#[track_caller]
pub(crate) fn assert_answer(r: &Response, body: &str) {
    r.assert(200, HTML, body);
}

// ---------------------------------------------------------------------------
// The five tables
// ---------------------------------------------------------------------------

/// A row of `msgs` or `oldmsgs`, values as SQLite holds them (an id stored as
/// text, or a message as a blob, shows).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MsgRow {
    pub(crate) id: i64,
    pub(crate) user_id: Value,
    pub(crate) random_user_id: Value,
    pub(crate) msg: Value,
}

impl MsgRow {
    /// A row as the PHP reference writes it: integer ids, the text as TEXT.
    pub(crate) fn new(id: i64, from: i64, to: i64, msg: &str) -> MsgRow {
        MsgRow {
            id,
            user_id: Value::Integer(from),
            random_user_id: Value::Integer(to),
            msg: Value::Text(msg.to_string()),
        }
    }
}

/// Every row of the five tables, date columns aside (see [`Tables::dates`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tables {
    /// `(id, inchat)` by id.
    pub(crate) users: Vec<(Value, Value)>,
    /// `(userId, randomUserId)`, sorted.
    pub(crate) chats: Vec<(Value, Value)>,
    pub(crate) msgs: Vec<MsgRow>,
    pub(crate) oldmsgs: Vec<MsgRow>,
    /// `id` of each row, sorted.
    pub(crate) typing: Vec<Value>,
    /// `msgs.sentdate` and `oldmsgs.archivedDate` of every row, with the table's
    /// name and the row's id.
    pub(crate) dates: Vec<(&'static str, i64, Value)>,
}

impl Tables {
    /// Reads every row of the five tables of `db`.
    pub(crate) fn read(db: &Path) -> Tables {
        let c = open_db(db);
        let rows = |sql: &str, n: usize| -> Vec<Vec<Value>> {
            let mut st = c.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            st.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        };
        let pair = |mut v: Vec<Value>| -> (Value, Value) {
            let b = v.pop().unwrap();
            (v.pop().unwrap(), b)
        };
        let msg_rows = |table: &str, date: &str| -> (Vec<MsgRow>, Vec<Value>) {
            rows(
                &format!("SELECT id, userId, randomUserId, msg, {date} FROM {table} ORDER BY id"),
                5,
            )
            .into_iter()
            .map(|mut v| {
                let date = v.pop().unwrap();
                let msg = v.pop().unwrap();
                let random_user_id = v.pop().unwrap();
                let user_id = v.pop().unwrap();
                let Value::Integer(id) = v.pop().unwrap() else {
                    panic!("{table}.id is not an integer")
                };
                (
                    MsgRow {
                        id,
                        user_id,
                        random_user_id,
                        msg,
                    },
                    date,
                )
            })
            .unzip()
        };
        let (msgs, sent) = msg_rows("msgs", "sentdate");
        let (oldmsgs, archived) = msg_rows("oldmsgs", "archivedDate");
        let mut dates = Vec::new();
        for (table, rows, values) in [("msgs", &msgs, sent), ("oldmsgs", &oldmsgs, archived)] {
            for (row, date) in rows.iter().zip(values) {
                dates.push((table, row.id, date));
            }
        }
        Tables {
            users: rows("SELECT id, inchat FROM users ORDER BY id", 2)
                .into_iter()
                .map(pair)
                .collect(),
            chats: rows(
                "SELECT userId, randomUserId FROM chats ORDER BY userId, randomUserId",
                2,
            )
            .into_iter()
            .map(pair)
            .collect(),
            msgs,
            oldmsgs,
            typing: rows("SELECT id FROM typing ORDER BY id", 1)
                .into_iter()
                .map(|mut v| v.pop().unwrap())
                .collect(),
            dates,
        }
    }

    /// The rows without their dates (what two runs of one scenario share).
    pub(crate) fn without_dates(&self) -> Tables {
        Tables {
            dates: Vec::new(),
            ..self.clone()
        }
    }

    /// Every date is `CURRENT_TIMESTAMP`-shaped (`YYYY-MM-DD HH:MM:SS`, UTC) and
    /// within `[from, to]` (unix seconds, inclusive, one second of slack each
    /// side). Returns what is wrong.
    pub(crate) fn date_problems(&self, from: i64, to: i64) -> Vec<String> {
        let mut out = Vec::new();
        for (table, id, date) in &self.dates {
            let Value::Text(t) = date else {
                out.push(format!("{table} row {id}: date {date:?} is not text"));
                continue;
            };
            let parsed = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", t)
                .ok()
                .filter(|_| t.len() == 19)
                .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt).ok());
            match parsed {
                Some(ts) if (from - 1..=to + 1).contains(&ts.as_second()) => {}
                Some(_) => out.push(format!(
                    "{table} row {id}: date {t:?} is outside the run (unix {from}..={to}, UTC)"
                )),
                None => out.push(format!(
                    "{table} row {id}: date {t:?} is not shaped YYYY-MM-DD HH:MM:SS"
                )),
            }
        }
        out
    }
}

/// `(id, inchat)` as the PHP reference writes it.
pub(crate) fn user(id: i64, inchat: &str) -> (Value, Value) {
    (Value::Integer(id), Value::Text(inchat.to_string()))
}
