//! Slow and greedy clients: a body that trickles (408), a head that never ends
//! (431), a client that reads none of its answer (cut after the write timeout).

mod common;

use common::{Conn, Server, error_body};
use std::io::Read;
use std::time::{Duration, Instant};

/// Reads until the server closes (EOF or reset); panics if it is still open after `within`.
fn wait_closed(c: &Conn, within: Duration) -> Vec<u8> {
    let mut s = c.stream().try_clone().unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => got,
        Err(e) => panic!("connection still open after {within:?} ({e}); got {got:?}"),
    }
}

#[test]
fn a_body_that_trickles_is_cut_by_the_body_timeout_with_408() {
    let s = Server::builder().arg("--body-timeout").arg("1").start();
    let mut c = Conn::open(s.addr).unwrap();
    c.write(
        b"POST /sendMessage.php HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nuser=ana&",
    )
    .unwrap();
    let t0 = Instant::now();
    let r = c.read_response(false).expect("an answer to the slow body");
    let took = t0.elapsed();
    r.assert(408, "application/json", &error_body("request timeout"));
    assert_eq!(r.header("connection"), Some("close"), "{r}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "408 after {took:?}"
    );
    // And the connection is closed: nothing more is read from it.
    let rest = wait_closed(&c, Duration::from_secs(5));
    assert!(rest.is_empty(), "bytes after the 408: {rest:?}");
    s.assert_nothing_stored("a body that never arrived");
}

#[test]
fn a_body_that_arrives_in_time_is_read_whatever_its_pace() {
    let s = Server::builder().arg("--body-timeout").arg("3").start();
    let mut c = Conn::open(s.addr).unwrap();
    let body = b"user=ana&message=slow+but+steady";
    c.write(
        format!(
            "POST /sendMessage.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    for part in body.chunks(8) {
        std::thread::sleep(Duration::from_millis(100));
        c.write(part).unwrap();
    }
    c.read_response(false)
        .unwrap()
        .assert_json(r#"{"status":"ok","id":1}"#);
}

#[test]
fn a_head_over_the_cap_is_431_at_once() {
    let s = Server::start();
    // Under the default cap (32 KiB): served.
    let ok = "a".repeat(20 * 1024);
    let r = s.request("GET", "/getNumberOfUsers.php", &[("X-Pad", &ok)], b"");
    r.assert(200, "text/html; charset=UTF-8", "0");
    // One unfinished header line over the cap: 431 without waiting for its end.
    let mut c = Conn::open(s.addr).unwrap();
    c.write(b"GET /getNumberOfUsers.php HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        .unwrap();
    let t0 = Instant::now();
    let pad = vec![b'a'; 40 * 1024];
    // The server may close while the pad is still being written.
    let _ = c.write(&pad);
    let r = c.read_response(false).expect("431");
    assert_eq!(r.status, 431, "{r}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    wait_closed(&c, Duration::from_secs(5));
    // A smaller cap by flag.
    let s = Server::builder()
        .arg("--max-header-size")
        .arg("4096")
        .start();
    let big = "b".repeat(5000);
    let r = s.request("GET", "/getNumberOfUsers.php", &[("X-Pad", &big)], b"");
    assert_eq!(r.status, 431, "{r}");
}

/// Sends 50 messages (one answer's worth) of 1,000 emoji: a poll from 0 answers about 600 KB.
fn fill_with_emoji(s: &Server) {
    let emoji = "\u{1F600}".repeat(1000);
    for _ in 0..50 {
        s.send("ana", &emoji, "main");
    }
}

/// How many answers a stuck client asks for at once, pipelined: more than the
/// kernel's socket buffers take (up to 4 MiB each side on Linux), so that the
/// server's writes back up.
const PIPELINED: usize = 12;

fn pipelined_polls(c: &mut Conn, addr: std::net::SocketAddr) {
    let mut reqs = Vec::new();
    for i in 0..PIPELINED {
        let close = i + 1 == PIPELINED;
        reqs.extend(common::request_bytes_with(
            addr,
            "GET",
            "/listenToRecive.php?lastId=0",
            &[],
            b"",
            close,
        ));
    }
    c.write(&reqs).unwrap();
}

#[test]
fn a_client_that_reads_nothing_is_cut_after_the_write_timeout() {
    let s = Server::builder().arg("--write-timeout").arg("1").start();
    fill_with_emoji(&s);
    let mut stuck = Conn::open_small_window(s.addr).unwrap();
    pipelined_polls(&mut stuck, s.addr);
    // Meanwhile a reader gets the whole answer, however long it is.
    let r = s.listen(0, "main");
    assert_eq!(common::parse_messages(&r).len(), 50);
    assert!(r.body.len() > 600_000, "{} bytes", r.body.len());
    // The stuck one is cut: the server counts only this stats request.
    let t0 = Instant::now();
    common::wait_for(Duration::from_secs(15), "the stuck reader cut", || {
        (s.stats().1 == 1).then_some(())
    });
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(10), "cut after {took:?}");
    // What it can still read is less than it asked for, then the end.
    let got = wait_closed(&stuck, Duration::from_secs(5));
    assert!(
        got.len() < PIPELINED * r.body.len(),
        "{} bytes: all of it",
        got.len()
    );
}

#[test]
fn a_slow_reader_that_keeps_reading_gets_everything() {
    let s = Server::builder().arg("--write-timeout").arg("1").start();
    fill_with_emoji(&s);
    let mut slow = Conn::open_small_window(s.addr).unwrap();
    slow.send_get(s.addr, "/listenToRecive.php?lastId=0")
        .unwrap();
    // Reads 64 KiB at a time with pauses shorter than the write timeout: never cut.
    let mut st = slow.stream().try_clone().unwrap();
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        match st.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read failed after {} bytes: {e}", all.len()),
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "too slow");
    }
    let r = common::read_response(&mut std::io::BufReader::new(&all[..]), false).unwrap();
    assert_eq!(common::parse_messages(&r).len(), 50);
}
