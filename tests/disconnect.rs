//! Clients that go away: a long-poll whose connection is reset stops being a
//! waiter and frees its slot at once. (A FIN alone is a half-close on TCP: the
//! client may still read, so the poll is kept; `tests/half_close.rs`.)

mod common;

use common::{Conn, Server};
use std::time::Duration;

#[test]
fn dropped_long_polls_stop_being_waiters() {
    let s = Server::builder().hold("20").start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let conns: Vec<Conn> = (0..20)
        .map(|i| {
            let mut c = Conn::open(s.addr).unwrap();
            c.send_get(s.addr, &format!("/listenToRecive.php?lastId=1&user=u{i}"))
                .unwrap();
            c
        })
        .collect();
    s.wait_waiters(20, Duration::from_secs(10));
    let (_, connections) = s.stats();
    assert!(
        connections >= 21,
        "20 held polls + this stats request, got {connections}"
    );
    // Each poll with a user marked presence (in the background: a mark never delays a poll).
    common::wait_for(Duration::from_secs(5), "21 users present", || {
        (s.users("main") == 21).then_some(())
    });
    for c in conns {
        c.reset();
    }
    s.wait_waiters(0, Duration::from_secs(5));
    common::wait_for(Duration::from_secs(5), "connections back to 1", || {
        (s.stats().1 == 1).then_some(())
    });
    // The server works normally afterwards and nothing was written by the dropped polls.
    assert_eq!(s.send("ana", "second", "main"), 2);
    assert_eq!(s.counts().0, 2);
}

#[test]
fn a_dropped_poll_does_not_disturb_the_others() {
    let s = Server::builder().hold("20").start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let mut keep = Conn::open(s.addr).unwrap();
    keep.send_get(s.addr, "/listenToRecive.php?lastId=1")
        .unwrap();
    let mut gone = Conn::open(s.addr).unwrap();
    gone.send_get(s.addr, "/listenToRecive.php?lastId=1")
        .unwrap();
    s.wait_waiters(2, Duration::from_secs(10));
    gone.reset();
    s.wait_waiters(1, Duration::from_secs(5));
    assert_eq!(s.send("ana", "second", "main"), 2);
    let r = keep.read_response(false).unwrap();
    let m = common::parse_messages(&r);
    assert_eq!(m.iter().map(|m| m.id).collect::<Vec<_>>(), vec![2]);
}
