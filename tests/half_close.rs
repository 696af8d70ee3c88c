//! Half-closed clients (`nc -N`: the request, then a FIN) still get their
//! answer; a client that resets frees its waiter at once, even with bytes of a
//! next request already sent.

mod common;

use common::{Conn, Server};
use std::time::{Duration, Instant};

#[test]
fn a_half_closed_client_gets_its_answer() {
    let s = Server::builder().hold("20").start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    // A plain request, then the write side shut: answered.
    let mut c = Conn::open(s.addr).unwrap();
    c.send_get(s.addr, "/getNumberOfUsers.php").unwrap();
    c.half_close();
    c.read_response(false)
        .unwrap()
        .assert(200, "text/html; charset=UTF-8", "1");
    // A long-poll, then the write side shut: it stays a waiter, and gets the
    // next message when it comes.
    let mut poll = Conn::open(s.addr).unwrap();
    poll.send_get(s.addr, "/listenToRecive.php?lastId=1")
        .unwrap();
    poll.half_close();
    s.wait_waiters(1, Duration::from_secs(10));
    assert_eq!(s.send("bob", "for the half-closed", "main"), 2);
    let r = poll.read_response(false).unwrap();
    let m = common::parse_messages(&r);
    assert_eq!(m.iter().map(|m| m.id).collect::<Vec<_>>(), vec![2]);
    // A POST whose body ends with the FIN.
    let mut c = Conn::open(s.addr).unwrap();
    c.write(&common::request_bytes(
        s.addr,
        "POST",
        "/sendMessage.php",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"user=cy&message=half",
    ))
    .unwrap();
    c.half_close();
    c.read_response(false)
        .unwrap()
        .assert_json(r#"{"status":"ok","id":3}"#);
}

#[test]
fn a_reset_after_part_of_a_next_request_frees_the_waiter_at_once() {
    let s = Server::builder().hold("20").start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let mut keep = Conn::open(s.addr).unwrap();
    keep.send_get(s.addr, "/listenToRecive.php?lastId=1")
        .unwrap();
    let mut c = Conn::open(s.addr).unwrap();
    // Keep-alive, so that hyper waits for a next request on this connection.
    c.write(&common::request_bytes_with(
        s.addr,
        "GET",
        "/listenToRecive.php?lastId=1",
        &[],
        b"",
        false,
    ))
    .unwrap();
    s.wait_waiters(2, Duration::from_secs(10));
    // A few bytes of the next request, which the server buffers and does not parse yet.
    c.write(b"GET /getNumb").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    c.reset();
    s.wait_waiters(1, Duration::from_secs(5));
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "the waiter was freed after {:?}",
        t0.elapsed()
    );
    // The other poll is untouched.
    assert_eq!(s.send("ana", "second", "main"), 2);
    let r = keep.read_response(false).unwrap();
    let m = common::parse_messages(&r);
    assert_eq!(m.iter().map(|m| m.id).collect::<Vec<_>>(), vec![2]);
}
