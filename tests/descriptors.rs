//! The descriptor budget: cometa raises its soft `RLIMIT_NOFILE` to the hard
//! limit, and lowers `--max-connections` (with a warning) when even that
//! leaves no room for the connections, its own files and the refusals.
//! (Alone in its file: it lowers the test process's own limits, which the
//! server inherits.)

mod common;

use common::{Conn, Server, error_body};
use std::time::Duration;

#[test]
fn the_soft_limit_is_raised_and_a_cap_that_does_not_fit_is_lowered() {
    rlimit::Resource::NOFILE.set(100, 300).unwrap();
    let s = Server::builder()
        .hold("20")
        .arg("--max-connections")
        .arg("10000")
        .start();
    // Back to a soft limit that lets this test open its connections.
    rlimit::Resource::NOFILE.set(300, 300).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["300", "300"], "{line}");
    // 300 - 64 reserved - 64 for refusals.
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        log.contains("--max-connections 10000 does not fit") && log.contains("serving at most 172"),
        "no warning in the log:\n{log}"
    );
    // 172 held polls fill the cap; the next connection is refused.
    assert_eq!(s.send("ana", "first", "main"), 1);
    let held: Vec<Conn> = (0..172)
        .map(|_| {
            let mut c = Conn::open(s.addr).unwrap();
            c.send_get(s.addr, "/listenToRecive.php?lastId=1").unwrap();
            c
        })
        .collect();
    let r = common::wait_for(Duration::from_secs(10), "a 503 at 173", || {
        let mut c = Conn::open(s.addr).ok()?;
        c.set_read_timeout(Duration::from_secs(3));
        let r = c.read_response(false).ok()?;
        (r.status == 503).then_some(r)
    });
    r.assert(503, "application/json", &error_body("server busy"));
    drop(held);
}
