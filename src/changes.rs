//! The "something changed" signal that wakes waiting long-polls.
//!
//! One `watch` channel per room that has waiters, carrying the highest message
//! id known to be committed in that room. The database stays the truth: the
//! signal only says "look again". A waiter subscribes (which marks the current
//! value seen) *before* it queries, so a commit that lands between its query and
//! its wait still wakes it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

/// Per-room wake-up signals and the count of waiters holding them.
#[derive(Default)]
pub struct Changes {
    rooms: Mutex<HashMap<String, watch::Sender<i64>>>,
    waiters: AtomicUsize,
}

/// A waiter's subscription to one room; counted while it lives.
pub struct Subscription<'a> {
    changes: &'a Changes,
    room: String,
    rx: Option<watch::Receiver<i64>>,
}

impl Changes {
    /// Subscribes to `room`; the value current now counts as seen.
    pub fn subscribe(&self, room: &str) -> Subscription<'_> {
        let rx = {
            let mut rooms = self.rooms.lock().expect("rooms lock");
            match rooms.get(room) {
                Some(tx) => tx.subscribe(),
                None => {
                    let (tx, rx) = watch::channel(0);
                    rooms.insert(room.to_owned(), tx);
                    rx
                }
            }
        };
        self.waiters.fetch_add(1, Ordering::Relaxed);
        Subscription {
            changes: self,
            room: room.to_owned(),
            rx: Some(rx),
        }
    }

    /// Records that `room` now holds messages up to `max_id` and wakes its waiters.
    pub fn notify(&self, room: &str, max_id: i64) {
        let rooms = self.rooms.lock().expect("rooms lock");
        if let Some(tx) = rooms.get(room) {
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
            .is_some_and(|tx| tx.receiver_count() == 0)
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
