//! The one owner of the SQLite file.
//!
//! Writes go through a single writer thread fed by a channel: whatever is queued
//! when it wakes is committed in one `BEGIN IMMEDIATE` transaction (group
//! commit), then every sender is answered and the rooms that received messages
//! are signalled. Reads run on a small pool of read-only connections on
//! tokio's blocking threads, bounded by a semaphore so a wake-up of thousands
//! of waiters cannot spawn thousands of threads. No rusqlite type leaves this
//! module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::changes::Changes;
use crate::error::StoreError;

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Queued writes before senders wait (back-pressure).
const QUEUE: usize = 8192;
/// Read-only connections kept open.
const READERS: usize = 4;
/// Presence and typing rows older than this are deleted now and then.
const STALE_MS: i64 = 3_600_000;

/// SQL statements run by this process so far (every store, reader, writer and
/// probe), for `GET /_cometa/stats`.
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// SQL statements run by this process so far (`BEGIN` and `COMMIT` included).
pub fn statements() -> u64 {
    STATEMENTS.load(Ordering::Relaxed)
}

fn count(n: u64) {
    STATEMENTS.fetch_add(n, Ordering::Relaxed);
}

/// The schema, shared with the legacy PHP app (`migrations/`).
fn migrations() -> rusqlite_migration::Migrations<'static> {
    rusqlite_migration::Migrations::new(vec![rusqlite_migration::M::up(include_str!(
        "../migrations/0001_init.sql"
    ))])
}

/// `PRAGMA synchronous` for the writer: what an acknowledged send survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// fsync on every commit: survives power loss (SQLite's default, as PHP has it).
    Full,
    /// fsync at checkpoints only: survives a crash of cometa, not of the machine.
    Normal,
}

/// One stored chat message, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Row id; clients follow it as `lastId`.
    pub id: i64,
    /// Sender's name, raw as typed (trimmed).
    pub user: String,
    /// Text, raw as typed (trimmed).
    pub message: String,
    /// Unix seconds when stored.
    pub created_at: i64,
}

/// A change of a user's typing flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typing {
    /// Set the flag now.
    Start,
    /// Clear it.
    Stop,
}

/// A write, queued for the writer thread.
enum Op {
    Send {
        room: String,
        user: String,
        message: String,
        now_ms: i64,
    },
    Touch {
        room: String,
        user: String,
        now_ms: i64,
        typing: Option<Typing>,
    },
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<i64, StoreError>>,
}

/// Handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    idle_readers: Mutex<Vec<Connection>>,
    read_slots: Semaphore,
    /// `after` queries queued but not started, by (room, after, limit): a caller
    /// asking the same joins one instead of queueing its own (see [`Store::after`]).
    flights: Mutex<HashMap<FlightKey, (u64, FlightResult)>>,
    next_flight: AtomicU64,
}

type FlightKey = (String, i64, u32);
/// `None` while running; then `Some(None)` if it failed, `Some(Some(rows))`.
type FlightResult = watch::Receiver<Option<Option<Arc<Vec<Message>>>>>;

/// Removes a flight from the table unless it was already taken out (by its
/// query starting), also when its leader is cancelled before that.
struct FlightGuard {
    inner: Arc<Inner>,
    key: FlightKey,
    id: u64,
}

impl FlightGuard {
    fn take_out(inner: &Inner, key: &FlightKey, id: u64) {
        let mut flights = inner.flights.lock().expect("flights lock");
        if flights.get(key).is_some_and(|(i, _)| *i == id) {
            flights.remove(key);
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        FlightGuard::take_out(&self.inner, &self.key, self.id);
    }
}

/// Applies the schema to the database at `path`, creating the file (and its
/// folder) when missing.
pub fn migrate(path: &Path) -> Result<(), StoreError> {
    let mut conn = open_writer(path, Durability::Full)?;
    migrations().to_latest(&mut conn)?;
    Ok(())
}

fn open_writer(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.to_owned(), e))?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "SQLite refused WAL mode; readers will block writers");
    }
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        },
    )?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

impl Store {
    /// Opens (creating and migrating) the database and starts the writer thread.
    pub fn open(
        path: &Path,
        durability: Durability,
        changes: Arc<Changes>,
    ) -> Result<Store, StoreError> {
        let mut conn = open_writer(path, durability)?;
        migrations().to_latest(&mut conn)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("cometa-writer".into())
            .spawn(move || writer_loop(conn, rx, &changes))
            .map_err(|e| StoreError::Io(path.to_owned(), e))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                jobs: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                idle_readers: Mutex::new(Vec::new()),
                read_slots: Semaphore::new(READERS),
                flights: Mutex::new(HashMap::new()),
                next_flight: AtomicU64::new(0),
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stores a message; marks `user` present and clears their typing flag.
    /// Answers once the message is committed, with its id.
    pub async fn send(&self, room: &str, user: &str, message: &str) -> Result<i64, StoreError> {
        self.write(Op::Send {
            room: room.to_owned(),
            user: user.to_owned(),
            message: message.to_owned(),
            now_ms: now_ms(),
        })
        .await
    }

    /// Marks `user` present in `room`, and changes their typing flag if asked.
    pub async fn touch(
        &self,
        room: &str,
        user: &str,
        typing: Option<Typing>,
    ) -> Result<(), StoreError> {
        self.write(Op::Touch {
            room: room.to_owned(),
            user: user.to_owned(),
            now_ms: now_ms(),
            typing,
        })
        .await
        .map(|_| ())
    }

    async fn write(&self, op: Op) -> Result<i64, StoreError> {
        let jobs = self
            .inner
            .jobs
            .lock()
            .expect("jobs lock")
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        jobs.send(Job { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The newest `limit` messages of `room`, oldest first.
    pub async fn newest(&self, room: &str, limit: u32) -> Result<Vec<Message>, StoreError> {
        let room = room.to_owned();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, user, message, created_at FROM messages \
                 WHERE room = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let mut rows: Vec<Message> = st
                .query_map(params![room, limit], message_row)?
                .collect::<Result<_, _>>()?;
            rows.reverse();
            Ok(rows)
        })
        .await
    }

    /// Up to `limit` messages of `room` with an id above `after`, oldest first.
    ///
    /// A wake-up of a room makes all its waiters ask the same question at once
    /// (they follow the same `lastId`). A caller that finds the same query queued
    /// and not yet started joins it instead of running its own: the query starts
    /// after the caller asked, so its answer is as fresh as the caller's own would
    /// be. Ten thousand woken waiters cost a handful of queries, not ten thousand.
    /// The rows are shared (`Arc`) with the other callers of the same query.
    pub async fn after(
        &self,
        room: &str,
        after: i64,
        limit: u32,
    ) -> Result<Arc<Vec<Message>>, StoreError> {
        let key: FlightKey = (room.to_owned(), after, limit);
        let joined = self
            .inner
            .flights
            .lock()
            .expect("flights lock")
            .get(&key)
            .map(|(_, rx)| rx.clone());
        if let Some(mut rx) = joined {
            if let Ok(answer) = rx.wait_for(Option::is_some).await
                && let Some(Some(rows)) = &*answer
            {
                return Ok(Arc::clone(rows));
            }
            // The query failed or its caller went away: ask on our own.
            return self.after_query(key, None).await;
        }
        let id = self.inner.next_flight.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        self.inner
            .flights
            .lock()
            .expect("flights lock")
            .insert(key.clone(), (id, rx));
        let guard = FlightGuard {
            inner: self.inner.clone(),
            key: key.clone(),
            id,
        };
        let rows = self.after_query(key, Some(id)).await;
        drop(guard);
        let _ = tx.send(Some(rows.as_ref().ok().map(Arc::clone)));
        rows
    }

    async fn after_query(
        &self,
        key: FlightKey,
        flight: Option<u64>,
    ) -> Result<Arc<Vec<Message>>, StoreError> {
        let inner = self.inner.clone();
        self.read(move |c| {
            if let Some(id) = flight {
                // Started: later callers must not join (they may have asked
                // after a commit this query can no longer see).
                FlightGuard::take_out(&inner, &key, id);
            }
            let (room, after, limit) = key;
            let mut st = c.prepare_cached(
                "SELECT id, user, message, created_at FROM messages \
                 WHERE room = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = st
                .query_map(params![room, after, limit], message_row)?
                .collect::<Result<_, _>>()?;
            Ok(Arc::new(rows))
        })
        .await
    }

    /// Distinct users seen in `room` within the last `window_ms`.
    pub async fn present(&self, room: &str, window_ms: i64) -> Result<i64, StoreError> {
        let room = room.to_owned();
        let since = now_ms() - window_ms;
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT COUNT(*) FROM presence WHERE room = ?1 AND seen_ms > ?2")?
                    .query_row(params![room, since], |r| r.get(0))?,
            )
        })
        .await
    }

    /// Users other than `user` whose typing flag in `room` was set within the
    /// last `lapse_ms`, in byte order.
    pub async fn typing_except(
        &self,
        room: &str,
        user: &str,
        lapse_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let (room, user) = (room.to_owned(), user.to_owned());
        let since = now_ms() - lapse_ms;
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT user FROM typing WHERE room = ?1 AND user <> ?2 AND set_ms > ?3 \
                 ORDER BY user",
            )?;
            let names = st
                .query_map(params![room, user, since], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(names)
        })
        .await
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _slot = self
            .inner
            .read_slots
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.idle_readers.lock().expect("reader pool").pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&inner.path)?,
            };
            // Every reader runs exactly one statement.
            count(1);
            let out = f(&conn);
            inner.idle_readers.lock().expect("reader pool").push(conn);
            out
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Stops taking writes, lets the writer commit what is queued, and waits for it.
    pub fn close(&self) {
        self.inner.jobs.lock().expect("jobs lock").take();
        if let Some(handle) = self.inner.writer.lock().expect("writer lock").take() {
            let _ = handle.join();
        }
    }
}

/// The rooms with messages above an id, each with its highest. `NOT INDEXED`
/// keeps SQLite on the rowid range (the new rows only): left to itself it scans
/// the whole `(room, id)` index for the `GROUP BY`, milliseconds per look on a
/// table of 100,000 messages, and the watcher looks after every commit.
const CHANGED_ROOMS_SQL: &str =
    "SELECT room, MAX(id) FROM messages NOT INDEXED WHERE id > ?1 GROUP BY room";

/// Notices commits made through other connections — the legacy PHP app's, and
/// our own writer's — by `PRAGMA data_version` on a connection of its own, and
/// tells which rooms received messages since it last looked.
pub struct VersionProbe {
    conn: Connection,
    version: i64,
    seen_id: i64,
}

impl VersionProbe {
    /// Opens the probe; messages up to the current highest id count as seen.
    pub fn open(path: &Path) -> Result<VersionProbe, StoreError> {
        let conn = open_reader(path)?;
        let version = data_version(&conn)?;
        let seen_id =
            conn.query_row("SELECT IFNULL(MAX(id), 0) FROM messages", [], |r| r.get(0))?;
        Ok(VersionProbe {
            conn,
            version,
            seen_id,
        })
    }

    /// Rooms with messages committed since the last call, each with its highest
    /// id; empty (and no query beyond the pragma) when nothing was committed.
    pub fn changed_rooms(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        let version = data_version(&self.conn)?;
        if version == self.version {
            return Ok(Vec::new());
        }
        self.version = version;
        count(1);
        let mut st = self.conn.prepare_cached(CHANGED_ROOMS_SQL)?;
        let rooms: Vec<(String, i64)> = st
            .query_map([self.seen_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if let Some(max) = rooms.iter().map(|(_, id)| *id).max() {
            self.seen_id = max;
        }
        Ok(rooms)
    }
}

fn data_version(c: &Connection) -> Result<i64, StoreError> {
    count(1);
    Ok(c.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        user: r.get(1)?,
        message: r.get(2)?,
        created_at: r.get(3)?,
    })
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Job>, changes: &Changes) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut last_sweep = 0;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results: Vec<Result<i64, StoreError>> = match commit(&mut conn, &batch) {
            Ok(ids) => ids.into_iter().map(Ok).collect(),
            Err(e) => {
                // One bad job must not fail the others: retry each on its own.
                tracing::warn!(error = %e, jobs = batch.len(), "batch failed; retrying one by one");
                batch
                    .iter()
                    .map(|job| commit(&mut conn, std::slice::from_ref(job)).map(|ids| ids[0]))
                    .collect()
            }
        };
        let mut woken: Vec<(&str, i64)> = Vec::new();
        for (job, result) in batch.iter().zip(&results) {
            if let (Op::Send { room, .. }, Ok(id)) = (&job.op, result) {
                match woken.iter_mut().find(|(r, _)| *r == room.as_str()) {
                    Some(entry) => entry.1 = entry.1.max(*id),
                    None => woken.push((room.as_str(), *id)),
                }
            }
        }
        for (room, id) in woken {
            changes.notify(room, id);
        }
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
        let now = now_ms();
        if now - last_sweep > 60_000 {
            last_sweep = now;
            if let Err(e) = sweep(&conn, now) {
                tracing::warn!(error = %e, "sweeping stale presence rows failed");
            }
        }
    }
    tracing::debug!("writer stopped");
}

/// Runs `jobs` in one transaction; on success, each job's id (0 for a touch) in order.
///
/// A send marks its user present and clears their typing flag; within one batch
/// only the last such mark of a (room, user) can be seen, so those two statements
/// run once per (room, user) — before any touch of the batch and at the end, so
/// the order of marks and typing changes is the order of the jobs.
fn commit(conn: &mut Connection, jobs: &[Job]) -> Result<Vec<i64>, StoreError> {
    // BEGIN and COMMIT.
    count(2);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(jobs.len());
    let mut marks: HashMap<(&str, &str), i64> = HashMap::new();
    for job in jobs {
        match &job.op {
            Op::Send {
                room,
                user,
                message,
                now_ms,
            } => {
                tx.prepare_cached(
                    "INSERT INTO messages (room, user, message, created_at) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![room, user, message, now_ms.div_euclid(1000)])?;
                count(1);
                results.push(tx.last_insert_rowid());
                marks.insert((room, user), *now_ms);
            }
            Op::Touch {
                room,
                user,
                now_ms,
                typing,
            } => {
                flush_marks(&tx, &mut marks)?;
                touch(&tx, room, user, *now_ms, *typing)?;
                results.push(0);
            }
        }
    }
    flush_marks(&tx, &mut marks)?;
    tx.commit()?;
    Ok(results)
}

/// The presence mark and typing clear of the sends since the last flush.
fn flush_marks(c: &Connection, marks: &mut HashMap<(&str, &str), i64>) -> Result<(), StoreError> {
    for ((room, user), now_ms) in marks.drain() {
        mark_present(c, room, user, now_ms)?;
        clear_typing(c, room, user)?;
        count(2);
    }
    Ok(())
}

fn mark_present(c: &Connection, room: &str, user: &str, now_ms: i64) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "INSERT INTO presence (room, user, seen_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT (room, user) DO UPDATE SET seen_ms = excluded.seen_ms",
    )?
    .execute(params![room, user, now_ms])
}

fn clear_typing(c: &Connection, room: &str, user: &str) -> rusqlite::Result<usize> {
    c.prepare_cached("DELETE FROM typing WHERE room = ?1 AND user = ?2")?
        .execute(params![room, user])
}

/// A touch: marks the user present and applies the typing change.
fn touch(
    c: &Connection,
    room: &str,
    user: &str,
    now_ms: i64,
    typing: Option<Typing>,
) -> Result<(), StoreError> {
    mark_present(c, room, user, now_ms)?;
    count(1 + u64::from(typing.is_some()));
    match typing {
        Some(Typing::Start) => {
            c.prepare_cached(
                "INSERT INTO typing (room, user, set_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (room, user) DO UPDATE SET set_ms = excluded.set_ms",
            )?
            .execute(params![room, user, now_ms])?;
        }
        Some(Typing::Stop) => {
            clear_typing(c, room, user)?;
        }
        None => {}
    }
    Ok(())
}

/// Deletes presence and typing rows long past any window that reads them.
fn sweep(c: &Connection, now_ms: i64) -> Result<(), StoreError> {
    let cutoff = now_ms - STALE_MS;
    count(2);
    c.execute("DELETE FROM presence WHERE seen_ms < ?1", [cutoff])?;
    c.execute("DELETE FROM typing WHERE set_ms < ?1", [cutoff])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(
            &dir.path().join("t.sqlite"),
            Durability::Normal,
            Arc::new(Changes::default()),
        )
        .expect("open");
        (dir, store)
    }

    fn typing_of(store: &Store, user: &str) -> Vec<String> {
        let c = open_reader(store.path()).expect("reader");
        let mut st = c
            .prepare("SELECT user FROM typing WHERE user = ?1")
            .expect("prepare");
        st.query_map([user], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_and_touches_of_one_batch_keep_their_order() {
        let (_dir, store) = store();
        // Queued together, so one batch: typing set, then a send clears it.
        let (a, b) = tokio::join!(
            store.touch("r", "ana", Some(Typing::Start)),
            store.send("r", "ana", "hi"),
        );
        a.expect("touch");
        b.expect("send");
        assert!(typing_of(&store, "ana").is_empty());
        // A send, then typing set again: the flag stays.
        let (b, a) = tokio::join!(
            store.send("r", "bob", "yo"),
            store.touch("r", "bob", Some(Typing::Start)),
        );
        b.expect("send");
        a.expect("touch");
        assert_eq!(typing_of(&store, "bob"), ["bob"]);
        assert_eq!(store.present("r", 60_000).await.expect("present"), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_waiters_asking_at_once_get_the_same_rows() {
        let (_dir, store) = store();
        let first = store.send("r", "ana", "one").await.expect("send");
        store.send("r", "ana", "two").await.expect("send");
        let asks = (0..200).map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.after("r", first, 100).await })
        });
        for ask in asks {
            let rows = ask.await.expect("task").expect("after");
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].message, "two");
        }
        assert!(store.inner.flights.lock().expect("flights").is_empty());
    }

    #[test]
    fn the_watchers_query_reads_only_the_new_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.sqlite");
        migrate(&path).unwrap();
        let c = Connection::open(&path).unwrap();
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {CHANGED_ROOMS_SQL}"))
            .unwrap()
            .query_map([0], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains("INTEGER PRIMARY KEY (rowid>?)")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.starts_with("SCAN")), "{plan:?}");
    }
}
