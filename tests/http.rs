//! HTTP plumbing the browsers rely on: keep-alive, HTTP/1.0, long-polls on a reused
//! connection.

mod common;

use common::{Conn, Server, parse_messages, request_bytes_with};
use std::time::{Duration, Instant};

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let s = Server::start();
    let mut c = Conn::open(s.addr).unwrap();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    c.write(&request_bytes_with(
        s.addr,
        "POST",
        "/sendMessage.php",
        &form,
        b"user=ana&message=one",
        false,
    ))
    .unwrap();
    c.read_response(false)
        .unwrap()
        .assert_json(r#"{"status":"ok","id":1}"#);
    c.write(&request_bytes_with(
        s.addr,
        "GET",
        "/getNumberOfUsers.php",
        &[],
        b"",
        false,
    ))
    .unwrap();
    c.read_response(false)
        .unwrap()
        .assert(200, "text/html; charset=UTF-8", "1");
    c.write(&request_bytes_with(s.addr, "GET", "/", &[], b"", false))
        .unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.body, common::INDEX_HTML.as_bytes());
    c.write(&request_bytes_with(
        s.addr,
        "POST",
        "/isTyping.php",
        &form,
        b"user=bob",
        false,
    ))
    .unwrap();
    c.read_response(false).unwrap().assert_json("[]");
    // A refused request does not break the connection either.
    c.write(&request_bytes_with(
        s.addr,
        "POST",
        "/sendMessage.php",
        &form,
        b"user=ana",
        false,
    ))
    .unwrap();
    c.read_response(false)
        .unwrap()
        .assert_400("missing message");
    c.write(&request_bytes_with(
        s.addr,
        "GET",
        "/listenToRecive.php?lastId=0",
        &[],
        b"",
        false,
    ))
    .unwrap();
    let m = parse_messages(&c.read_response(false).unwrap());
    assert_eq!(m.len(), 1);
}

#[test]
fn a_timed_out_poll_leaves_the_connection_usable() {
    let s = Server::builder().hold("0.5").start();
    assert_eq!(s.send("ana", "one", "main"), 1);
    let mut c = Conn::open(s.addr).unwrap();
    c.write(&request_bytes_with(
        s.addr,
        "GET",
        "/listenToRecive.php?lastId=1",
        &[],
        b"",
        false,
    ))
    .unwrap();
    c.read_response(false).unwrap().assert_json("[]");
    c.write(&request_bytes_with(
        s.addr,
        "GET",
        "/getNumberOfUsers.php",
        &[],
        b"",
        false,
    ))
    .unwrap();
    c.read_response(false)
        .unwrap()
        .assert(200, "text/html; charset=UTF-8", "1");
}

#[test]
fn woken_polls_in_a_row_on_one_connection() {
    let s = Server::builder().hold("20").start();
    assert_eq!(s.send("ana", "one", "main"), 1);
    let mut c = Conn::open(s.addr).unwrap();
    for id in 2..=4 {
        let path = format!("/listenToRecive.php?lastId={}", id - 1);
        c.write(&request_bytes_with(s.addr, "GET", &path, &[], b"", false))
            .unwrap();
        s.wait_waiters(1, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(s.send("bob", &format!("m{id}"), "main"), id);
        let r = c.read_response(false).unwrap();
        assert_eq!(
            parse_messages(&r).iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![id]
        );
        assert!(t0.elapsed() < Duration::from_millis(1500));
    }
}

#[test]
fn http_1_0_requests_are_answered() {
    let s = Server::start();
    let r = common::raw(s.addr, b"GET /getNumberOfUsers.php HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.text(), "0");
    let body = b"user=ana&message=old+client";
    let mut req = format!(
        "POST /sendMessage.php HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let r = common::raw(s.addr, &req).unwrap();
    assert_eq!(
        (r.status, r.text()),
        (200, r#"{"status":"ok","id":1}"#.to_string()),
        "{r}"
    );
}

#[test]
fn empty_and_odd_query_pieces_are_ignored() {
    let s = Server::start();
    let r = s.get("/sendMessage.php?&&=x&user=ana&&message=hi&=&flag");
    r.assert_json(r#"{"status":"ok","id":1}"#);
    let r = s.post("/sendMessage.php?", "&user=bob&message=yo&");
    r.assert_json(r#"{"status":"ok","id":2}"#);
}
