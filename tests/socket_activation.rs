//! Zero-gap restarts with systemd socket activation: the listening socket
//! belongs to the supervisor (here the test, as systemd does with
//! `deploy/cometa.socket`) and is passed to each cometa as fd 3 with
//! `LISTEN_FDS=1`. While one cometa stops and the next starts, connections
//! wait in the socket's queue: senders and long-poll followers that never
//! retry see no failed request, and every message arrives once, in order.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use common::{form, http, parse_messages, parse_send_ok};

/// Starts cometa on the inherited `listener` (fd 3), waits for its listening line.
fn start(listener: &TcpListener, dir: &Path, n: usize) -> Child {
    let fd: OwnedFd = listener.try_clone().expect("dup the socket").into();
    let log = std::fs::File::create(dir.join(format!("cometa{n}.log"))).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cometa"));
    cmd.arg("--db")
        .arg(dir.join("chat.sqlite"))
        .args(["--hold", "1", "--listen", "127.0.0.1:1"])
        .env_remove("CHAT_DB")
        .env("LISTEN_FDS", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    cmd.fd_mappings(vec![FdMapping {
        parent_fd: fd,
        child_fd: 3,
    }])
    .expect("map fd 3");
    let mut child = cmd.spawn().expect("spawn cometa");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let expected = format!(
        "cometa listening on http://{}",
        listener.local_addr().unwrap()
    );
    let line = rx.recv_timeout(Duration::from_secs(10));
    assert_eq!(
        line.as_deref(),
        Ok(expected.as_str()),
        "the inherited socket, not --listen\n{}",
        std::fs::read_to_string(dir.join(format!("cometa{n}.log"))).unwrap_or_default()
    );
    child
}

/// SIGTERM, and a clean exit within 10 s.
fn stop(mut child: Child) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "exit status {st:?}");
            return;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_socket_activated_restart_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let first = start(&listener, dir.path(), 0);

    let stop_flag = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    // One sender, numbering its messages; every send must answer 200.
    let sender = {
        let (stop_flag, requests) = (stop_flag.clone(), requests.clone());
        thread::spawn(move || {
            let mut ids = Vec::new();
            let mut i = 0;
            while !stop_flag.load(Ordering::Relaxed) {
                let body = form(&[("user", "ana"), ("message", &format!("m{i}"))]);
                let r = http(
                    addr,
                    "POST",
                    "/sendMessage.php",
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    body.as_bytes(),
                );
                ids.push(parse_send_ok(&r));
                requests.fetch_add(1, Ordering::Relaxed);
                i += 1;
                thread::sleep(Duration::from_millis(5));
            }
            ids
        })
    };
    // Two followers of lastId; every poll must answer 200. They stop once
    // they have seen the sender's last message (`target`, known at the end).
    let target = Arc::new(AtomicI64::new(0));
    let followers: Vec<_> = (0..2)
        .map(|_| {
            let (target, requests) = (target.clone(), requests.clone());
            thread::spawn(move || {
                let (mut seen, mut last) = (Vec::new(), 0);
                loop {
                    let r = http(
                        addr,
                        "GET",
                        &format!("/listenToRecive.php?lastId={last}"),
                        &[],
                        b"",
                    );
                    requests.fetch_add(1, Ordering::Relaxed);
                    let batch = parse_messages(&r);
                    if let Some(m) = batch.last() {
                        last = m.id;
                    }
                    seen.extend(batch.into_iter().map(|m| m.id));
                    let t = target.load(Ordering::Relaxed);
                    if t > 0 && last >= t {
                        break;
                    }
                }
                seen
            })
        })
        .collect();

    let wait_requests = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let target = requests.load(Ordering::Relaxed) + n;
        while requests.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "traffic stalled");
            thread::sleep(Duration::from_millis(5));
        }
    };
    wait_requests(50);
    // Restart: the first stops (held polls get [], sends finish), the socket
    // stays open in the supervisor and queues what arrives meanwhile.
    stop(first);
    let second = start(&listener, dir.path(), 1);
    wait_requests(50);
    // And once more, with the next start a little late.
    stop(second);
    thread::sleep(Duration::from_millis(300));
    let third = start(&listener, dir.path(), 2);
    wait_requests(50);

    stop_flag.store(true, Ordering::Relaxed);
    let sent = sender.join().expect("a send failed during a restart");
    target.store(*sent.last().expect("messages sent"), Ordering::Relaxed);
    for f in followers {
        let seen = f.join().expect("a poll failed during a restart");
        // Every message from the first poll on, once, in order; the first poll
        // (lastId=0) gets the history, so compare from the first id it saw.
        let from = sent
            .iter()
            .position(|id| Some(id) == seen.first())
            .unwrap_or(0);
        assert_eq!(seen, sent[from..], "a follower lost or repeated messages");
    }
    stop(third);
}
