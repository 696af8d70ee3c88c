//! The core actions of a chat — send, listen, presence, typing — independent of
//! any legacy wire format. Endpoints parse and encode; this decides.

use std::sync::Arc;
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

/// The chat: the store, the wake-up signal and the long-poll policy.
pub struct Chat {
    store: Store,
    changes: Arc<Changes>,
    hold: Duration,
    shutdown: CancellationToken,
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
    ) -> Result<Vec<Message>, StoreError> {
        if let Some(user) = user {
            self.store.touch(room, user, None).await?;
        }
        if last_id <= 0 {
            return self.store.newest(room, HISTORY).await;
        }
        let deadline = tokio::time::Instant::now() + self.hold;
        // Subscribe before the first query: a commit landing in between still wakes us.
        let mut sub = self.changes.subscribe(room);
        loop {
            let found = self.store.after(room, last_id, BATCH).await?;
            if !found.is_empty() {
                return Ok(found);
            }
            loop {
                tokio::select! {
                    known = sub.changed() => if known > last_id { break },
                    () = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
                    () = self.shutdown.cancelled() => return Ok(Vec::new()),
                }
            }
        }
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
