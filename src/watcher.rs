//! The watcher of foreign commits: wakes the requests held on the keys that a
//! commit by another process (the legacy PHP app) writing the same file
//! changed. (Our own writer signals the keys of its commits itself.)
//!
//! A file-system event on the database's folder (the `-wal` file or the
//! database itself) is only a hint; `PRAGMA data_version` on a dedicated
//! connection says whether anything was committed, and the change log that
//! cometa's triggers fill says which keys. Events from our own reads are not modifications and are ignored;
//! our own commits cost a few cheap looks each (see [`FOLLOW_UPS`] for why one
//! look is not enough). notify is not fully reliable
//! (inotify can overflow, NFS sends nothing), so the probe also runs every
//! `fallback` period, and `--watch poll` uses that period alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::changes::Changes;
use crate::error::StoreError;
use crate::store::{Store, Verify, VersionProbe};

/// How often, at most, a look also checks that the database file at the path
/// is still the one open (a deleted or replaced file is noticed within this,
/// or the fallback period when nothing happens).
const VERIFY_EVERY: Duration = Duration::from_millis(200);

/// When to look again after a burst of file events, each wait after the
/// previous look. A writer's last `write()` to the `-wal` file (the event) comes
/// before its commit is visible: the fsync and the wal-index update in `-shm`
/// (shared memory, no event) follow. Looking only once, at the event, would
/// miss that commit until the fallback check; these looks catch it within
/// half a millisecond at first, then within a doubling wait up to about half a
/// second. Each costs one `PRAGMA data_version`; a new event starts them over.
/// Dense at first, since a typical fsync takes 1–3 ms; sparse after, since
/// under a steady stream of our own commits every event restarts the list.
const FOLLOW_UPS: [Duration; 13] = [
    Duration::from_micros(500),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(2),
    Duration::from_millis(4),
    Duration::from_millis(8),
    Duration::from_millis(16),
    Duration::from_millis(32),
    Duration::from_millis(64),
    Duration::from_millis(128),
    Duration::from_millis(256),
];

/// How foreign writes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchMode {
    /// File-system events, with a periodic check as a fallback.
    Notify,
    /// The periodic check only (for NFS and other file systems without events).
    Poll,
}

enum Hint {
    /// A file event: look now and again a few times (see [`FOLLOW_UPS`]).
    Look,
    /// From now on, check that the file open is the file at the path.
    Guard(Store),
    Stop,
}

/// The running watcher; stops its thread on drop.
pub struct ForeignWrites {
    hints: mpsc::Sender<Hint>,
    thread: Option<std::thread::JoinHandle<()>>,
    _events: Option<notify::RecommendedWatcher>,
}

impl ForeignWrites {
    /// Checks, at every look, that the database at the path is the one the
    /// store has open; reopens it and wakes every waiter when it was replaced.
    pub fn guard(&self, store: Store) {
        let _ = self.hints.send(Hint::Guard(store));
    }

    /// Starts watching the database at `db`; `fallback` is the longest a
    /// foreign commit can go unnoticed.
    pub fn start(
        db: &Path,
        mode: WatchMode,
        fallback: Duration,
        changes: Arc<Changes>,
    ) -> Result<ForeignWrites, StoreError> {
        let mut probe = VersionProbe::open(db)?;
        let db_path = db.to_owned();
        let (hints, rx) = mpsc::channel();
        let events = match mode {
            WatchMode::Poll => None,
            WatchMode::Notify => match file_events(db, hints.clone()) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, ?fallback, "no file-system events; checking periodically only");
                    None
                }
            },
        };
        let thread = std::thread::Builder::new()
            .name("cometa-watcher".into())
            .spawn(move || {
                // The index of the next follow-up look after a burst of events.
                let mut follow_up: Option<usize> = None;
                let mut guard: Option<Store> = None;
                let mut last_tick = std::time::Instant::now();
                let mut last_verify = last_tick;
                let db = db_path;
                loop {
                    let wait = follow_up.map_or(fallback, |i| FOLLOW_UPS[i]);
                    let first = match rx.recv_timeout(wait) {
                        Ok(h) => Some(h),
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                    };
                    let timed_out = first.is_none();
                    // Several hints may be queued: one look serves them all.
                    let (mut stop, mut look) = (false, false);
                    for h in first
                        .into_iter()
                        .chain(std::iter::from_fn(|| rx.try_recv().ok()))
                    {
                        match h {
                            Hint::Stop => stop = true,
                            // A burst of events needs one look now, and the follow-ups.
                            Hint::Look => look = true,
                            Hint::Guard(store) => guard = Some(store),
                        }
                    }
                    if stop {
                        break;
                    }
                    if look {
                        follow_up = Some(0);
                    } else if timed_out {
                        follow_up = follow_up.map(|i| i + 1).filter(|&i| i < FOLLOW_UPS.len());
                    }
                    if last_tick.elapsed() >= fallback
                        && let Some(store) = &guard
                    {
                        // Maintenance and retention run even when every write is PHP's.
                        last_tick = std::time::Instant::now();
                        store.tick();
                    }
                    // The file's identity, at most every VERIFY_EVERY: our own
                    // commits make several looks each, and one `stat` per look
                    // was most of the watcher's work under load.
                    if let Some(store) = &guard
                        && (timed_out || last_verify.elapsed() >= VERIFY_EVERY)
                    {
                        last_verify = std::time::Instant::now();
                        let mut release = || probe.release();
                        let mut release: Option<&mut dyn FnMut()> = Some(&mut release);
                        if store.verify(&mut release) == Verify::Reopened {
                            match probe.reopen(&db) {
                                Ok(p) => probe = p,
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot watch the reopened database");
                                }
                            }
                            changes.wake_all();
                        }
                    }
                    metrics::counter!(crate::metrics::WATCHER_PROBES).increment(1);
                    let floor = guard.as_ref().map_or(0, Store::signalled);
                    match probe.changed_above(floor) {
                        Ok(keys) => {
                            if !keys.is_empty() {
                                metrics::counter!(crate::metrics::WATCHER_CHANGES).increment(1);
                            }
                            match &guard {
                                Some(store) => store.signal(&changes, keys),
                                None => {
                                    for (topic, value, seq) in keys {
                                        changes.notify(&crate::changes::key(&topic, &value), seq);
                                    }
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "checking for foreign writes failed"),
                    }
                }
            })
            .map_err(|e| StoreError::Io(db.to_owned(), e))?;
        Ok(ForeignWrites {
            hints,
            thread: Some(thread),
            _events: events,
        })
    }
}

impl ForeignWrites {
    /// Whether the watcher's thread runs (for `/readyz`).
    pub fn alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for ForeignWrites {
    fn drop(&mut self) {
        let _ = self.hints.send(Hint::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Watches the database's folder; modifications of the database file or its
/// `-wal`/`-journal` siblings become hints.
fn file_events(db: &Path, hints: mpsc::Sender<Hint>) -> notify::Result<notify::RecommendedWatcher> {
    let abs = std::path::absolute(db).unwrap_or_else(|_| db.to_owned());
    let dir = abs
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = abs
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else {
            // Overflow or another error: look, to be safe.
            let _ = hints.send(Hint::Look);
            return;
        };
        // A writer closing the file (a PHP request ending) comes after its commit.
        if !matches!(
            event.kind,
            EventKind::Modify(_)
                | EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Any
                | EventKind::Access(AccessKind::Close(AccessMode::Write))
        ) {
            return;
        }
        let ours = event.paths.iter().any(|p| {
            p.file_name().is_some_and(|f| {
                f.as_encoded_bytes().starts_with(name.as_encoded_bytes())
                    && !f.as_encoded_bytes().ends_with(b"-shm")
            })
        });
        if ours {
            metrics::counter!(crate::metrics::WATCHER_EVENTS).increment(1);
            let _ = hints.send(Hint::Look);
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
