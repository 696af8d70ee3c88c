//! Protective limits: body cap (413), connection cap (503), methods (405), slow headers.

mod common;

use common::{Conn, Server, error_body, request_bytes};
use std::io::Read;
use std::time::{Duration, Instant};

#[test]
fn body_over_the_cap_is_413_and_changes_nothing() {
    let s = Server::builder().arg("--max-body").arg("1024").start();
    // Exactly at the cap: accepted.
    let prefix = "user=ana&message=hi&_=";
    let at_cap = format!("{prefix}{}", "x".repeat(1024 - prefix.len()));
    assert_eq!(at_cap.len(), 1024);
    s.post("/sendMessage.php", &at_cap)
        .assert_json(r#"{"status":"ok","id":1}"#);
    // One byte more: refused.
    let over = format!("{at_cap}x");
    let r = s.post("/sendMessage.php", &over);
    r.assert(
        413,
        "application/json",
        &error_body("request body too large"),
    );
    let r = s.post(
        "/sendMessage.php",
        &format!("user=ana&message={}", "y".repeat(5000)),
    );
    r.assert(
        413,
        "application/json",
        &error_body("request body too large"),
    );
    for ep in [
        "/listenToRecive.php",
        "/isTyping.php",
        "/getNumberOfUsers.php",
    ] {
        let r = s.post(ep, &format!("user=bob&_={}", "z".repeat(2000)));
        r.assert(
            413,
            "application/json",
            &error_body("request body too large"),
        );
    }
    assert_eq!(
        s.counts(),
        (1, 1, 0),
        "only the message at the cap is stored"
    );
}

#[test]
fn default_body_cap_is_64_kib() {
    let s = Server::start();
    let prefix = "user=ana&message=hi&_=";
    let at_cap = format!("{prefix}{}", "x".repeat(65536 - prefix.len()));
    s.post("/sendMessage.php", &at_cap)
        .assert_json(r#"{"status":"ok","id":1}"#);
    let r = s.post("/sendMessage.php", &format!("{at_cap}x"));
    r.assert(
        413,
        "application/json",
        &error_body("request body too large"),
    );
    assert_eq!(s.counts().0, 1);
}

#[test]
fn chunked_bodies_are_read_and_capped() {
    let s = Server::builder().arg("--max-body").arg("1024").start();
    let raw = |chunks: &[&str]| {
        let mut body = Vec::new();
        for c in chunks {
            body.extend_from_slice(format!("{:x}\r\n{c}\r\n", c.len()).as_bytes());
        }
        body.extend_from_slice(b"0\r\n\r\n");
        request_bytes(
            s.addr,
            "POST",
            "/sendMessage.php",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Transfer-Encoding", "chunked"),
            ],
            &body,
        )
    };
    let r = common::raw(s.addr, &raw(&["user=ana&mes", "sage=chunked"])).unwrap();
    r.assert_json(r#"{"status":"ok","id":1}"#);
    let big = "x".repeat(600);
    let r = common::raw(s.addr, &raw(&["user=ana&message=hi&_=", &big, &big])).unwrap();
    r.assert(
        413,
        "application/json",
        &error_body("request body too large"),
    );
    assert_eq!(s.counts().0, 1);
}

#[test]
fn declared_length_over_the_cap_is_refused_without_waiting_for_the_body() {
    let s = Server::builder().arg("--max-body").arg("1024").start();
    let mut c = Conn::open(s.addr).unwrap();
    c.set_read_timeout(Duration::from_secs(5));
    let head = format!(
        "POST /sendMessage.php HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000\r\n\r\nuser=ana",
        s.addr
    );
    c.write(head.as_bytes()).unwrap();
    let t0 = Instant::now();
    let r = c
        .read_response(false)
        .expect("a 413 while the body is still unsent");
    r.assert(
        413,
        "application/json",
        &error_body("request body too large"),
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[test]
fn methods_other_than_get_and_post_are_405_with_allow() {
    let s = Server::start();
    for path in [
        "/sendMessage.php?user=ana&message=hi",
        "/listenToRecive.php",
        "/getNumberOfUsers.php",
        "/isTyping.php?user=ana&typing=1",
    ] {
        for method in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
            let r = s.request(
                method,
                path,
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"user=ana&message=x",
            );
            r.assert(405, "application/json", &error_body("method not allowed"));
            let allow = r
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: no Allow header: {r}"));
            let mut allowed: Vec<String> = allow.split(',').map(|m| m.trim().to_string()).collect();
            allowed.sort();
            assert_eq!(allowed, ["GET", "POST"], "{method} {path}: Allow: {allow}");
        }
    }
    s.assert_nothing_stored("405 answers");
}

#[test]
fn static_paths_list_head_in_their_allow_header() {
    let s = Server::start();
    let r = s.request("DELETE", "/index.html", &[], b"");
    assert_eq!(r.status, 405, "{r}");
    let allow = r.header("allow").unwrap_or_default().to_string();
    let allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
    assert!(
        allowed.contains(&"GET") && allowed.contains(&"HEAD"),
        "a static path allows HEAD too (docs/wire.md); got Allow: {allow:?}; {r}"
    );
}

/// True while nothing (no answer, no EOF) has arrived on a long-poll connection.
fn is_held(c: &Conn) -> bool {
    let st = c.stream();
    st.set_nonblocking(true).unwrap();
    let r = st.peek(&mut [0u8; 1]);
    st.set_nonblocking(false).unwrap();
    matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn connection_cap_answers_503_at_once_and_recovers() {
    let s = Server::builder()
        .hold("20")
        .arg("--max-connections")
        .arg("2")
        .start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let open_poll = || {
        let mut c = Conn::open(s.addr).unwrap();
        c.send_get(s.addr, "/listenToRecive.php?lastId=1").unwrap();
        c
    };
    // Two held long-polls fill the cap. A connection that just closed may hold its
    // slot a moment longer, so a poll can itself be refused: reopen it then. A probe's
    // 503 counts only if both polls are still held afterwards.
    let mut held: Vec<Conn> = vec![open_poll(), open_poll()];
    let r = common::wait_for(
        Duration::from_secs(10),
        "a 503 while the cap is full",
        || {
            for c in held.iter_mut() {
                if !is_held(c) {
                    *c = open_poll();
                }
            }
            let t0 = Instant::now();
            let r = s.get("/getNumberOfUsers.php");
            let took = t0.elapsed();
            if r.status == 503 && held.iter().all(is_held) {
                assert!(took < Duration::from_secs(2), "503 took {took:?}");
                Some(r)
            } else {
                std::thread::sleep(Duration::from_millis(50));
                None
            }
        },
    );
    r.assert(503, "application/json", &error_body("server busy"));
    // A send refused for being busy stores nothing.
    let r = s.post("/sendMessage.php", "user=bob&message=busy");
    r.assert(503, "application/json", &error_body("server busy"));
    assert_eq!(s.counts().0, 1);

    // Resetting one held poll frees a slot: the server serves again. (A FIN
    // alone would be a half-close: the poll would be kept until answered.)
    held.pop().unwrap().reset();
    common::wait_for(
        Duration::from_secs(10),
        "service after a slot is freed",
        || {
            let r = s.get("/getNumberOfUsers.php");
            (r.status == 200).then_some(())
        },
    );
    // The remaining held poll still gets its message.
    let mut last = held.pop().unwrap();
    // (A probe's slot may linger for a moment: a refused send stores nothing, so retry.)
    let id = common::wait_for(Duration::from_secs(10), "a send with one slot free", || {
        let r = s.post("/sendMessage.php", "user=ana&message=second");
        (r.status == 200).then(|| common::parse_send_ok(&r))
    });
    assert_eq!(id, 2);
    let r = last.read_response(false).unwrap();
    assert_eq!(
        common::parse_messages(&r)
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        vec![2]
    );
}

#[test]
fn slow_headers_are_cut_off_by_the_header_timeout() {
    let s = Server::builder().arg("--header-timeout").arg("1").start();
    let mut c = Conn::open(s.addr).unwrap();
    c.set_read_timeout(Duration::from_secs(10));
    c.write(b"GET /getNumberOfUsers.php HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    // The server either answers (408) and closes or just closes: either way the read ends.
    let res = c.stream().try_clone().unwrap().read_to_end(&mut buf);
    let took = t0.elapsed();
    assert!(
        res.is_ok()
            || res
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "read error {res:?} after {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "connection with unfinished headers kept for {took:?}"
    );
    // The server is still fine.
    s.get("/getNumberOfUsers.php")
        .assert(200, "text/html; charset=UTF-8", "0");
}

/// Open descriptors of a process.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn over_the_cap_a_silent_connection_is_answered_503_without_a_request() {
    let s = Server::builder()
        .hold("20")
        .arg("--max-connections")
        .arg("1")
        .start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let mut held = Conn::open(s.addr).unwrap();
    held.send_get(s.addr, "/listenToRecive.php?lastId=1")
        .unwrap();
    // The slot is taken once the poll is held: a silent connection then gets
    // its 503 at once, and the end of the connection.
    let r = common::wait_for(Duration::from_secs(10), "a 503", || {
        let mut c = Conn::open(s.addr).unwrap();
        c.set_read_timeout(Duration::from_secs(3));
        let t0 = Instant::now();
        let r = c.read_response(false).ok()?;
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        Some(r)
    });
    r.assert(503, "application/json", &error_body("server busy"));
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn silent_connections_over_the_cap_hold_a_bounded_number_of_descriptors() {
    let s = Server::builder()
        .hold("20")
        .arg("--max-connections")
        .arg("50")
        .start();
    let base = descriptors(s.pid());
    // 50 silent connections fill the cap; 400 more neither send nor read.
    let conns: Vec<Conn> = (0..450).map(|_| Conn::open(s.addr).unwrap()).collect();
    let mut most = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        most = most.max(descriptors(s.pid()));
        std::thread::sleep(Duration::from_millis(20));
    }
    // The cap, the refusals in flight (64), and what the server had.
    assert!(
        most <= base + 50 + 64 + 8,
        "{most} descriptors (base {base}) with 450 silent connections on a 50-cap server"
    );
    drop(conns);
}

#[test]
fn one_client_address_holds_at_most_its_share_of_connections() {
    let s = Server::builder()
        .hold("20")
        .arg("--max-connections-per-client")
        .arg("3")
        .start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let held: Vec<Conn> = (0..2)
        .map(|_| {
            let mut c = Conn::open(s.addr).unwrap();
            c.send_get(s.addr, "/listenToRecive.php?lastId=1").unwrap();
            c
        })
        .collect();
    s.wait_waiters(2, Duration::from_secs(10));
    // The third connection is the stats request's; a fourth is refused.
    let mut third = Conn::open(s.addr).unwrap();
    let mut fourth = Conn::open(s.addr).unwrap();
    fourth.set_read_timeout(Duration::from_secs(3));
    let r = fourth.read_response(false).unwrap();
    r.assert(429, "application/json", &error_body("too many requests"));
    // Its slot is free again when one closes.
    third.send_get(s.addr, "/getNumberOfUsers.php").unwrap();
    assert_eq!(third.read_response(false).unwrap().status, 200);
    drop(third);
    common::wait_for(Duration::from_secs(5), "a slot given back", || {
        let r = s.get("/getNumberOfUsers.php");
        (r.status == 200).then_some(())
    });
    drop(held);
}

#[test]
fn sends_over_the_rate_are_429_with_the_contracts_error() {
    let s = Server::builder()
        .send_limits()
        .args(&["--user-send-burst", "3", "--user-send-rate", "0.01"])
        .args(&["--client-send-burst", "5", "--client-send-rate", "0.01"])
        .start();
    for i in 1..=3 {
        assert_eq!(s.send("ana", &format!("m{i}"), "main"), i);
    }
    let r = s.post("/sendMessage.php", "user=ana&message=one+too+many");
    r.assert(429, "application/json", &error_body("too many requests"));
    // The name is the key, trimmed as the endpoint trims it.
    let r = s.post("/sendMessage.php", "user=+ana+&message=again");
    r.assert(429, "application/json", &error_body("too many requests"));
    // Another name from the same address, until the address's burst is used up
    // (ana's two refused sends counted against it too).
    let r = s.post("/sendMessage.php", "user=bob&message=x");
    r.assert(429, "application/json", &error_body("too many requests"));
    assert_eq!(s.counts().0, 3, "refused sends store nothing");
    // Polls are never rate limited.
    assert_eq!(s.listen(0, "main").status, 200);
}

#[test]
fn forwarded_addresses_count_only_from_a_trusted_proxy() {
    let limited = |b: common::Builder| {
        b.send_limits().args(&["--user-send-rate", "0"]).args(&[
            "--client-send-burst",
            "2",
            "--client-send-rate",
            "0.01",
        ])
    };
    let send_as = |s: &Server, ip: &str, n: usize| {
        s.request(
            "POST",
            "/sendMessage.php",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Real-IP", ip),
                ("X-Forwarded-For", ip),
            ],
            format!("user=u{n}&message=m").as_bytes(),
        )
        .status
    };
    // Nobody trusted: the headers are ignored, 127.0.0.1 is the client.
    let s = limited(Server::builder()).start();
    let got: Vec<u16> = (0..3)
        .map(|n| send_as(&s, &format!("10.0.0.{n}"), n))
        .collect();
    assert_eq!(got, [200, 200, 429]);
    // 127.0.0.1 trusted: each named address has its own bucket.
    let s = limited(Server::builder())
        .args(&["--trusted-proxy", "127.0.0.0/8"])
        .start();
    let got: Vec<u16> = (0..3)
        .map(|n| send_as(&s, &format!("10.0.0.{n}"), n))
        .collect();
    assert_eq!(got, [200, 200, 200]);
    let got: Vec<u16> = (0..2).map(|n| send_as(&s, "10.0.0.0", n)).collect();
    assert_eq!(got, [200, 429], "10.0.0.0's third send");
}

#[test]
fn behind_a_trusted_proxy_the_connection_cap_counts_the_named_client() {
    let s = Server::builder()
        .hold("20")
        .args(&[
            "--trusted-proxy",
            "127.0.0.1",
            "--max-connections-per-client",
            "2",
        ])
        .start();
    assert_eq!(s.send("ana", "first", "main"), 1);
    let poll_as = |ip: &str| {
        let mut c = Conn::open(s.addr).unwrap();
        c.write(&common::request_bytes(
            s.addr,
            "GET",
            "/listenToRecive.php?lastId=1",
            &[("X-Real-IP", ip)],
            b"",
        ))
        .unwrap();
        c
    };
    let _held = [poll_as("10.1.1.1"), poll_as("10.1.1.1")];
    s.wait_waiters(2, Duration::from_secs(10));
    // A third request of 10.1.1.1 is refused at once; another client is not.
    let t0 = Instant::now();
    let r = s.request(
        "GET",
        "/getNumberOfUsers.php",
        &[("X-Real-IP", "10.1.1.1")],
        b"",
    );
    r.assert(429, "application/json", &error_body("too many requests"));
    assert!(t0.elapsed() < Duration::from_secs(2));
    let r = s.request(
        "GET",
        "/getNumberOfUsers.php",
        &[("X-Real-IP", "10.1.1.2")],
        b"",
    );
    assert_eq!(r.status, 200, "{r}");
    // The proxy's own connections are not what is counted.
    assert_eq!(s.get("/getNumberOfUsers.php").status, 200);
}
