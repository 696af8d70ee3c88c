//! The "something changed" signal that wakes waiting long-polls.
//!
//! One `watch` channel per room that has waiters, carrying the highest message
//! id known to be committed in that room. The database stays the truth: the
//! signal only says "look again". A waiter subscribes (which marks the current
//! value seen) *before* it queries, so a commit that lands between its query and
//! its wait still wakes it.
//!
//! A room also remembers the last "quiet" answer: a waiter that subscribed when
//! the signal stood at `k` and then found nothing above `L` in the database
//! proves that every message above `L` is committed later, so its signal will
//! move past `k`. A later waiter with `lastId ≥ L` that subscribes while the
//! signal still stands at `k` can wait without asking the database: whatever
//! arrives above its `lastId` wakes it. After a fan-out, ten thousand re-polls
//! with the same `lastId` then cost one query, not ten thousand. Such an answer
//! is trusted for [`QUIET_TTL`] only, so that even a lost signal (a watcher
//! that failed) delays a message by one hold at most, never for good.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long a room's quiet answer spares later waiters their query.
pub const QUIET_TTL: Duration = Duration::from_secs(1);

/// Per-room wake-up signals and the count of waiters holding them.
#[derive(Default)]
pub struct Changes {
    rooms: Mutex<HashMap<String, Room>>,
    waiters: AtomicUsize,
}

/// One room's signal and its last quiet answer.
struct Room {
    tx: watch::Sender<i64>,
    /// `(k, L, when)`: a waiter subscribed at signal value `k` found no message
    /// above `L`.
    quiet: Option<(i64, i64, Instant)>,
}

/// A waiter's subscription to one room; counted while it lives.
pub struct Subscription<'a> {
    changes: &'a Changes,
    room: String,
    rx: Option<watch::Receiver<i64>>,
    /// The signal's value when this subscription was made.
    at: i64,
    /// The `L` of the room's quiet answer, if it still holds (the signal has
    /// not moved since it was given).
    quiet_above: Option<i64>,
}

impl Changes {
    /// Subscribes to `room`; the value current now counts as seen.
    pub fn subscribe(&self, room: &str) -> Subscription<'_> {
        let (rx, at, quiet_above) = {
            let mut rooms = self.rooms.lock().expect("rooms lock");
            match rooms.get(room) {
                Some(r) => {
                    let rx = r.tx.subscribe();
                    let at = *rx.borrow();
                    let quiet = r
                        .quiet
                        .filter(|(k, _, when)| *k == at && when.elapsed() < QUIET_TTL)
                        .map(|(_, l, _)| l);
                    (rx, at, quiet)
                }
                None => {
                    let (tx, rx) = watch::channel(0);
                    rooms.insert(room.to_owned(), Room { tx, quiet: None });
                    (rx, 0, None)
                }
            }
        };
        self.waiters.fetch_add(1, Ordering::Relaxed);
        Subscription {
            changes: self,
            room: room.to_owned(),
            at,
            rx: Some(rx),
            quiet_above,
        }
    }

    /// Records that `room` now holds messages up to `max_id` and wakes its waiters.
    pub fn notify(&self, room: &str, max_id: i64) {
        let rooms = self.rooms.lock().expect("rooms lock");
        if let Some(Room { tx, .. }) = rooms.get(room) {
            tx.send_if_modified(|known| {
                if max_id > *known {
                    *known = max_id;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Long-polls currently waiting.
    pub fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Relaxed)
    }

    /// Rooms that currently have waiters.
    pub fn rooms(&self) -> usize {
        self.rooms.lock().expect("rooms lock").len()
    }
}

impl Subscription<'_> {
    /// Whether the database need not be asked for messages above `last_id`: a
    /// quiet answer given since the signal last moved covers it.
    pub fn known_quiet(&self, last_id: i64) -> bool {
        self.quiet_above.is_some_and(|l| last_id >= l)
    }

    /// Records that the database, asked after this subscription was made, held
    /// nothing above `last_id`.
    pub fn found_nothing_above(&self, last_id: i64) {
        let mut rooms = self.changes.rooms.lock().expect("rooms lock");
        if let Some(r) = rooms.get_mut(&self.room) {
            r.quiet = Some((self.at, last_id, Instant::now()));
        }
    }

    /// Waits until the room's signal changes after the last call (or since the
    /// subscription was made); gives the highest id then known.
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
        self.changes.waiters.fetch_sub(1, Ordering::Relaxed);
        let mut rooms = self.changes.rooms.lock().expect("rooms lock");
        if rooms
            .get(&self.room)
            .is_some_and(|r| r.tx.receiver_count() == 0)
        {
            rooms.remove(&self.room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notify_wakes_a_subscriber_of_that_room_only() {
        let changes = Changes::default();
        let mut a = changes.subscribe("a");
        let mut b = changes.subscribe("b");
        changes.notify("a", 7);
        assert_eq!(a.changed().await, 7);
        let woke = tokio::time::timeout(std::time::Duration::from_millis(20), b.changed()).await;
        assert!(woke.is_err(), "room b must not wake for room a");
    }

    #[tokio::test]
    async fn a_notify_between_subscribe_and_wait_is_not_lost() {
        let changes = Changes::default();
        let mut sub = changes.subscribe("r");
        changes.notify("r", 3); // as if committed while the waiter was querying
        assert_eq!(sub.changed().await, 3);
    }

    #[test]
    fn a_quiet_answer_covers_later_waiters_until_the_signal_moves() {
        let changes = Changes::default();
        let first = changes.subscribe("r");
        assert!(!first.known_quiet(5), "nothing known yet");
        // Asked after subscribing: nothing above 5.
        first.found_nothing_above(5);
        let second = changes.subscribe("r");
        assert!(second.known_quiet(5));
        assert!(second.known_quiet(9), "a higher lastId is covered too");
        assert!(!second.known_quiet(4), "a lower one is not");
        // Another room knows nothing of it.
        assert!(!changes.subscribe("s").known_quiet(5));
        // Once the signal moves, the answer no longer holds for new waiters.
        changes.notify("r", 6);
        assert!(!changes.subscribe("r").known_quiet(9));
    }

    #[test]
    fn a_quiet_answer_of_a_waiter_that_subscribed_before_a_commit_does_not_count() {
        let changes = Changes::default();
        let early = changes.subscribe("r"); // at signal 0
        changes.notify("r", 6); // committed and signalled while `early` queried
        early.found_nothing_above(5); // its snapshot predates the commit
        let late = changes.subscribe("r"); // at signal 6
        assert!(
            !late.known_quiet(5),
            "the record was made at signal 0, not 6"
        );
    }

    #[test]
    fn a_quiet_answer_expires() {
        let changes = Changes::default();
        let first = changes.subscribe("r");
        first.found_nothing_above(5);
        // As if recorded longer ago than the TTL.
        if let Some(q) = &mut changes.rooms.lock().unwrap().get_mut("r").unwrap().quiet {
            q.2 -= QUIET_TTL;
        }
        assert!(!changes.subscribe("r").known_quiet(5));
    }

    #[test]
    fn a_quiet_answer_dies_with_its_room() {
        let changes = Changes::default();
        let first = changes.subscribe("r");
        first.found_nothing_above(5);
        drop(first);
        assert_eq!(changes.rooms(), 0);
        assert!(!changes.subscribe("r").known_quiet(5));
    }

    #[test]
    fn dropping_the_last_subscription_forgets_the_room() {
        let changes = Changes::default();
        let one = changes.subscribe("r");
        let two = changes.subscribe("r");
        assert_eq!((changes.waiters(), changes.rooms()), (2, 1));
        drop(one);
        assert_eq!((changes.waiters(), changes.rooms()), (1, 1));
        drop(two);
        assert_eq!((changes.waiters(), changes.rooms()), (0, 0));
    }
}
