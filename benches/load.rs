//! Load tool for a running cometa (or any server speaking the legacy chat).
//!
//! `cargo bench --bench load -- --addr 127.0.0.1:PORT [--rounds N] [--sends N] [--senders K]`
//!
//! Measures, against one server:
//! - wake-up latency: a listener holds `listenToRecive.php`, a sender posts one
//!   message; time from the send's start to the listener's answer, and from the
//!   send's answer to the listener's answer;
//! - sequential sends/s on one keep-alive connection;
//! - concurrent sends/s with K connections.
//!
//! Prints medians and p99 only; run the candidates side by side in one go
//! (`benches/run.sh`) and compare ratios, since this machine is shared and noisy.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    addr: String,
    rounds: usize,
    sends: usize,
    senders: usize,
    room: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        addr: String::new(),
        rounds: 200,
        sends: 2000,
        senders: 16,
        room: format!("bench{}", std::process::id()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = val(),
            "--rounds" => a.rounds = val().parse().expect("--rounds N"),
            "--sends" => a.sends = val().parse().expect("--sends N"),
            "--senders" => a.senders = val().parse().expect("--senders K"),
            "--room" => a.room = val(),
            "--bench" => {} // cargo bench passes this
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.addr.is_empty(), "--addr 127.0.0.1:PORT is required");
    assert!(
        a.addr.starts_with("127.") || a.addr.starts_with("localhost"),
        "load is only ever sent to loopback"
    );
    a
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    io: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).ok();
        Conn {
            io: BufReader::new(s),
        }
    }

    async fn request(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        let req = if method == "POST" {
            format!(
                "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")
        };
        self.io
            .get_mut()
            .write_all(req.as_bytes())
            .await
            .expect("write");
        let mut line = String::new();
        self.io.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut len = 0usize;
        loop {
            line.clear();
            self.io.read_line(&mut line).await.expect("header");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; len];
        self.io.read_exact(&mut body).await.expect("body");
        (status, String::from_utf8(body).expect("utf-8 body"))
    }
}

fn last_id(body: &str) -> i64 {
    body.rsplit("\"id\":")
        .next()
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn wakeup(a: &Args) {
    let mut listener = Conn::open(&a.addr).await;
    let mut sender = Conn::open(&a.addr).await;
    let (_, hist) = listener
        .request(
            "GET",
            &format!("/listenToRecive.php?room={}&lastId=0", a.room),
            "",
        )
        .await;
    let mut last = last_id(&hist);
    if last == 0 {
        let (_, b) = sender
            .request(
                "POST",
                "/sendMessage.php",
                &format!("room={}&user=b&message=seed", a.room),
            )
            .await;
        last = b
            .trim_end_matches('}')
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
    }
    let (mut from_start, mut from_ack) = (Vec::new(), Vec::new());
    for _ in 0..a.rounds {
        let path = format!("/listenToRecive.php?room={}&lastId={last}", a.room);
        let poll = tokio::spawn(async move {
            let r = listener.request("GET", &path, "").await;
            (listener, r, Instant::now())
        });
        // Let the poll reach the server and wait there.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t0 = Instant::now();
        let (status, _) = sender
            .request(
                "POST",
                "/sendMessage.php",
                &format!("room={}&user=b&message=ping", a.room),
            )
            .await;
        assert_eq!(status, 200);
        let acked = Instant::now();
        let (l, (_, body), done) = poll.await.expect("poll task");
        listener = l;
        last = last_id(&body);
        from_start.push(done - t0);
        from_ack.push(done.saturating_duration_since(acked));
    }
    from_start.sort();
    from_ack.sort();
    println!(
        "wake-up latency ({} rounds): from send start p50 {} p99 {}; from send answer p50 {} p99 {}",
        a.rounds,
        ms(pct(&from_start, 0.5)),
        ms(pct(&from_start, 0.99)),
        ms(pct(&from_ack, 0.5)),
        ms(pct(&from_ack, 0.99)),
    );
}

async fn sends(a: &Args, senders: usize) {
    let per = a.sends / senders;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (addr, room) = (a.addr.clone(), a.room.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(&addr).await;
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                let (status, _) = c
                    .request(
                        "POST",
                        "/sendMessage.php",
                        &format!("room={room}&user=s{s}&message=m{i}"),
                    )
                    .await;
                assert_eq!(status, 200);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("sender"));
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "sends, {senders} connection(s): {:.0} messages/s ({} in {:.2} s); send answer p50 {} p99 {}",
        (per * senders) as f64 / secs,
        per * senders,
        secs,
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
    );
}

#[tokio::main]
async fn main() {
    let a = parse_args();
    wakeup(&a).await;
    sends(&a, 1).await;
    sends(&a, a.senders).await;
}
