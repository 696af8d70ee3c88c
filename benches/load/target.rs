//! The thin adapters: how each server under test is long-polled, how a message
//! is published, and how it tells its number of waiters. The load shape is the
//! same for all: a browser-like client follows its cursor and polls again at once.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::http::{self, Conn, Response};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// cometa: the legacy endpoints, plus `GET /_cometa/stats`.
    Cometa,
    /// The legacy PHP app under php-fpm behind nginx.
    Php,
    /// nchan: `GET /sub/ROOM` (long-poll, follows Last-Modified/Etag),
    /// `POST /pub/ROOM`, `GET /nchan_status`.
    Nchan,
    /// cometa serving the `omegle` profile (the "talk to a stranger" chat):
    /// every request a POST with an empty body, parameters in the query
    /// string; `listenToReceive.php?userId=U` answers one raw message text.
    Omegle,
}

impl Kind {
    pub(crate) fn parse(s: &str) -> Kind {
        match s {
            "cometa" => Kind::Cometa,
            "php" => Kind::Php,
            "nchan" => Kind::Nchan,
            "omegle" => Kind::Omegle,
            _ => panic!("--target cometa|php|nchan|omegle"),
        }
    }
}

/// A client's cursor: `lastId` for the chat, Last-Modified/Etag for nchan.
#[derive(Default, Clone)]
pub(crate) struct Cursor {
    pub(crate) last_id: i64,
    pub(crate) last_modified: Option<String>,
    pub(crate) etag: Option<String>,
}

impl Kind {
    /// The method of a poll (the omegle page POSTs everything).
    pub(crate) fn poll_method(self) -> &'static str {
        match self {
            Kind::Omegle => "POST",
            _ => "GET",
        }
    }

    /// Path and extra header lines of the next poll. For omegle `user` is
    /// the waiter's user id.
    pub(crate) fn poll(self, room: &str, user: Option<&str>, c: &Cursor) -> (String, String) {
        match self {
            Kind::Cometa | Kind::Php => {
                let mut p = format!("/listenToRecive.php?lastId={}&room={room}", c.last_id);
                if let Some(u) = user {
                    let _ = write!(p, "&user={u}");
                }
                (p, String::new())
            }
            Kind::Nchan => {
                let mut h = String::new();
                if let Some(lm) = &c.last_modified {
                    let _ = write!(h, "If-Modified-Since: {lm}\r\n");
                }
                if let Some(e) = &c.etag {
                    let _ = write!(h, "If-None-Match: {e}\r\n");
                }
                (format!("/sub/{room}"), h)
            }
            Kind::Omegle => (
                format!("/listenToReceive.php?userId={}", user.unwrap_or("0")),
                String::new(),
            ),
        }
    }

    /// Moves the cursor past an answer.
    pub(crate) fn follow(self, c: &mut Cursor, r: &Response) {
        if r.status != 200 {
            return;
        }
        match self {
            Kind::Cometa | Kind::Php => {
                if let Some(id) = http::last_id(&r.body) {
                    c.last_id = c.last_id.max(id);
                }
            }
            Kind::Nchan => {
                if r.last_modified.is_some() {
                    c.last_modified.clone_from(&r.last_modified);
                    c.etag.clone_from(&r.etag);
                }
            }
            // A destructive queue: nothing to follow.
            Kind::Omegle => {}
        }
    }

    /// Path and body of a send. For omegle `room` is the sender's user id and
    /// `user` the recipient's (`sendMsg.php?userId=FROM&strangerId=TO&msg=…`).
    pub(crate) fn send(self, room: &str, user: &str, text: &str) -> (String, Vec<u8>) {
        match self {
            Kind::Omegle => (
                format!("/sendMsg.php?userId={room}&strangerId={user}&msg={text}"),
                Vec::new(),
            ),
            Kind::Cometa | Kind::Php => (
                "/sendMessage.php".into(),
                format!("room={room}&user={user}&message={text}").into_bytes(),
            ),
            Kind::Nchan => (format!("/pub/{room}"), text.as_bytes().to_vec()),
        }
    }

    pub(crate) fn send_ok(self, status: u16) -> bool {
        match self {
            Kind::Cometa | Kind::Php | Kind::Omegle => status == 200,
            Kind::Nchan => status == 201 || status == 202,
        }
    }

    /// How many of the server's `waiters` one held poll counts for: one (an
    /// omegle poll waits on two keys, its inbox and its pairing row, and counts
    /// once).
    pub(crate) fn held_per_poll(self) -> usize {
        1
    }

    /// Waiters the server reports holding now (None when it cannot say).
    pub(crate) async fn server_waiters(self, addr: SocketAddr) -> Option<u64> {
        let (path, key) = match self {
            Kind::Cometa | Kind::Omegle => ("/_cometa/stats", "\"waiters\":"),
            Kind::Nchan => ("/nchan_status", "subscribers:"),
            Kind::Php => return None,
        };
        stat_number(addr, path, key).await
    }

    /// SQL statements the server has run so far (cometa's stats only).
    pub(crate) async fn server_queries(self, addr: SocketAddr) -> Option<u64> {
        match self {
            Kind::Cometa | Kind::Omegle => {
                stat_number(addr, "/_cometa/stats", "\"queries\":").await
            }
            _ => None,
        }
    }
}

async fn stat_number(addr: SocketAddr, path: &str, key: &str) -> Option<u64> {
    let mut c = Conn::open(addr).await.ok()?;
    let r = c.request("GET", path, "", b"").await.ok()?;
    let s = String::from_utf8(r.body).ok()?;
    let rest = s.split_once(key)?.1.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
