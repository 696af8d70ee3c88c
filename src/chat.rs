//! The core actions of a chat — send, listen, presence, typing — independent of
//! any legacy wire format. Endpoints parse and encode; this decides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::changes::Changes;
use crate::error::StoreError;
use crate::store::{Message, Store, Typing};

/// Messages answered to a first poll (`lastId` 0).
pub const HISTORY: u32 = 50;
/// Most messages answered to a following poll.
pub const BATCH: u32 = 100;
/// A user counts as present this long after they were last seen.
pub const PRESENCE_WINDOW_MS: i64 = 30_000;
/// A typing flag lapses this long after it was set.
pub const TYPING_LAPSE_MS: i64 = 5_000;
/// A long-poll marks its user present, and a browser polls again after every
/// answer: in a busy room that would be one write per waiter per message. A mark
/// that this process wrote less than this long ago is not written again, so a
/// user who stops polling leaves the count between 29 and 30 s later, not at 30 s.
pub const PRESENCE_REFRESH_MS: i64 = 1_000;

/// The chat: the store, the wake-up signal and the long-poll policy.
pub struct Chat {
    store: Store,
    changes: Arc<Changes>,
    hold: Duration,
    shutdown: CancellationToken,
    marks: Mutex<RecentMarks>,
}

/// Presence marks written lately by long-polls, by `room\nuser` (a room name
/// has no line break), with the time each was written.
#[derive(Default)]
struct RecentMarks {
    written: HashMap<String, i64>,
    prune_at: usize,
}

impl RecentMarks {
    /// Whether a mark of `key` at `now_ms` must be written; if so, it counts as written.
    fn claim(&mut self, key: &str, now_ms: i64) -> bool {
        if self
            .written
            .get(key)
            .is_some_and(|&t| now_ms - t < PRESENCE_REFRESH_MS && now_ms >= t)
        {
            return false;
        }
        self.written.insert(key.to_owned(), now_ms);
        if self.written.len() >= self.prune_at {
            self.written
                .retain(|_, t| now_ms - *t < PRESENCE_REFRESH_MS);
            self.prune_at = (2 * self.written.len()).max(1024);
        }
        true
    }
}

impl Chat {
    /// A chat over `store`, whose writer signals `changes`; held polls end after
    /// `hold`, or at once when `shutdown` is cancelled.
    pub fn new(
        store: Store,
        changes: Arc<Changes>,
        hold: Duration,
        shutdown: CancellationToken,
    ) -> Chat {
        Chat {
            store,
            changes,
            hold,
            shutdown,
            marks: Mutex::default(),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The wake-up signal.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Stores a message from `user` (marking them present, not typing); its id.
    pub async fn send(&self, room: &str, user: &str, message: &str) -> Result<i64, StoreError> {
        self.store.send(room, user, message).await
    }

    /// The long-poll. `last_id` ≤ 0: the newest messages at once. Otherwise the
    /// messages after `last_id` as soon as there are any, or none once the hold
    /// is over or the server shuts down. `user`, if given, is marked present.
    pub async fn listen(
        &self,
        room: &str,
        last_id: i64,
        user: Option<&str>,
    ) -> Result<Arc<Vec<Message>>, StoreError> {
        if let Some(user) = user {
            self.mark_present(room, user).await?;
        }
        if last_id <= 0 {
            return self.store.newest(room, HISTORY).await.map(Arc::new);
        }
        let deadline = tokio::time::Instant::now() + self.hold;
        // Subscribe before the first query: a commit landing in between still wakes us.
        let mut sub = self.changes.subscribe(room);
        // A quiet answer since the signal last moved: anything above `last_id`
        // will wake us, so the first query can be skipped (see `changes`).
        let mut ask = !sub.known_quiet(last_id);
        loop {
            if ask {
                let found = self.store.after(room, last_id, BATCH).await?;
                if !found.is_empty() {
                    return Ok(found);
                }
                sub.found_nothing_above(last_id);
            }
            ask = true;
            loop {
                tokio::select! {
                    known = sub.changed() => if known > last_id { break },
                    () = tokio::time::sleep_until(deadline) => return Ok(Arc::default()),
                    () = self.shutdown.cancelled() => return Ok(Arc::default()),
                }
            }
        }
    }

    /// Marks `user` present for a long-poll, unless this process did so lately
    /// ([`PRESENCE_REFRESH_MS`]).
    async fn mark_present(&self, room: &str, user: &str) -> Result<(), StoreError> {
        let key = format!("{room}\n{user}");
        let now = crate::store::now_ms();
        if !self.marks.lock().expect("marks lock").claim(&key, now) {
            return Ok(());
        }
        let written = self.store.touch(room, user, None).await;
        if written.is_err() {
            // Not written after all: the next poll tries again.
            self.marks.lock().expect("marks lock").written.remove(&key);
        }
        written
    }

    /// Distinct users present in `room` now.
    pub async fn online(&self, room: &str) -> Result<i64, StoreError> {
        self.store.present(room, PRESENCE_WINDOW_MS).await
    }

    /// Marks `user` present, applies `change` to their typing flag, and lists the
    /// other users typing in `room` now.
    pub async fn typing(
        &self,
        room: &str,
        user: &str,
        change: Option<Typing>,
    ) -> Result<Vec<String>, StoreError> {
        self.store.touch(room, user, change).await?;
        self.store.typing_except(room, user, TYPING_LAPSE_MS).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_mark_is_not_written_again() {
        let mut m = RecentMarks::default();
        assert!(m.claim("r\nana", 10_000));
        assert!(!m.claim("r\nana", 10_999));
        assert!(m.claim("r\nbob", 10_999), "another user");
        assert!(m.claim("s\nana", 10_999), "another room");
        assert!(m.claim("r\nana", 11_000), "a second later");
        // A clock that went back does not suppress marks.
        assert!(m.claim("r\nana", 5_000));
    }

    #[test]
    fn old_marks_are_pruned() {
        let mut m = RecentMarks::default();
        for i in 0..5000 {
            assert!(m.claim(&format!("r\nu{i}"), 0));
        }
        // Growing past the next threshold drops the marks older than the refresh.
        for i in 0..3500 {
            assert!(m.claim(&format!("r\nlate{i}"), 2_000));
        }
        assert!(m.written.len() <= 3500, "{} marks kept", m.written.len());
        assert!(m.claim("r\nu1", 2_001), "a pruned mark is written again");
    }
}
