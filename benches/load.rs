//! Load tool for the legacy chat's long-poll, run against cometa, the legacy PHP
//! app (php-fpm behind nginx) or nchan with the same load shape. `benches/run.sh`
//! starts each server and runs this against it; see BENCHMARKS.md.
//!
//! ```text
//! load --target cometa|php|nchan|omegle --addr 127.0.0.1:PORT [--pid PID]... [--label NAME]
//!      [--out results.tsv] [--modes mem,fanout,sends,foreign] [--n 1000,10000]
//!      [--rounds 10] [--hold 25] [--idle-secs 5] [--senders 64] [--send-secs 5]
//!      [--php-children 32] [--db PATH --php-insert benches/php/insert.php --foreign-rounds 200
//!       --foreign-spread-ms 20] [--fire-conns 64]
//! load --report results.tsv          # the tables of BENCHMARKS.md
//! load --report-profiles results.tsv # issue 8: baseline vs profile engine, omegle
//! ```
//!
//! Clients behave as the frozen jQuery page does: a first poll with `lastId=0`
//! (history), then follow `lastId` and poll again at once; 2 s pause after an
//! error; 40 s client timeout. nchan's client follows Last-Modified/Etag instead.
//!
//! - `mem` (per N): server RSS and PSS (summed over the process tree) with N
//!   waiters, minus the same before any waiter; the idle window follows at once:
//!   CPU% (utime+stime of the tree) and SQL statements/s over `--idle-secs`.
//! - `fanout` (per N): one send to the N waiters of one room; delivery latency
//!   from the send's start and from its answer, p50/p99/max over all deliveries
//!   of `--rounds` rounds.
//! - `sends`: K senders on their own keep-alive connections for `--send-secs`;
//!   messages/s answered as committed; latency of each message to one follower.
//! - `foreign`: a PHP CLI process (`--php-insert`) commits one message per round
//!   with PDO; time from its commit (its `microtime(true)`) to the waiter's answer.
//!
//! `--target omegle` is cometa serving the `omegle` profile: N users are started
//! and paired first (`startChat.php`, `randomChat.php`), each waiter holds
//! `listenToReceive.php?userId=U` (POST, empty body, as the page does); a
//! fan-out round fires one `sendMsg.php` from each waiter's partner to it, over
//! `--fire-conns` keep-alive connections at once, timed per send (from its start
//! and from its answer to its waiter's answer) and from the round's start;
//! `sends` is 64 paired users each sending to its partner (nobody follows: the
//! queue answers one message per poll). Every omegle answer is a 200, a refused
//! send too, so with `--db` the committed messages are counted in the file.

#[path = "load/http.rs"]
mod http;
#[path = "load/procfs.rs"]
mod procfs;
#[path = "load/report.rs"]
mod report;
#[path = "load/target.rs"]
mod target;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use http::Conn;
use target::{Cursor, Kind};

/// The browser's ajax timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);
/// The browser's pause after an error.
const ERROR_PAUSE: Duration = Duration::from_secs(2);

struct Args {
    kind: Kind,
    addr: SocketAddr,
    pids: Vec<u32>,
    label: String,
    out: Option<String>,
    modes: Vec<String>,
    ns: Vec<usize>,
    rounds: usize,
    hold: f64,
    idle_secs: f64,
    senders: usize,
    send_secs: f64,
    db: Option<String>,
    php_insert: Option<String>,
    foreign_rounds: usize,
    foreign_spread_ms: u64,
    php_children: usize,
    room: String,
    fire_conns: usize,
}

fn parse_args() -> Option<Args> {
    let mut a = Args {
        kind: Kind::Cometa,
        addr: "127.0.0.1:8080".parse().expect("addr"),
        pids: Vec::new(),
        label: String::new(),
        out: None,
        modes: vec!["mem".into(), "fanout".into(), "sends".into()],
        ns: vec![1000, 10_000],
        rounds: 10,
        hold: 25.0,
        idle_secs: 5.0,
        senders: 64,
        send_secs: 5.0,
        db: None,
        php_insert: None,
        foreign_rounds: 200,
        foreign_spread_ms: 20,
        php_children: 32,
        room: format!("bench{}", std::process::id()),
        fire_conns: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--report" => {
                report::print(&val());
                return None;
            }
            "--report-profiles" => {
                report::print_profiles(&val());
                return None;
            }
            "--fire-conns" => a.fire_conns = val().parse().expect("--fire-conns K"),
            "--target" => a.kind = Kind::parse(&val()),
            "--addr" => a.addr = val().parse().expect("--addr 127.0.0.1:PORT"),
            "--pid" => a.pids.push(val().parse().expect("--pid PID")),
            "--label" => a.label = val(),
            "--out" => a.out = Some(val()),
            "--modes" => a.modes = val().split(',').map(str::to_owned).collect(),
            "--n" => {
                a.ns = val()
                    .split(',')
                    .map(|s| s.parse().expect("--n 1000,10000"))
                    .collect();
            }
            "--rounds" => a.rounds = val().parse().expect("--rounds R"),
            "--hold" => a.hold = val().parse().expect("--hold SECONDS"),
            "--idle-secs" => a.idle_secs = val().parse().expect("--idle-secs S"),
            "--senders" => a.senders = val().parse().expect("--senders K"),
            "--send-secs" => a.send_secs = val().parse().expect("--send-secs S"),
            "--db" => a.db = Some(val()),
            "--php-insert" => a.php_insert = Some(val()),
            "--foreign-rounds" => a.foreign_rounds = val().parse().expect("--foreign-rounds R"),
            "--foreign-spread-ms" => {
                a.foreign_spread_ms = val().parse().expect("--foreign-spread-ms MS");
            }
            "--php-children" => a.php_children = val().parse().expect("--php-children C"),
            "--room" => a.room = val(),
            "--bench" => {} // cargo bench passes this
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        a.addr.ip().is_loopback(),
        "load is only ever sent to loopback"
    );
    if a.label.is_empty() {
        a.label = format!("{:?}", a.kind).to_lowercase();
    }
    Some(a)
}

/// Results, one `label\tkey\tn\tvalue` line each (`--out`), echoed to stdout.
struct Out {
    label: String,
    file: Option<std::fs::File>,
}

impl Out {
    fn rec(&mut self, key: &str, n: usize, value: f64) {
        println!("  {key:<28} n={n:<6} {value:.3}");
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{}\t{key}\t{n}\t{value}", self.label);
        }
    }
    fn note(&mut self, n: usize, text: &str) {
        println!("  note n={n}: {text}");
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{}\tnote\t{n}\t{text}", self.label);
        }
    }
}

/// A delivery seen by a waiter: which waiter, the highest `seq` in the answer, when.
type Delivery = (usize, u64, Instant);

#[derive(Default)]
struct Counters {
    answers: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    not_ok: AtomicU64,
}

/// The browser-like waiters, all in one room.
struct Pool {
    kind: Kind,
    addr: SocketAddr,
    room: String,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    tx: mpsc::UnboundedSender<Delivery>,
    rx: mpsc::UnboundedReceiver<Delivery>,
    counters: Arc<Counters>,
    connected: Arc<AtomicU64>,
    /// omegle: (user, partner) of each waiter, by index.
    pairs: Vec<(i64, i64)>,
}

impl Pool {
    fn new(kind: Kind, addr: SocketAddr, room: &str, pairs: Vec<(i64, i64)>) -> Pool {
        let (tx, rx) = mpsc::unbounded_channel();
        Pool {
            pairs,
            kind,
            addr,
            room: room.to_owned(),
            stop: CancellationToken::new(),
            tasks: Vec::new(),
            tx,
            rx,
            counters: Arc::default(),
            connected: Arc::default(),
        }
    }

    /// Adds waiters until there are `n`, opening their connections a few
    /// hundred at a time.
    async fn grow(&mut self, n: usize) {
        while self.tasks.len() < n {
            let idx = self.tasks.len();
            let user = match self.kind {
                Kind::Nchan => None,
                Kind::Omegle => Some(self.pairs[idx].0.to_string()),
                Kind::Cometa | Kind::Php => Some(format!("w{idx}")),
            };
            let (kind, addr, room, stop, tx, counters, connected) = (
                self.kind,
                self.addr,
                self.room.clone(),
                self.stop.clone(),
                self.tx.clone(),
                self.counters.clone(),
                self.connected.clone(),
            );
            self.tasks.push(tokio::spawn(async move {
                waiter(idx, user, kind, addr, room, stop, tx, counters, connected).await;
            }));
            if idx % 200 == 199 {
                // Let the connects drain rather than flooding the accept backlog.
                let t = Instant::now();
                while (self.connected.load(Ordering::Relaxed) as usize) + 400 < self.tasks.len()
                    && t.elapsed() < Duration::from_secs(5)
                {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn waiter(
    idx: usize,
    user: Option<String>,
    kind: Kind,
    addr: SocketAddr,
    room: String,
    stop: CancellationToken,
    tx: mpsc::UnboundedSender<Delivery>,
    counters: Arc<Counters>,
    connected: Arc<AtomicU64>,
) {
    let user = user.as_deref();
    let mut cursor = Cursor::default();
    let mut conn: Option<Conn> = None;
    let mut counted = false;
    while !stop.is_cancelled() {
        let c = match &mut conn {
            Some(c) => c,
            None => match tokio::time::timeout(CLIENT_TIMEOUT, Conn::open(addr)).await {
                Ok(Ok(c)) => {
                    if !counted {
                        counted = true;
                        connected.fetch_add(1, Ordering::Relaxed);
                    }
                    conn.insert(c)
                }
                _ => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    pause(&stop, ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let (path, headers) = kind.poll(&room, user, &cursor);
        let method = kind.poll_method();
        let answer = tokio::select! {
            () = stop.cancelled() => break,
            r = tokio::time::timeout(CLIENT_TIMEOUT, c.request(method, &path, &headers, b"")) => r,
        };
        match answer {
            Ok(Ok(r)) => {
                let now = Instant::now();
                counters.answers.fetch_add(1, Ordering::Relaxed);
                if r.close {
                    conn = None;
                }
                if !(r.status == 200 || (kind == Kind::Nchan && r.status == 304)) {
                    counters.not_ok.fetch_add(1, Ordering::Relaxed);
                    pause(&stop, ERROR_PAUSE).await;
                    continue;
                }
                kind.follow(&mut cursor, &r);
                if let Some(seq) = http::max_seq(&r.body) {
                    let _ = tx.send((idx, seq, now));
                }
            }
            Ok(Err(_)) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
                pause(&stop, ERROR_PAUSE).await;
            }
            Err(_) => {
                counters.timeouts.fetch_add(1, Ordering::Relaxed);
                conn = None;
                pause(&stop, ERROR_PAUSE).await;
            }
        }
    }
}

async fn pause(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(d) => {}
    }
}

/// Sends one message from a fresh connection; (status, start, answer).
async fn send_one(
    kind: Kind,
    addr: SocketAddr,
    room: &str,
    text: &str,
    timeout: Duration,
) -> (Option<u16>, Instant, Instant) {
    let (path, body) = kind.send(room, "sender", text);
    let t0 = Instant::now();
    let r = tokio::time::timeout(timeout, async {
        let mut c = Conn::open(addr).await?;
        c.request("POST", &path, "", &body).await
    })
    .await;
    let status = match r {
        Ok(Ok(r)) => Some(r.status),
        _ => None,
    };
    (status, t0, Instant::now())
}

/// Waits until the server reports `n` waiters (or, when it cannot say, the
/// connections are open and a moment has passed); false on time-out.
async fn settle(a: &Args, pool: &Pool, n: usize, limit: Duration) -> bool {
    let t = Instant::now();
    loop {
        let ok = match a.kind.server_waiters(a.addr).await {
            Some(w) => w as usize >= n * a.kind.held_per_poll(),
            None => {
                pool.connected.load(Ordering::Relaxed) as usize >= n
                    && t.elapsed() > Duration::from_secs(3)
            }
        };
        if ok {
            return true;
        }
        if t.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pct_ms(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn waiter_phases(a: &Args, out: &mut Out) {
    let max_n = a.ns.iter().copied().max().unwrap_or(0);
    let pairs = if a.kind == Kind::Omegle {
        // Every user exists and is paired before the base reading.
        let t = Instant::now();
        let pairs = omegle_pairs(a.addr, max_n, a.fire_conns, out).await;
        out.rec("pairing_secs", max_n, t.elapsed().as_secs_f64());
        pairs
    } else {
        // A room with history, so the first poll (lastId=0) is not empty.
        let mut s = None;
        for _ in 0..5 {
            s = send_one(a.kind, a.addr, &a.room, "seq0", CLIENT_TIMEOUT)
                .await
                .0;
            if s.is_some_and(|s| a.kind.send_ok(s)) {
                break;
            }
            out.note(0, &format!("seed send failed ({s:?}), trying again"));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(
            s.is_some_and(|s| a.kind.send_ok(s)),
            "seed send failed: {s:?}"
        );
        Vec::new()
    };
    let mut pool = Pool::new(a.kind, a.addr, &a.room, pairs);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = procfs::mem(&a.pids);
    out.rec("rss_base_kib", 0, base.rss as f64);
    out.rec("pss_base_kib", 0, base.pss as f64);
    let mut seq = 1u64;
    let fanout = a.modes.iter().any(|m| m == "fanout");
    let mem = a.modes.iter().any(|m| m == "mem");
    for &n in &a.ns {
        println!("== {} with {n} waiters", a.label);
        let t_grow = Instant::now();
        pool.grow(n).await;
        let settled = settle(a, &pool, n, Duration::from_secs(30)).await;
        let held = a.kind.server_waiters(a.addr).await;
        out.rec("grow_secs", n, t_grow.elapsed().as_secs_f64());
        if let Some(h) = held {
            out.rec("held", n, (h as usize / a.kind.held_per_poll()) as f64);
        }
        if !settled {
            out.note(n, "the server did not report all waiters within 30 s");
        }
        if mem {
            // Let allocations of the connects settle.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let m = procfs::mem(&a.pids);
            out.rec("rss_kib", n, m.rss as f64);
            out.rec("pss_kib", n, m.pss as f64);
            out.rec(
                "rss_per_waiter_kib",
                n,
                (m.rss as f64 - base.rss as f64) / n as f64,
            );
            out.rec(
                "pss_per_waiter_kib",
                n,
                (m.pss as f64 - base.pss as f64) / n as f64,
            );
            out.rec("procs", n, m.procs as f64);
            // Idle: nobody sends; the waiters are parked (the window ends well
            // before their hold does).
            let answers0 = pool.counters.answers.load(Ordering::Relaxed);
            let q0 = a.kind.server_queries(a.addr).await;
            let c0 = procfs::cpu_secs(&a.pids);
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs_f64(a.idle_secs)).await;
            let c1 = procfs::cpu_secs(&a.pids);
            let secs = t0.elapsed().as_secs_f64();
            let q1 = a.kind.server_queries(a.addr).await;
            out.rec("idle_cpu_pct", n, (c1 - c0) / secs * 100.0);
            if let (Some(q0), Some(q1)) = (q0, q1) {
                out.rec("idle_sql_per_s", n, (q1 - q0) as f64 / secs);
            } else if a.kind == Kind::Php {
                // Not counted: each held poll runs its SELECT every 250 ms.
                out.rec("idle_sql_per_s", n, 4.0 * n.min(a.php_children) as f64);
            }
            let polls = pool.counters.answers.load(Ordering::Relaxed) - answers0;
            out.rec("idle_answers_per_s", n, polls as f64 / secs);
        }
        if fanout && a.kind == Kind::Omegle {
            omegle_fanout_rounds(a, &mut pool, n, &mut seq, out).await;
        } else if fanout {
            fanout_rounds(a, &mut pool, n, &mut seq, out).await;
        }
        let c = &pool.counters;
        out.rec("client_errors", n, c.errors.load(Ordering::Relaxed) as f64);
        out.rec(
            "client_timeouts",
            n,
            c.timeouts.load(Ordering::Relaxed) as f64,
        );
        out.rec("answers_not_ok", n, c.not_ok.load(Ordering::Relaxed) as f64);
    }
    pool.stop().await;
}

async fn fanout_rounds(a: &Args, pool: &mut Pool, n: usize, seq: &mut u64, out: &mut Out) {
    let (mut from_start, mut from_ack) = (Vec::new(), Vec::new());
    let mut send_ms = Vec::new();
    let mut delivered = Vec::new();
    let mut failed_sends = 0;
    let collect_limit = if a.kind == Kind::Php {
        CLIENT_TIMEOUT
    } else {
        Duration::from_secs(10)
    };
    for _ in 0..a.rounds {
        // Everyone polling again (after the last round) before the next send.
        settle(a, pool, n, Duration::from_secs(10)).await;
        while pool.rx.try_recv().is_ok() {}
        let text = format!("seq{seq}");
        let k = *seq;
        *seq += 1;
        let (status, t0, t1) = send_one(a.kind, a.addr, &a.room, &text, CLIENT_TIMEOUT).await;
        let ok = status.is_some_and(|s| a.kind.send_ok(s));
        if ok {
            send_ms.push(ms(t1 - t0));
        } else {
            failed_sends += 1;
            out.note(
                n,
                &format!(
                    "send {text}: {} after {:.1} s",
                    status.map_or("no answer (client timeout)".into(), |s| format!(
                        "status {s}"
                    )),
                    (t1 - t0).as_secs_f64()
                ),
            );
        }
        let mut got = vec![false; n];
        let mut count = 0;
        let deadline = tokio::time::Instant::now() + collect_limit;
        while count < n {
            match tokio::time::timeout_at(deadline, pool.rx.recv()).await {
                Ok(Some((idx, s, at))) if s >= k && idx < n && !got[idx] => {
                    got[idx] = true;
                    count += 1;
                    from_start.push(ms(at.saturating_duration_since(t0)));
                    if ok {
                        from_ack.push(ms(at.saturating_duration_since(t1)));
                    }
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        delivered.push(count as f64 / n as f64 * 100.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    from_start.sort_by(f64::total_cmp);
    from_ack.sort_by(f64::total_cmp);
    send_ms.sort_by(f64::total_cmp);
    delivered.sort_by(f64::total_cmp);
    out.rec("fanout_rounds", n, a.rounds as f64);
    out.rec("fanout_failed_sends", n, failed_sends as f64);
    out.rec("fanout_delivered_pct_min", n, delivered[0]);
    out.rec("fanout_send_answer_p50_ms", n, pct_ms(&send_ms, 0.5));
    for (name, v) in [("ack", &from_ack), ("start", &from_start)] {
        out.rec(&format!("fanout_{name}_p50_ms"), n, pct_ms(v, 0.5));
        out.rec(&format!("fanout_{name}_p99_ms"), n, pct_ms(v, 0.99));
        out.rec(&format!("fanout_{name}_max_ms"), n, pct_ms(v, 1.0));
    }
}

/// Microseconds since `base`, as stored per message for the follower.
fn since(base: Instant) -> u64 {
    base.elapsed().as_micros() as u64
}

async fn sends_phase(a: &Args, out: &mut Out) {
    let room = format!("{}s", a.room);
    let base = Instant::now();
    // Start time (µs since base, +1 so 0 means unsent) of each message.
    let max_msgs = 2_000_000usize;
    let started: Arc<Vec<AtomicU64>> = Arc::new((0..max_msgs).map(|_| AtomicU64::new(0)).collect());
    let next = Arc::new(AtomicU64::new(1));
    let omegle = a.kind == Kind::Omegle;
    // omegle: each sender a paired user, sending to its partner.
    let pairs = if omegle {
        Arc::new(omegle_pairs(a.addr, 2 * a.senders, a.fire_conns, out).await)
    } else {
        Arc::default()
    };
    let queued0 = if omegle { count_rows(a, "msgs") } else { None };
    // Seed, then the follower: a browser-like poller of the same room.
    if !omegle {
        send_one(a.kind, a.addr, &room, "seq0", CLIENT_TIMEOUT).await;
    }
    let stop = CancellationToken::new();
    let follower = if omegle {
        // The queue answers one message per poll: nobody could keep up.
        tokio::spawn(async { Vec::new() })
    } else {
        let (kind, addr, room, stop, started) =
            (a.kind, a.addr, room.clone(), stop.clone(), started.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut cursor = Cursor::default();
            let Ok(mut c) = Conn::open(addr).await else {
                return lat;
            };
            let mut first = true;
            while !stop.is_cancelled() {
                let (path, headers) = kind.poll(&room, Some("follower"), &cursor);
                let r = tokio::select! {
                    () = stop.cancelled() => break,
                    r = tokio::time::timeout(CLIENT_TIMEOUT, c.request("GET", &path, &headers, b"")) => r,
                };
                let Ok(Ok(r)) = r else { break };
                let now = since(base);
                kind.follow(&mut cursor, &r);
                if !first {
                    for s in all_seqs(&r.body) {
                        if let Some(t) = started.get(s as usize).map(|t| t.load(Ordering::Relaxed))
                            && t > 0
                        {
                            lat.push(now.saturating_sub(t - 1) as f64 / 1e3);
                        }
                    }
                }
                first = false;
            }
            lat
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadline = Instant::now() + Duration::from_secs_f64(a.send_secs);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..a.senders {
        let (kind, addr, started, next) = (a.kind, a.addr, started.clone(), next.clone());
        let (room, user) = match pairs.get(s) {
            Some(&(from, to)) => (from.to_string(), to.to_string()),
            None => (room.clone(), format!("s{s}")),
        };
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0u64;
            let Ok(mut c) = Conn::open(addr).await else {
                return (lat, 1);
            };
            while Instant::now() < deadline {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k as usize >= max_msgs {
                    break;
                }
                let (path, body) = kind.send(&room, &user, &format!("seq{k}"));
                let t = Instant::now();
                started[k as usize].store(since(base) + 1, Ordering::Relaxed);
                match tokio::time::timeout(CLIENT_TIMEOUT, c.request("POST", &path, "", &body))
                    .await
                {
                    Ok(Ok(r)) if kind.send_ok(r.status) => {
                        lat.push(ms(t.elapsed()));
                        if r.close {
                            match Conn::open(addr).await {
                                Ok(n) => c = n,
                                Err(_) => break,
                            }
                        }
                    }
                    _ => {
                        failed += 1;
                        match Conn::open(addr).await {
                            Ok(n) => c = n,
                            Err(_) => break,
                        }
                    }
                }
            }
            (lat, failed)
        }));
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.expect("sender");
        lat.extend(l);
        failed += f;
    }
    let secs = t0.elapsed().as_secs_f64();
    // Let the follower catch up, then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let mut follow = follower.await.expect("follower");
    lat.sort_by(f64::total_cmp);
    follow.sort_by(f64::total_cmp);
    let k = a.senders;
    if let (Some(q0), Some(q1)) = (queued0, count_rows(a, "msgs")) {
        // An omegle answer is a 200 whatever happened: count what was stored.
        out.rec("sends_committed", k, (q1 - q0) as f64);
    }
    out.rec("sends_per_s", k, lat.len() as f64 / secs);
    out.rec("sends_ok", k, lat.len() as f64);
    out.rec("sends_failed", k, failed as f64);
    out.rec("send_answer_p50_ms", k, pct_ms(&lat, 0.5));
    out.rec("send_answer_p99_ms", k, pct_ms(&lat, 0.99));
    out.rec("follower_received", k, follow.len() as f64);
    out.rec("follower_p50_ms", k, pct_ms(&follow, 0.5));
    out.rec("follower_p99_ms", k, pct_ms(&follow, 0.99));
}

/// Rows of `table` in `--db` (None without it).
fn count_rows(a: &Args, table: &str) -> Option<i64> {
    let db = a.db.as_ref()?;
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()?;
    c.busy_timeout(Duration::from_secs(5)).ok()?;
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .ok()
}

/// omegle: `n` users started (`startChat.php`) and paired (`randomChat.php`),
/// over `conns` keep-alive connections at once; (user, partner) of each.
async fn omegle_pairs(addr: SocketAddr, n: usize, conns: usize, out: &mut Out) -> Vec<(i64, i64)> {
    /// One POST with an empty body; the answer's body as an integer.
    async fn ask(c: &mut Conn, path: &str) -> Option<i64> {
        let r = tokio::time::timeout(CLIENT_TIMEOUT, c.request("POST", path, "", b""))
            .await
            .ok()?
            .ok()?;
        std::str::from_utf8(&r.body).ok()?.trim().parse().ok()
    }
    /// `paths` asked over `conns` connections; the answers in order.
    async fn ask_all(addr: SocketAddr, paths: Vec<String>, conns: usize) -> Vec<Option<i64>> {
        let paths = Arc::new(paths);
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..conns.clamp(1, paths.len().max(1)) {
            let (paths, next) = (paths.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                let mut c = Conn::open(addr).await.ok();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(path) = paths.get(i) else { break };
                    let mut v = None;
                    if let Some(conn) = &mut c {
                        v = ask(conn, path).await;
                    }
                    if v.is_none() {
                        c = Conn::open(addr).await.ok();
                    }
                    got.push((i, v));
                }
                got
            }));
        }
        let mut all = vec![None; paths.len()];
        for t in tasks {
            for (i, v) in t.await.expect("omegle setup") {
                all[i] = v;
            }
        }
        all
    }
    let users: Vec<i64> = ask_all(addr, vec!["/startChat.php".into(); n], conns)
        .await
        .into_iter()
        .map(|u| u.expect("startChat.php answered an id"))
        .collect();
    let mut partner = std::collections::HashMap::new();
    let mut todo = users.clone();
    // Everyone asks at once (the server pairs them one job at a time); whoever
    // was still waiting when asked asks again, as the page does. Bounded.
    for _ in 0..5 {
        let paths = todo
            .iter()
            .map(|u| format!("/randomChat.php?userId={u}"))
            .collect();
        for (&u, p) in todo.iter().zip(ask_all(addr, paths, conns).await) {
            if let Some(p) = p.filter(|&p| p != 0) {
                partner.insert(u, p);
                partner.insert(p, u);
            }
        }
        todo.retain(|u| !partner.contains_key(u));
        if todo.len() <= 1 {
            break;
        }
    }
    let crossed = partner
        .iter()
        .filter(|(u, p)| partner.get(*p) != Some(*u))
        .count();
    if crossed > 0 || todo.len() > n % 2 {
        out.note(
            n,
            &format!(
                "omegle pairing: {} of {n} unpaired, {crossed} not mutual",
                todo.len()
            ),
        );
    }
    users
        .iter()
        .map(|u| (*u, partner.get(u).copied().unwrap_or(0)))
        .collect()
}

/// omegle fan-out: per round, one `sendMsg.php` from each waiter's partner to
/// it, all fired at once over `--fire-conns` connections; each delivery timed
/// from its own send's start and answer, and from the round's start.
async fn omegle_fanout_rounds(a: &Args, pool: &mut Pool, n: usize, seq: &mut u64, out: &mut Out) {
    let (mut from_start, mut from_ack, mut from_round) = (Vec::new(), Vec::new(), Vec::new());
    let (mut send_ms, mut fire_ms, mut delivered) = (Vec::new(), Vec::new(), Vec::new());
    let mut failed_sends = 0;
    let jobs: Arc<Vec<(i64, i64)>> =
        Arc::new(pool.pairs[..n].iter().map(|&(u, p)| (p, u)).collect());
    for _ in 0..a.rounds {
        settle(a, pool, n, Duration::from_secs(10)).await;
        while pool.rx.try_recv().is_ok() {}
        let k = *seq;
        *seq += 1;
        let mut conns = Vec::new();
        for _ in 0..a.fire_conns.clamp(1, n.max(1)) {
            conns.push(Conn::open(a.addr).await.expect("connect"));
        }
        let n_conns = conns.len();
        let t_round = Instant::now();
        let mut tasks = Vec::new();
        for (j, mut c) in conns.into_iter().enumerate() {
            let (jobs, addr) = (jobs.clone(), a.addr);
            tasks.push(tokio::spawn(async move {
                let mut done = Vec::new();
                for i in (j..jobs.len()).step_by(n_conns) {
                    let (from, to) = jobs[i];
                    let (path, body) =
                        Kind::Omegle.send(&from.to_string(), &to.to_string(), &format!("seq{k}"));
                    let t0 = Instant::now();
                    let r =
                        tokio::time::timeout(CLIENT_TIMEOUT, c.request("POST", &path, "", &body))
                            .await;
                    let t1 = Instant::now();
                    let ok = matches!(&r, Ok(Ok(r)) if r.status == 200);
                    done.push((i, t0, t1, ok));
                    if !matches!(&r, Ok(Ok(r)) if !r.close) {
                        match Conn::open(addr).await {
                            Ok(nc) => c = nc,
                            Err(_) => break,
                        }
                    }
                }
                done
            }));
        }
        let mut got: Vec<Option<Instant>> = vec![None; n];
        let mut count = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while count < n {
            match tokio::time::timeout_at(deadline, pool.rx.recv()).await {
                Ok(Some((idx, s, at))) if s >= k && idx < n && got[idx].is_none() => {
                    got[idx] = Some(at);
                    count += 1;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let mut sends = vec![None; n];
        let mut last_answer = t_round;
        for t in tasks {
            for (i, t0, t1, ok) in t.await.expect("fire") {
                sends[i] = Some((t0, t1, ok));
                last_answer = last_answer.max(t1);
            }
        }
        fire_ms.push(ms(last_answer - t_round));
        for (i, at) in got.iter().enumerate() {
            let Some((t0, t1, ok)) = sends[i] else {
                continue;
            };
            if ok {
                send_ms.push(ms(t1 - t0));
            } else {
                failed_sends += 1;
            }
            if let Some(at) = *at {
                from_start.push(ms(at.saturating_duration_since(t0)));
                from_ack.push(ms(at.saturating_duration_since(t1)));
                from_round.push(ms(at.saturating_duration_since(t_round)));
            }
        }
        delivered.push(count as f64 / n as f64 * 100.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for v in [
        &mut from_start,
        &mut from_ack,
        &mut from_round,
        &mut send_ms,
        &mut fire_ms,
        &mut delivered,
    ] {
        v.sort_by(f64::total_cmp);
    }
    out.rec("fanout_rounds", n, a.rounds as f64);
    out.rec("fanout_failed_sends", n, failed_sends as f64);
    out.rec(
        "fanout_delivered_pct_min",
        n,
        delivered.first().copied().unwrap_or(f64::NAN),
    );
    out.rec("fanout_send_answer_p50_ms", n, pct_ms(&send_ms, 0.5));
    out.rec("fanout_send_answer_p99_ms", n, pct_ms(&send_ms, 0.99));
    out.rec("fanout_fire_all_answered_ms", n, pct_ms(&fire_ms, 0.5));
    for (name, v) in [
        ("ack", &from_ack),
        ("start", &from_start),
        ("round", &from_round),
    ] {
        out.rec(&format!("fanout_{name}_p50_ms"), n, pct_ms(v, 0.5));
        out.rec(&format!("fanout_{name}_p99_ms"), n, pct_ms(v, 0.99));
        out.rec(&format!("fanout_{name}_max_ms"), n, pct_ms(v, 1.0));
    }
}

fn all_seqs(body: &[u8]) -> Vec<u64> {
    let s = String::from_utf8_lossy(body);
    s.split("seq")
        .skip(1)
        .filter_map(|t| {
            let d: String = t.chars().take_while(char::is_ascii_digit).collect();
            d.parse().ok()
        })
        .collect()
}

/// PHP commits, the server answers: latency from PHP's commit to the answer.
async fn foreign_phase(a: &Args, out: &mut Out) {
    let (Some(script), Some(db)) = (&a.php_insert, &a.db) else {
        out.note(0, "foreign: needs --php-insert and --db");
        return;
    };
    let room = format!("{}f", a.room);
    let mut php = tokio::process::Command::new("php")
        .arg(script)
        .env("CHAT_DB", db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("php");
    let mut stdin = php.stdin.take().expect("stdin");
    let mut lines = tokio::io::BufReader::new(php.stdout.take().expect("stdout")).lines();
    let mut insert = async |text: &str| -> (f64, i64) {
        stdin
            .write_all(format!("{room}\tphp\t{text}\n").as_bytes())
            .await
            .expect("php stdin");
        let line = lines
            .next_line()
            .await
            .expect("php stdout")
            .expect("php answered");
        let (t, id) = line.split_once(' ').expect("TIME ID");
        (t.parse().expect("time"), id.parse().expect("id"))
    };
    let (_, mut last) = insert("seq0").await;
    let mut conn = Conn::open(a.addr).await.expect("connect");
    let mut lat = Vec::new();
    let mut lost = 0;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for r in 0..a.foreign_rounds {
        let cursor = Cursor {
            last_id: last,
            ..Cursor::default()
        };
        let (path, headers) = a.kind.poll(&room, None, &cursor);
        let poll = tokio::spawn(async move {
            let r = tokio::time::timeout(CLIENT_TIMEOUT, conn.request("GET", &path, &headers, b""))
                .await;
            (conn, r, SystemTime::now())
        });
        // Let the poll reach the server and park; spread the commits over
        // `--foreign-spread-ms` so they fall at any phase of a periodic check.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let spread = rng % a.foreign_spread_ms.max(1);
        tokio::time::sleep(Duration::from_millis(5 + spread)).await;
        let (committed, id) = insert(&format!("seq{}", r + 1)).await;
        let (c, answer, at) = poll.await.expect("poll");
        conn = c;
        last = id;
        match answer {
            Ok(Ok(resp)) if http::last_id(&resp.body) == Some(id) => {
                let at = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .expect("clock")
                    .as_secs_f64();
                lat.push((at - committed) * 1e3);
            }
            _ => {
                lost += 1;
                conn = Conn::open(a.addr).await.expect("reconnect");
            }
        }
    }
    drop(stdin);
    let _ = php.wait().await;
    lat.sort_by(f64::total_cmp);
    out.rec("foreign_rounds", 1, lat.len() as f64);
    out.rec("foreign_missed", 1, lost as f64);
    out.rec("foreign_p50_ms", 1, pct_ms(&lat, 0.5));
    out.rec("foreign_p99_ms", 1, pct_ms(&lat, 0.99));
    out.rec("foreign_max_ms", 1, pct_ms(&lat, 1.0));
}

fn main() {
    let Some(a) = parse_args() else { return };
    let mut out = Out {
        label: a.label.clone(),
        file: a.out.as_ref().map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("--out")
        }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("== {} ({:?} at {})", a.label, a.kind, a.addr);
        if a.modes.iter().any(|m| m == "mem" || m == "fanout") {
            waiter_phases(&a, &mut out).await;
        }
        if a.modes.iter().any(|m| m == "sends") {
            println!("== {} sends, {} senders", a.label, a.senders);
            sends_phase(&a, &mut out).await;
        }
        if a.modes.iter().any(|m| m == "foreign") {
            println!("== {} foreign writes", a.label);
            foreign_phase(&a, &mut out).await;
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}
