//! The "something changed" signal that wakes held requests.
//!
//! One `watch` channel per wake key that has waiters — a profile's topic and
//! key, such as `room` + `main` or `inbox` + `42` — carrying the highest
//! change-log sequence known for that key. The database stays the truth: the
//! signal only says "look again". A waiter subscribes (which marks the current
//! value seen) *before* it queries, so a commit that lands between its query and
//! its wait still wakes it.
//!
//! A key also remembers the last "quiet" answer: a waiter that subscribed when
//! the signal stood at `k` and then found, for question `q` (a route and the
//! values its reads depend on), that it must keep waiting, proves that what it
//! waits for is committed later, so the signal will move past `k`. A later
//! waiter asking the same `q` that subscribes while the signal still stands at
//! `k` can wait without asking the database. After a fan-out, ten thousand
//! re-polls with the same `lastId` then cost one query, not ten thousand. Such
//! an answer is trusted for [`QUIET_TTL`] only, so that even a lost signal (a
//! watcher that failed) delays a message by one hold at most, never for good.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long a key's quiet answer spares later waiters their query.
pub const QUIET_TTL: Duration = Duration::from_secs(1);

/// Per-key wake-up signals and the count of waiters holding them.
#[derive(Default)]
pub struct Changes {
    keys: Mutex<HashMap<String, Key>>,
    waiters: AtomicUsize,
}

/// One key's signal and its last quiet answer.
struct Key {
    tx: watch::Sender<i64>,
    /// `(k, q, when)`: a waiter subscribed at signal value `k` asked `q` and
    /// had to wait.
    quiet: Option<(i64, String, Instant)>,
}

/// The wake key of a topic and a key value.
pub fn key(topic: &str, value: &str) -> String {
    let mut k = String::with_capacity(topic.len() + 1 + value.len());
    k.push_str(topic);
    k.push('\0');
    k.push_str(value);
    k
}

/// A waiter's subscription to one key; counted while it lives.
pub struct Subscription<'a> {
    changes: &'a Changes,
    key: String,
    rx: Option<watch::Receiver<i64>>,
    /// The signal's value when this subscription was made.
    at: i64,
    /// The question of the key's quiet answer, if it still holds (the signal
    /// has not moved since it was given).
    quiet: Option<String>,
    /// Counted as a waiter.
    counted: bool,
}

impl Changes {
    /// Subscribes to `key`; the value current now counts as seen. Counts one waiter.
    pub fn subscribe(&self, key: String) -> Subscription<'_> {
        self.subscribe_counting(key, true)
    }

    /// A further key of a request already counted by [`Changes::subscribe`].
    pub fn subscribe_uncounted(&self, key: String) -> Subscription<'_> {
        self.subscribe_counting(key, false)
    }

    fn subscribe_counting(&self, key: String, counted: bool) -> Subscription<'_> {
        let (rx, at, quiet) = {
            let mut keys = self.keys.lock().expect("keys lock");
            match keys.get(&key) {
                Some(k) => {
                    let rx = k.tx.subscribe();
                    let at = *rx.borrow();
                    let quiet = k
                        .quiet
                        .as_ref()
                        .filter(|(v, _, when)| *v == at && when.elapsed() < QUIET_TTL)
                        .map(|(_, q, _)| q.clone());
                    (rx, at, quiet)
                }
                None => {
                    let (tx, rx) = watch::channel(0);
                    keys.insert(key.clone(), Key { tx, quiet: None });
                    (rx, 0, None)
                }
            }
        };
        if counted {
            self.waiters.fetch_add(1, Ordering::Relaxed);
        }
        Subscription {
            changes: self,
            key,
            at,
            rx: Some(rx),
            quiet,
            counted,
        }
    }

    /// Records that `key` changed at sequence `seq` and wakes its waiters.
    pub fn notify(&self, key: &str, seq: i64) {
        let keys = self.keys.lock().expect("keys lock");
        if let Some(Key { tx, .. }) = keys.get(key) {
            let moved = tx.send_if_modified(|known| {
                if seq > *known {
                    *known = seq;
                    true
                } else {
                    false
                }
            });
            if moved {
                crate::metrics::record_wakeup(tx.receiver_count());
            }
        }
    }

    /// Wakes every held request to read again, and forgets every quiet
    /// answer (the database file was replaced).
    pub fn wake_all(&self) {
        let mut keys = self.keys.lock().expect("keys lock");
        for k in keys.values_mut() {
            k.quiet = None;
            k.tx.send_modify(|_| {});
        }
    }

    /// Requests currently held.
    pub fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Relaxed)
    }

    /// Keys that currently have waiters.
    pub fn keys(&self) -> usize {
        self.keys.lock().expect("keys lock").len()
    }
}

impl Subscription<'_> {
    /// Whether the database need not be asked `question`: a quiet answer to it
    /// given since the signal last moved covers it.
    pub fn known_quiet(&self, question: &str) -> bool {
        self.quiet.as_deref() == Some(question)
    }

    /// Records that the database, asked `question` after this subscription was
    /// made, said to keep waiting.
    pub fn found_quiet(&self, question: &str) {
        let mut keys = self.changes.keys.lock().expect("keys lock");
        if let Some(k) = keys.get_mut(&self.key) {
            k.quiet = Some((self.at, question.to_owned(), Instant::now()));
        }
    }

    /// Waits until the key's signal changes after the last call (or since the
    /// subscription was made); gives the sequence then known.
    pub async fn changed(&mut self) -> i64 {
        let rx = self.rx.as_mut().expect("receiver lives until drop");
        // The sender is only removed once no receiver is left, so this cannot fail
        // while we hold one; if it ever did, the caller re-queries and waits again.
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        *rx.borrow_and_update()
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        // Cancel-safe clean-up: hyper drops the handler future when a client goes away.
        drop(self.rx.take());
        if self.counted {
            self.changes.waiters.fetch_sub(1, Ordering::Relaxed);
        }
        let mut keys = self.changes.keys.lock().expect("keys lock");
        if keys
            .get(&self.key)
            .is_some_and(|k| k.tx.receiver_count() == 0)
        {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notify_wakes_a_subscriber_of_that_key_only() {
        let changes = Changes::default();
        let mut a = changes.subscribe(key("room", "a"));
        let mut b = changes.subscribe(key("room", "b"));
        changes.notify(&key("room", "a"), 7);
        assert_eq!(a.changed().await, 7);
        let woke = tokio::time::timeout(Duration::from_millis(20), b.changed()).await;
        assert!(woke.is_err(), "key b must not wake for key a");
    }

    #[tokio::test]
    async fn a_notify_between_subscribe_and_wait_is_not_lost() {
        let changes = Changes::default();
        let mut sub = changes.subscribe(key("room", "r"));
        changes.notify(&key("room", "r"), 3); // as if committed while the waiter was querying
        assert_eq!(sub.changed().await, 3);
    }

    #[test]
    fn a_quiet_answer_covers_the_same_question_until_the_signal_moves() {
        let changes = Changes::default();
        let k = || key("room", "r");
        let first = changes.subscribe(k());
        assert!(!first.known_quiet("q5"), "nothing known yet");
        first.found_quiet("q5");
        let second = changes.subscribe(k());
        assert!(second.known_quiet("q5"));
        assert!(!second.known_quiet("q4"), "another question is not covered");
        assert!(!changes.subscribe(key("room", "s")).known_quiet("q5"));
        changes.notify(&k(), 6);
        assert!(!changes.subscribe(k()).known_quiet("q5"));
    }

    #[test]
    fn a_quiet_answer_of_a_waiter_that_subscribed_before_a_commit_does_not_count() {
        let changes = Changes::default();
        let early = changes.subscribe(key("room", "r")); // at signal 0
        changes.notify(&key("room", "r"), 6); // committed while `early` queried
        early.found_quiet("q"); // its snapshot predates the commit
        let late = changes.subscribe(key("room", "r")); // at signal 6
        assert!(
            !late.known_quiet("q"),
            "the record was made at signal 0, not 6"
        );
    }

    #[test]
    fn a_quiet_answer_expires_and_dies_with_its_key() {
        let changes = Changes::default();
        let first = changes.subscribe(key("room", "r"));
        first.found_quiet("q");
        if let Some(q) = &mut changes
            .keys
            .lock()
            .unwrap()
            .get_mut(&key("room", "r"))
            .unwrap()
            .quiet
        {
            q.2 -= QUIET_TTL;
        }
        assert!(!changes.subscribe(key("room", "r")).known_quiet("q"));
        first.found_quiet("q");
        drop(first);
        assert_eq!(changes.keys(), 0);
        assert!(!changes.subscribe(key("room", "r")).known_quiet("q"));
    }

    #[test]
    fn dropping_the_last_subscription_forgets_the_key() {
        let changes = Changes::default();
        let one = changes.subscribe(key("room", "r"));
        let two = changes.subscribe(key("room", "r"));
        assert_eq!((changes.waiters(), changes.keys()), (2, 1));
        drop(one);
        assert_eq!((changes.waiters(), changes.keys()), (1, 1));
        drop(two);
        assert_eq!((changes.waiters(), changes.keys()), (0, 0));
    }
}
