//! Concurrency: listeners following `lastId` while senders (or another process) write
//! must see every message exactly once, in id order, each sender's in sending order.

mod common;

use common::{Server, follow};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const LISTENERS: usize = 4;
const SENDERS: usize = 4;
const PER_SENDER: usize = 150;

#[test]
fn concurrent_senders_and_followers_lose_nothing() {
    let s = Server::builder().hold("20").start();
    assert_eq!(s.send("seed", "seed", "main"), 1);
    let total = SENDERS * PER_SENDER;
    let deadline = Instant::now() + Duration::from_secs(60);
    let stop = Arc::new(AtomicBool::new(false));

    let listeners: Vec<_> = (0..LISTENERS)
        .map(|_| {
            let (addr, stop) = (s.addr, Arc::clone(&stop));
            thread::spawn(move || follow(addr, 1, total, deadline, stop))
        })
        .collect();
    s.wait_waiters(LISTENERS as u64, Duration::from_secs(10));

    let senders: Vec<_> = (0..SENDERS)
        .map(|k| {
            let addr = s.addr;
            thread::spawn(move || {
                let mut ids = Vec::with_capacity(PER_SENDER);
                for i in 0..PER_SENDER {
                    let body = format!("user=sender{k}&message=s{k}-{i}");
                    let r = common::http(
                        addr,
                        "POST",
                        "/sendMessage.php",
                        &[("Content-Type", "application/x-www-form-urlencoded")],
                        body.as_bytes(),
                    );
                    ids.push(common::parse_send_ok(&r));
                }
                ids
            })
        })
        .collect();
    let sent: Vec<Vec<i64>> = senders.into_iter().map(|h| h.join().unwrap()).collect();

    // Each sender's ids increase in its sending order; all ids are distinct, 2..=601.
    let mut all_ids: Vec<i64> = Vec::new();
    for (k, ids) in sent.iter().enumerate() {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "sender {k} got non-increasing ids"
        );
        all_ids.extend(ids);
    }
    all_ids.sort();
    assert_eq!(all_ids, (2..=total as i64 + 1).collect::<Vec<_>>());
    let by_id: HashMap<i64, String> = sent
        .iter()
        .enumerate()
        .flat_map(|(k, ids)| {
            ids.iter()
                .enumerate()
                .map(move |(i, id)| (*id, format!("s{k}-{i}")))
        })
        .collect();

    for (n, l) in listeners.into_iter().enumerate() {
        let got = l.join().unwrap();
        let ids: Vec<i64> = got.iter().map(|m| m.id).collect();
        assert_eq!(
            got.len(),
            total,
            "listener {n} got {} of {total} messages",
            got.len()
        );
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "listener {n}: ids not strictly increasing"
        );
        assert_eq!(ids, all_ids, "listener {n}: not exactly every message once");
        for m in &got {
            assert_eq!(
                m.message, by_id[&m.id],
                "listener {n}: message {} content",
                m.id
            );
        }
        // Each sender's messages appear in its sending order.
        for k in 0..SENDERS {
            let mine: Vec<&str> = got
                .iter()
                .filter(|m| m.user == format!("sender{k}"))
                .map(|m| m.message.as_str())
                .collect();
            let want: Vec<String> = (0..PER_SENDER).map(|i| format!("s{k}-{i}")).collect();
            assert_eq!(mine, want, "listener {n}: sender {k} order");
        }
    }
    stop.store(true, Ordering::Relaxed);
    s.wait_waiters(0, Duration::from_secs(5));
}

#[test]
fn followers_see_every_row_written_by_another_process() {
    // The PHP app inserting rows one by one into the same file.
    let s = Server::builder().hold("6").start();
    assert_eq!(s.send("seed", "seed", "main"), 1);
    const ROWS: usize = 100;
    let deadline = Instant::now() + Duration::from_secs(30);
    let stop = Arc::new(AtomicBool::new(false));
    let listeners: Vec<_> = (0..2)
        .map(|_| {
            let (addr, stop) = (s.addr, Arc::clone(&stop));
            thread::spawn(move || follow(addr, 1, ROWS, deadline, stop))
        })
        .collect();
    s.wait_waiters(2, Duration::from_secs(10));
    let db = s.db();
    for i in 0..ROWS {
        db.execute(
            "INSERT INTO messages (room, user, message, created_at) VALUES ('main', 'php', ?1, strftime('%s','now'))",
            [format!("p{i}")],
        )
        .unwrap();
        if i % 10 == 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    let written = Instant::now();
    for l in listeners {
        let got = l.join().unwrap();
        let ids: Vec<i64> = got.iter().map(|m| m.id).collect();
        assert_eq!(ids, (2..=ROWS as i64 + 1).collect::<Vec<_>>());
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.message, format!("p{i}"));
        }
    }
    assert!(
        written.elapsed() < Duration::from_secs(3),
        "the last foreign rows arrived {:?} late",
        written.elapsed()
    );
}
