//! The one owner of the SQLite file.
//!
//! Writes go through a single writer thread fed by a channel: whatever is queued
//! when it wakes is committed in one `BEGIN IMMEDIATE` transaction (group
//! commit); one failing job fails alone (the batch is then rolled back and run
//! again, each job in a savepoint: see [`commit`]); after the commit every job is answered and the watcher is told to look (the
//! change log says which keys changed). Reads run on a small pool of read-only
//! connections on tokio's blocking threads, bounded by a semaphore so a wake-up
//! of thousands of waiters cannot spawn thousands of threads. What runs is a
//! [`Script`]: statements with named parameters, bound, never pasted. No
//! rusqlite type leaves this module.

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::changes::Changes;
use crate::error::StoreError;
use crate::profile::{Topic, Value};

/// How long a statement waits for another process's lock before failing,
/// in milliseconds (`--busy-timeout`).
static BUSY_TIMEOUT_MS: AtomicU64 = AtomicU64::new(10_000);

/// Sets how long a statement waits for another process's lock.
pub fn set_busy_timeout(t: Duration) {
    BUSY_TIMEOUT_MS.store(
        u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}
/// How long the busy handler sleeps between tries.
const BUSY_STEP: Duration = Duration::from_millis(2);

/// Set on shutdown: a statement waiting for another process's lock gives up
/// at once, so queued writes are refused (503) instead of holding the exit.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes every wait for another process's lock give up now (shutdown).
pub fn interrupt_waits() {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// SQLite's busy handler: wait in small steps up to the busy timeout, unless
/// the server is shutting down.
fn busy(tries: i32) -> bool {
    if INTERRUPTED.load(Ordering::Relaxed) {
        return false;
    }
    std::thread::sleep(BUSY_STEP);
    u128::from(tries.unsigned_abs()) * BUSY_STEP.as_millis()
        < u128::from(BUSY_TIMEOUT_MS.load(Ordering::Relaxed))
}

/// Text that is not UTF-8 was read (logged once per process).
static LOSSY_LOGGED: AtomicBool = AtomicBool::new(false);
/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Queued writes before senders wait (back-pressure).
const QUEUE: usize = 8192;
/// Read-only connections kept open.
const READERS: usize = 4;
/// Change-log rows kept behind the newest (the watcher reads only new ones).
const CHANGES_KEPT: i64 = 10_000;
/// How often the writer prunes the change log.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

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

/// `PRAGMA synchronous` for the writer: what an acknowledged send survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// fsync on every commit: survives power loss (SQLite's default, as PHP has it).
    Full,
    /// fsync at checkpoints only: survives a crash of cometa, not of the machine.
    Normal,
}

/// The rows one statement returned.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rows {
    /// Column names, in order.
    pub columns: Arc<[String]>,
    /// Values, row by row.
    pub rows: Vec<Vec<Value>>,
}

/// Statements run in order by the store; the script decides which run, what
/// each binds, and keeps what they return.
pub trait Script {
    /// How many statements.
    fn count(&self) -> usize;
    /// The SQL of statement `i`.
    fn sql(&self, i: usize) -> &str;
    /// Whether statement `i` runs now (after the earlier ones).
    fn runs(&mut self, i: usize) -> Result<bool, StoreError>;
    /// The value bound to `:name` in statement `i` (borrowed: no copy).
    fn bind(&self, i: usize, name: &str) -> Bound<'_>;
    /// What statement `i` returned, and the row id it inserted (an `INSERT`
    /// or `REPLACE` that added a row).
    fn record(&mut self, i: usize, rows: Rows, inserted: Option<i64>);
}

/// A value to bind, borrowed from the script.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound<'a> {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(&'a str),
}

impl<'a> From<&'a Value> for Bound<'a> {
    fn from(v: &'a Value) -> Bound<'a> {
        match v {
            Value::Null => Bound::Null,
            Value::Int(i) => Bound::Int(*i),
            Value::Real(r) => Bound::Real(*r),
            Value::Text(s) => Bound::Text(s),
        }
    }
}

/// Whether `sql` inserts rows (so that the last inserted row id means something).
fn inserts(sql: &str) -> bool {
    let head = sql.trim_start().as_bytes();
    let starts = |w: &[u8]| head.len() >= w.len() && head[..w.len()].eq_ignore_ascii_case(w);
    starts(b"INSERT") || starts(b"REPLACE")
}

/// The most statements a connection keeps prepared; past it they are all
/// dropped and prepared again as used (a profile reloaded many times leaves
/// its old SQL behind).
const MAX_PREPARED: usize = 256;

/// A statement kept prepared, with its parameters' names (without the `:`),
/// read once.
struct Prepared<'c> {
    st: rusqlite::Statement<'c>,
    names: Box<[Option<Box<str>>]>,
}

/// A connection's prepared statements, found by their SQL. rusqlite's own
/// cache copies the SQL into a new key and relinks its LRU list at every use:
/// a tenth of the writer's work per send. Here a use is one hash of the SQL.
type Statements<'c> =
    std::cell::RefCell<HashMap<Box<str>, Prepared<'c>, foldhash::fast::RandomState>>;

self_cell::self_cell!(
    /// A connection and the statements prepared on it, kept for its life.
    struct Db {
        owner: Connection,
        #[not_covariant]
        dependent: Statements,
    }
);

// SAFETY: a `Db` is the connection together with every statement prepared on
// it, and goes from thread to thread only whole (a reader's connection moves
// between the blocking pool's threads, one at a time: the pool's lock hands it
// over). rusqlite's `Connection` is `Send`; its `Statement` is not only because
// it borrows the connection, which moves with it here. Nothing in a `Db` is
// ever used by two threads at once (it is not `Sync`), which is all SQLite
// asks of a connection opened without its own mutex.
#[allow(unsafe_code)]
unsafe impl Send for Db {}

impl Db {
    fn open(conn: Connection) -> Db {
        Db::new(conn, |_| Statements::default())
    }

    /// The connection.
    fn conn(&self) -> &Connection {
        self.borrow_owner()
    }

    /// `f` with a runner on this connection and its statements.
    fn run<R>(&self, f: impl FnOnce(&mut Runner<'_, '_>) -> R) -> R {
        self.with_dependent(|conn, stmts| f(&mut Runner { conn, stmts }))
    }
}

/// Runs scripts on one connection (a reader's, or the writer's transaction).
pub struct Runner<'r, 'c> {
    conn: &'c Connection,
    /// The connection's statements, prepared for its life.
    stmts: &'r Statements<'c>,
}

impl<'c> Runner<'_, 'c> {
    /// Starts a read transaction: the statements that follow see one snapshot
    /// (ended when the connection goes back to the pool).
    pub fn begin(&mut self) -> Result<(), StoreError> {
        self.exec("BEGIN")
    }

    /// Runs one statement without parameters or rows.
    fn exec(&self, sql: &str) -> Result<(), StoreError> {
        count(1);
        self.with(sql, |st, _| Ok(st.raw_execute().map(|_| ())?))
    }

    /// `f` on `sql`'s statement, prepared once for the connection's life,
    /// and its parameters' names.
    fn with<R>(
        &self,
        sql: &str,
        f: impl FnOnce(&mut rusqlite::Statement<'c>, &[Option<Box<str>>]) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut stmts = self.stmts.borrow_mut();
        if let Some(p) = stmts.get_mut(sql) {
            return f(&mut p.st, &p.names);
        }
        let st = self.conn.prepare(sql)?;
        let names = (1..=st.parameter_count())
            .map(|i| st.parameter_name(i).map(|n| Box::from(&n[1..])))
            .collect();
        if stmts.len() >= MAX_PREPARED {
            stmts.clear();
        }
        let p = stmts
            .entry(Box::from(sql))
            .or_insert(Prepared { st, names });
        f(&mut p.st, &p.names)
    }

    /// Runs `script`'s statements in order.
    pub fn run(&mut self, script: &mut dyn Script) -> Result<(), StoreError> {
        for i in 0..script.count() {
            if !script.runs(i)? {
                continue;
            }
            count(1);
            let sql = script.sql(i);
            let out = self.with(sql, |st, names| {
                for (p, name) in (1..).zip(names) {
                    // `?` (no name): a profile cannot give it a value.
                    match name.as_deref().map_or(Bound::Null, |n| script.bind(i, n)) {
                        Bound::Null => st.raw_bind_parameter(p, rusqlite::types::Null)?,
                        Bound::Int(x) => st.raw_bind_parameter(p, x)?,
                        Bound::Real(x) => st.raw_bind_parameter(p, x)?,
                        Bound::Text(s) => st.raw_bind_parameter(p, s)?,
                    }
                }
                let mut out = Rows::default();
                if st.column_count() > 0 {
                    out.columns = st.column_names().iter().map(|c| (*c).to_owned()).collect();
                }
                let n = out.columns.len();
                let mut rows = st.raw_query();
                while let Some(row) = rows.next()? {
                    let mut vals = Vec::with_capacity(n);
                    for c in 0..n {
                        vals.push(value(row.get_ref(c)?, sql, c));
                    }
                    out.rows.push(vals);
                }
                Ok(out)
            })?;
            let inserted = (inserts(script.sql(i)) && self.conn.changes() > 0)
                .then(|| self.conn.last_insert_rowid());
            script.record(i, out, inserted);
        }
        Ok(())
    }
}

/// A column's value; text that is not UTF-8 (another writer's) reads lossily.
fn value(v: ValueRef<'_>, sql: &str, col: usize) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) | ValueRef::Blob(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => {
                if !LOSSY_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        column = col,
                        sql,
                        "a row holds text that is not UTF-8 (another process wrote it); it reads with U+FFFD, as PHP's htmlspecialchars(ENT_SUBSTITUTE) shows it (logged once)"
                    );
                }
                Value::Text(String::from_utf8_lossy(t).into_owned())
            }
        },
    }
}

/// A job's answer, of the type its caller knows.
pub type Boxed = Box<dyn Any + Send>;
/// A job may run twice: when another job of its batch fails, the batch is
/// rolled back and run again, each job in a savepoint (see [`commit`]).
type JobFn = Box<dyn FnMut(&mut Runner<'_, '_>) -> Result<Boxed, StoreError> + Send>;

/// What the writer does for a job.
enum Work {
    /// Run in the batch's transaction.
    Run(JobFn),
    /// The file at the path changed: open it (and migrate it) instead.
    Reopen,
    /// Nothing to write: time for maintenance even if nobody writes through us.
    Tick,
}

/// A write, queued for the writer thread.
struct Job {
    work: Work,
    /// `None`: detached, nobody waits for the answer.
    reply: Option<oneshot::Sender<Result<Boxed, StoreError>>>,
}

/// Handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Device and inode of the file open now; `None` if it had none.
    identity: Mutex<Option<(u64, u64)>>,
    /// The file at the path is not the one open: writes are refused.
    replaced: AtomicBool,
    /// The `-wal` and `-shm` files of the file open now, with their identity.
    sidecars: Mutex<Vec<Sidecar>>,
    /// Added to the change log's sequences: after a reopen, the new file's
    /// sequences (which may be lower) still rise above every one signalled.
    seq_offset: AtomicI64,
    /// The highest (offset) sequence signalled so far.
    max_signalled: AtomicI64,
    /// Bumped on every reopen; a reader of an older one is not pooled again.
    generation: AtomicU64,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    idle_readers: Mutex<Vec<(u64, Db)>>,
    read_slots: Semaphore,
    /// Shared reads queued but not started, by key: a caller asking the same
    /// joins one instead of queueing its own (see [`Store::read_shared`]).
    flights: Mutex<HashMap<String, (u64, FlightResult)>>,
    next_flight: AtomicU64,
}

type Shared = Arc<dyn Any + Send + Sync>;
/// `None` while running; then `Some(None)` if it failed, `Some(Some(answer))`.
type FlightResult = watch::Receiver<Option<Option<Shared>>>;

/// Removes a flight from the table unless it was already taken out (by its
/// query starting), also when its leader is cancelled before that.
struct FlightGuard {
    inner: Arc<Inner>,
    key: String,
    id: u64,
}

impl FlightGuard {
    fn take_out(inner: &Inner, key: &str, id: u64) {
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

/// What a database needs for one profile: the app's schema, what cometa adds
/// beside it, and the topics whose changes its triggers log.
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    /// The app's tables (`CREATE … IF NOT EXISTS`).
    pub app: &'a str,
    /// Indexes and the like.
    pub extra: &'a [String],
    /// Topics to log.
    pub topics: &'a [Topic],
}

/// Creates what is missing (the app's tables, cometa's change log, indexes,
/// triggers) in the database at `path`, creating the file and its folder.
/// Never alters a table that exists.
pub fn migrate(path: &Path, schema: Schema<'_>) -> Result<(), StoreError> {
    writable(path)?;
    let mut conn = open_writer(path, Durability::Full)?;
    apply(&mut conn, schema)
}

fn apply(conn: &mut Connection, schema: Schema<'_>) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(schema.app)?;
    // Our triggers are ours to replace: drop every one, create the profile's.
    let old: Vec<String> = tx
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'cometa\\_wake\\_%' ESCAPE '\\'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for name in old {
        tx.execute_batch(&format!("DROP TRIGGER \"{name}\""))?;
    }
    // A change log made by an earlier build, with AUTOINCREMENT: rebuilt
    // without it (see migrations/0001_changes.sql), its rows kept, and its
    // highest sequence ever given kept as a row of no topic, so that no
    // sequence is given twice.
    let autoincrement: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cometa_changes' AND sql LIKE '%AUTOINCREMENT%')",
        [],
        |r| r.get(0),
    )?;
    if autoincrement {
        tx.execute_batch(
            "CREATE TABLE cometa_changes_rebuilt (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key TEXT NOT NULL);
             INSERT INTO cometa_changes_rebuilt (seq, topic, key) SELECT seq, topic, key FROM cometa_changes;
             INSERT INTO cometa_changes_rebuilt (seq, topic, key)
                 SELECT seq, '', '' FROM sqlite_sequence
                 WHERE name = 'cometa_changes' AND seq > (SELECT IFNULL(MAX(seq), 0) FROM cometa_changes);
             DROP TABLE cometa_changes;
             ALTER TABLE cometa_changes_rebuilt RENAME TO cometa_changes;",
        )?;
    }
    tx.execute_batch(include_str!("../migrations/0001_changes.sql"))?;
    for sql in schema.extra {
        tx.execute_batch(sql)?;
    }
    for t in schema.topics {
        for on in &t.on {
            let topic = t.name.replace('\'', "''");
            tx.execute_batch(&format!(
                "CREATE TRIGGER \"cometa_wake_{name}_{on}\" AFTER {ON} ON \"{table}\" BEGIN \
                 INSERT INTO cometa_changes (topic, key) VALUES ('{topic}', CAST(({key}) AS TEXT)); END",
                name = t.name,
                ON = on.to_ascii_uppercase(),
                table = t.table,
                key = t.key,
            ))?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Prepares statements against a database, to check a profile.
pub struct Checker {
    conn: Connection,
}

impl Checker {
    /// An in-memory database with `schema` applied.
    pub fn memory(schema: Schema<'_>) -> Result<Checker, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        apply(&mut conn, schema)?;
        Ok(Checker { conn })
    }

    /// The database at `path`, read-only, as it is.
    pub fn open(path: &Path) -> Result<Checker, StoreError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        Ok(Checker { conn })
    }

    /// Whether `sql` is one statement that prepares here; then whether it is read-only.
    pub fn prepare(&self, sql: &str) -> Result<bool, String> {
        let st = self.conn.prepare(sql).map_err(|e| e.to_string())?;
        Ok(st.readonly())
    }
}

/// Refuses a database cometa could open but not write (a read-only or
/// immutable file, another owner, a read-only folder), naming what is needed.
fn writable(path: &Path) -> Result<(), StoreError> {
    let need = |what: String, e: std::io::Error| StoreError::Permission(path.to_owned(), what, e);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.exists() {
        if !dir.is_dir() {
            return Err(need(
                format!("its folder {} is not a directory", dir.display()),
                std::io::Error::from(std::io::ErrorKind::NotADirectory),
            ));
        }
        rustix::fs::access(
            dir,
            rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
        )
        .map_err(|e| {
            need(
                format!(
                    "write permission on its folder {} (for the -wal and -shm files)",
                    dir.display()
                ),
                e.into(),
            )
        })?;
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| need("read and write permission on the file".into(), e))?;
        for side in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(side);
            let p = PathBuf::from(p);
            if p.exists() {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&p)
                    .map_err(|e| {
                        need(format!("read and write permission on {}", p.display()), e)
                    })?;
            }
        }
    }
    Ok(())
}

/// Creates a missing database file as a group-writable one (mode 0666 less
/// the umask: 0660 under the unit's `UMask=0007`). SQLite would create it
/// 0644 less the umask, read-only for the PHP app's group; its `-wal` and
/// `-shm` files take the database file's mode, so this one decides for all.
fn create_shared(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Io(path.to_owned(), e)),
    }
}

fn open_writer(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.to_owned(), e))?;
    }
    create_shared(path)?;
    let conn = Connection::open(path)?;
    conn.busy_handler(Some(busy))?;
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

/// Opens the existing database at `path` and takes its write lock for a
/// moment (`BEGIN IMMEDIATE; ROLLBACK`), waiting at most `wait` for another
/// process's lock: `Ok` when a write could be committed now.
pub fn check_writable(path: &Path, wait: Duration) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(wait)?;
    count(2);
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_handler(Some(busy))?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

/// Whether the file at `path` starts with SQLite's header.
fn is_database(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"SQLite format 3\0")
}

/// A file beside the database, with its device and inode when it exists.
type Sidecar = (PathBuf, Option<(u64, u64)>);

/// The `-wal` and `-shm` beside `path`, with their identity now.
fn sidecars(path: &Path) -> Vec<Sidecar> {
    ["-wal", "-shm"]
        .iter()
        .map(|side| {
            let mut p = path.as_os_str().to_owned();
            p.push(side);
            let p = PathBuf::from(p);
            let id = file_id(&p);
            (p, id)
        })
        .collect()
}

/// The device and inode of the file at `path`.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// One retention rule: a `DELETE` of at most `:batch` rows, run by the writer
/// between batches of sends, again at once while it finds a full batch.
#[derive(Debug, Clone)]
pub struct Retention {
    /// The statement.
    pub sql: String,
    /// Rows older than this go (`:cutoff`, `:cutoff_ms`).
    pub max_age: Option<Duration>,
    /// Rows beyond the newest this many of a room go (`:keep`).
    pub keep: Option<u64>,
}

/// Rows one retention statement deletes at most, so sends never wait long.
pub const RETENTION_BATCH: i64 = 500;
/// How often retention looks when the last look found little.
const RETENTION_EVERY: Duration = Duration::from_secs(5);

/// What [`Store::verify`] found at the database's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The file open is the file at the path.
    Same,
    /// No valid database at the path: writes are refused until there is one.
    Gone,
    /// Another valid database is at the path; the store opened it.
    Reopened,
}

/// What the writer needs besides its jobs.
pub struct WriterSetup {
    /// The app's schema, applied again when the file is replaced.
    pub app_schema: String,
    /// What cometa adds beside it.
    pub extra_sql: Vec<String>,
    /// The topics whose triggers log changes.
    pub topics: Vec<Topic>,
    /// Statements run now and then, each with its period (`:now`, `:now_ms` bound).
    pub maintenance: Vec<(String, Duration)>,
    /// Retention statements (off unless the operator asks).
    pub retention: Vec<Retention>,
    /// Signalled with the keys each commit changed (the change log's new rows).
    pub changes: Arc<Changes>,
}

impl Store {
    /// Opens the database (already [`migrate`]d) and starts the writer thread.
    pub fn open(
        path: &Path,
        durability: Durability,
        setup: WriterSetup,
    ) -> Result<Store, StoreError> {
        let conn = open_writer(path, durability)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let tx_for_tick = tx.downgrade();
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            identity: Mutex::new(file_id(path)),
            sidecars: Mutex::new(sidecars(path)),
            replaced: AtomicBool::new(false),
            seq_offset: AtomicI64::new(0),
            max_signalled: AtomicI64::new(0),
            generation: AtomicU64::new(0),
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(None),
            idle_readers: Mutex::new(Vec::new()),
            read_slots: Semaphore::new(READERS),
            flights: Mutex::new(HashMap::new()),
            next_flight: AtomicU64::new(0),
        });
        let state = inner.clone();
        let tick = tx_for_tick;
        let writer = std::thread::Builder::new()
            .name("cometa-writer".into())
            .spawn(move || writer_loop(conn, rx, &tick, setup, durability, &state))
            .map_err(|e| StoreError::Io(path.to_owned(), e))?;
        *inner.writer.lock().expect("writer lock") = Some(writer);
        Ok(Store { inner })
    }

    /// Wakes the waiters of keys the watcher found in the change log.
    pub fn signal(&self, changes: &Changes, keys: Vec<(String, String, i64)>) {
        signal(&self.inner, changes, keys);
    }

    /// The change log's highest sequence (of the file open now) whose key is
    /// signalled already: the writer signals every row up to its commit's.
    pub fn signalled(&self) -> i64 {
        self.inner.max_signalled.load(Ordering::Relaxed)
            - self.inner.seq_offset.load(Ordering::Relaxed)
    }

    /// Lets the writer run its maintenance (and prune the change log) even
    /// when every write comes from another process; cheap, call it often.
    pub fn tick(&self) {
        if let Ok(jobs) = self.sender() {
            let _ = jobs.try_send(Job {
                work: Work::Tick,
                reply: None,
            });
        }
    }

    /// Compares the file at the path with the one open. When another valid
    /// database is there now (a backup restored with `mv`), has the writer
    /// open it (migrating it) and answers [`Verify::Reopened`]: the caller
    /// wakes every waiter to read again. Until then writes answer
    /// [`StoreError::Replaced`]. `release` closes the caller's own connection
    /// to the old file before the new one is opened. Blocking: call it from
    /// a thread of its own.
    pub fn verify(&self, release: &mut Option<&mut dyn FnMut()>) -> Verify {
        let inner = &self.inner;
        let now = file_id(&inner.path);
        if now == *inner.identity.lock().expect("identity lock")
            && !inner.replaced.load(Ordering::Relaxed)
        {
            return Verify::Same;
        }
        if !inner.replaced.swap(true, Ordering::Relaxed) {
            tracing::error!(
                db = %inner.path.display(),
                "the database file was deleted or replaced while cometa ran; writes answer 503 until a valid database is at the path (deploy/README.md: restoring a backup)"
            );
        }
        if now.is_none() {
            return Verify::Gone;
        }
        // Only the header is read: opening the new file while the old one's
        // -wal and -shm are still beside it (our connections keep them) would
        // read the old database's pages. The writer closes every old
        // connection before it opens the new file.
        if !is_database(&inner.path) {
            tracing::debug!("the file at the database path is not a SQLite database yet");
            return Verify::Gone;
        }
        if let Some(release) = release.take() {
            release();
        }
        let Ok(jobs) = self.sender() else {
            return Verify::Gone;
        };
        let (reply, answer) = oneshot::channel();
        if jobs
            .blocking_send(Job {
                work: Work::Reopen,
                reply: Some(reply),
            })
            .is_err()
        {
            return Verify::Gone;
        }
        match answer.blocking_recv() {
            Ok(Ok(_)) => {
                tracing::warn!(db = %inner.path.display(), "reopened the database now at the path; held requests read again");
                Verify::Reopened
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot open the database now at the path");
                Verify::Gone
            }
            Err(_) => Verify::Gone,
        }
    }

    /// Whether the file at the path is not the one open (writes refused).
    pub fn replaced(&self) -> bool {
        self.inner.replaced.load(Ordering::Relaxed)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>, StoreError> {
        self.inner
            .jobs
            .lock()
            .expect("jobs lock")
            .clone()
            .ok_or(StoreError::Closed)
    }

    /// Runs `f` in the writer's transaction (batched with other writes; if
    /// one of them fails, alone); answers once committed. `f` may run twice
    /// (its batch rolled back and run again): it starts from scratch each time.
    pub async fn write<T, F>(&self, mut f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Runner<'_, '_>) -> Result<T, StoreError> + Send + 'static,
    {
        let jobs = self.sender()?;
        let (reply, answer) = oneshot::channel();
        let run: JobFn = Box::new(move |r| f(r).map(|t| Box::new(t) as Boxed));
        jobs.send(Job {
            work: Work::Run(run),
            reply: Some(reply),
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        let out = answer.await.map_err(|_| StoreError::Closed)??;
        Ok(*out.downcast::<T>().expect("the job's own type"))
    }

    /// Queues `f` for the writer without making anyone wait for it: the
    /// answer says when it is committed, for a caller that wants to wait a
    /// little; dropped (and logged) when the queue is full. For writes that
    /// must never hold an answer back (a poll's presence mark).
    pub fn write_detached<F>(
        &self,
        mut f: F,
    ) -> Option<oneshot::Receiver<Result<Boxed, StoreError>>>
    where
        F: FnMut(&mut Runner<'_, '_>) -> Result<(), StoreError> + Send + 'static,
    {
        let jobs = self.sender().ok()?;
        let run: JobFn = Box::new(move |r| f(r).map(|()| Box::new(()) as Boxed));
        let (reply, committed) = oneshot::channel();
        if jobs
            .try_send(Job {
                work: Work::Run(run),
                reply: Some(reply),
            })
            .is_err()
        {
            tracing::debug!("write queue full; a detached write was dropped");
            return None;
        }
        Some(committed)
    }

    /// Runs `f` on a read-only connection.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Runner<'_, '_>) -> Result<T, StoreError> + Send + 'static,
    {
        let _slot = self
            .inner
            .read_slots
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let generation = inner.generation.load(Ordering::Relaxed);
            let pooled = inner.idle_readers.lock().expect("reader pool").pop();
            let (born, conn) = match pooled {
                Some(c) if c.0 == generation => c,
                _ => (generation, Db::open(open_reader(&inner.path)?)),
            };
            let out = conn.run(|r| {
                let out = f(r);
                if !r.conn.is_autocommit() {
                    // Ends the read transaction `begin` opened (not counted:
                    // it reads nothing).
                    let _ = r.with("ROLLBACK", |st, _| Ok(st.raw_execute()?));
                }
                out
            });
            if born == inner.generation.load(Ordering::Relaxed) {
                inner
                    .idle_readers
                    .lock()
                    .expect("reader pool")
                    .push((born, conn));
            }
            out
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// [`Store::read`], shared: a wake-up makes many waiters ask the same
    /// question at once. A caller that finds the same `key` queued and not yet
    /// started joins it instead of running its own: the read starts after the
    /// caller asked, so its answer is as fresh as the caller's own would be.
    /// Ten thousand woken waiters cost a handful of reads and renderings.
    /// The answer of a shared read of `key` queued and not yet started, if
    /// there is one: [`Store::read_shared`]'s joining half, for a caller that
    /// would rather not build its own read (a wave of arrivals asking the same
    /// question). `None` from the future: that read failed; ask on your own.
    pub fn join_shared<T>(
        &self,
        key: &str,
    ) -> Option<impl Future<Output = Option<Arc<T>>> + Send + use<T>>
    where
        T: Send + Sync + 'static,
    {
        let mut rx = self
            .inner
            .flights
            .lock()
            .expect("flights lock")
            .get(key)
            .map(|(_, rx)| rx.clone())?;
        Some(async move {
            let answer = rx.wait_for(Option::is_some).await.ok()?;
            match &*answer {
                Some(Some(shared)) => Arc::clone(shared).downcast::<T>().ok(),
                _ => None,
            }
        })
    }

    pub async fn read_shared<T, F>(&self, key: String, f: F) -> Result<Arc<T>, StoreError>
    where
        T: Send + Sync + 'static,
        F: FnOnce(&mut Runner<'_, '_>) -> Result<T, StoreError> + Send + 'static,
    {
        let joined = self
            .inner
            .flights
            .lock()
            .expect("flights lock")
            .get(&key)
            .map(|(_, rx)| rx.clone());
        if let Some(mut rx) = joined {
            if let Ok(answer) = rx.wait_for(Option::is_some).await
                && let Some(Some(shared)) = &*answer
                && let Ok(t) = Arc::clone(shared).downcast::<T>()
            {
                return Ok(t);
            }
            // The read failed or its caller went away: ask on our own.
            return self.read(f).await.map(Arc::new);
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
        let inner = self.inner.clone();
        let out = self
            .read(move |r| {
                // Started: later callers must not join (they may have asked
                // after a commit this read can no longer see).
                FlightGuard::take_out(&inner, &key, id);
                f(r)
            })
            .await
            .map(Arc::new);
        drop(guard);
        let _ = tx.send(Some(out.as_ref().ok().map(|t| Arc::clone(t) as Shared)));
        out
    }

    /// Whether the writer thread runs (for `/readyz`).
    pub fn writer_alive(&self) -> bool {
        let writer = self.inner.writer.lock().expect("writer lock");
        writer.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Stops taking writes, lets the writer commit what is queued, and waits for it.
    pub fn close(&self) {
        self.inner.jobs.lock().expect("jobs lock").take();
        if let Some(handle) = self.inner.writer.lock().expect("writer lock").take() {
            let _ = handle.join();
        }
    }

    #[cfg(test)]
    fn flights_in_the_air(&self) -> usize {
        self.inner.flights.lock().expect("flights").len()
    }
}

/// The keys changed since the watcher last looked: `PRAGMA data_version` on a
/// connection of its own says whether anything was committed (by anyone),
/// then the change log's new rows say what.
pub struct VersionProbe {
    db: Db,
    version: i64,
    seen: i64,
    /// Closed (the file was replaced): nothing to look at until reopened.
    released: bool,
}

impl VersionProbe {
    /// Opens the probe; changes logged so far count as seen.
    pub fn open(path: &Path) -> Result<VersionProbe, StoreError> {
        let db = Db::open(open_reader(path)?);
        let version = data_version(&db)?;
        let seen = max_seq(db.conn())?;
        Ok(VersionProbe {
            db,
            version,
            seen,
            released: false,
        })
    }

    /// Closes the connection to the file (before another file is opened at its path).
    pub fn release(&mut self) {
        if let Ok(c) = Connection::open_in_memory() {
            self.db = Db::open(c);
            self.released = true;
        }
    }

    /// A probe of the database now at `path`.
    pub fn reopen(&self, path: &Path) -> Result<VersionProbe, StoreError> {
        VersionProbe::open(path)
    }

    /// `(topic, key, seq)` logged since the last call, one per key with its
    /// highest sequence; empty (and no query beyond the pragma) when nothing
    /// was committed.
    pub fn changed(&mut self) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.changed_above(0)
    }

    /// [`VersionProbe::changed`], skipping the rows up to `floor`, which
    /// someone else has signalled already ([`Store::signalled`]: the writer
    /// reads and signals every row up to its own commit's, whoever wrote them).
    pub fn changed_above(&mut self, floor: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.seen = self.seen.max(floor);
        if self.released {
            return Ok(Vec::new());
        }
        let version = data_version(&self.db)?;
        if version == self.version {
            return Ok(Vec::new());
        }
        self.version = version;
        let keys = self.db.run(|r| changed_since(r, self.seen))?;
        if let Some(max) = keys.iter().map(|k| k.2).max() {
            self.seen = max;
        }
        Ok(keys)
    }
}

fn data_version(db: &Db) -> Result<i64, StoreError> {
    count(1);
    // Prepared once: the watcher asks several times per commit under load.
    db.run(|r| {
        r.with("PRAGMA data_version", |st, _| {
            Ok(st.query_row([], |r| r.get(0))?)
        })
    })
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    tick: &mpsc::WeakSender<Job>,
    setup: WriterSetup,
    durability: Durability,
    inner: &Inner,
) {
    let mut db = Db::open(conn);
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let started = Instant::now();
    let mut last_run: Vec<Duration> = vec![Duration::ZERO; setup.maintenance.len()];
    let mut last_prune = Duration::ZERO;
    let n = setup.retention.len();
    // The change log's highest sequence this writer has signalled.
    let mut written = max_seq(db.conn()).unwrap_or(0);
    let (mut retained_at, mut retain_more, mut retained) =
        (vec![Duration::ZERO; n], vec![false; n], vec![0u64; n]);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Some(i) = batch.iter().position(|j| matches!(j.work, Work::Reopen)) {
            let job = batch.remove(i);
            // Every connection to the old file closes first (the last one
            // checkpoints its WAL into the old file and removes the -wal and
            // -shm at the path), or the new file would be read through them.
            inner.generation.fetch_add(1, Ordering::Relaxed);
            inner.idle_readers.lock().expect("reader pool").clear();
            let drained = Instant::now();
            while inner.read_slots.available_permits() < READERS
                && drained.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            inner.idle_readers.lock().expect("reader pool").clear();
            match Connection::open_in_memory() {
                Ok(placeholder) => db = Db::open(placeholder),
                Err(e) => tracing::error!(error = %e, "cannot close the old database"),
            }
            // SQLite keeps the old file's -wal and -shm when the file was
            // replaced; opened beside the new file they would be read as its
            // own. Still ours (same inode): moved aside, never deleted.
            let stamp = jiff::Timestamp::now().as_second();
            for (side, id) in inner.sidecars.lock().expect("sidecars lock").iter() {
                if id.is_some() && file_id(side) == *id {
                    let mut aside = side.as_os_str().to_owned();
                    aside.push(format!(".replaced-{stamp}"));
                    match std::fs::rename(side, &aside) {
                        Ok(()) => {
                            tracing::warn!(from = %side.display(), to = %PathBuf::from(&aside).display(), "moved the replaced database's file aside")
                        }
                        Err(e) => {
                            tracing::error!(error = %e, file = %side.display(), "cannot move the replaced database's file aside")
                        }
                    }
                }
            }
            let result = reopen(&inner.path, durability, &setup).map(|(c, id)| {
                db = Db::open(c);
                *inner.identity.lock().expect("identity lock") = id;
                inner.seq_offset.store(
                    inner.max_signalled.load(Ordering::Relaxed) + 1,
                    Ordering::Relaxed,
                );
                written = max_seq(db.conn()).unwrap_or(0);
                *inner.sidecars.lock().expect("sidecars lock") = sidecars(&inner.path);
                inner.generation.fetch_add(1, Ordering::Relaxed);
                inner.idle_readers.lock().expect("reader pool").clear();
                inner.replaced.store(false, Ordering::Relaxed);
                Box::new(()) as Boxed
            });
            if let Some(reply) = job.reply {
                let _ = reply.send(result);
            }
        }
        batch.retain(|j| !matches!(j.work, Work::Tick));
        // Never acknowledge a write the path does not lead to.
        let replaced = !batch.is_empty()
            && (inner.replaced.load(Ordering::Relaxed)
                || file_id(&inner.path) != *inner.identity.lock().expect("identity lock"));
        let results: Vec<Result<Boxed, StoreError>> = if batch.is_empty() {
            Vec::new()
        } else if replaced {
            inner.replaced.store(true, Ordering::Relaxed);
            batch.iter().map(|_| Err(StoreError::Replaced)).collect()
        } else {
            let results = db.run(|r| commit(r, &mut batch));
            crate::metrics::record_batch(batch.len(), results.iter().all(Result::is_ok), rx.len());
            // Wake the keys this commit changed now, without a thread hop; the
            // watcher finds the same rows later and, the sequences being
            // known, wakes nobody twice.
            match db.run(|r| changed_since(r, written)) {
                Ok(keys) => {
                    if let Some(max) = keys.iter().map(|k| k.2).max() {
                        written = max;
                    }
                    signal(inner, &setup.changes, keys);
                }
                Err(e) => tracing::warn!(error = %e, "reading the change log failed"),
            }
            results
        };
        for (job, result) in batch.drain(..).zip(results) {
            if let Some(reply) = job.reply {
                let _ = reply.send(result);
            } else if let Err(e) = result {
                tracing::warn!(error = %e, "a detached write failed");
            }
        }
        let now = started.elapsed();
        for (i, (sql, every)) in setup.maintenance.iter().enumerate() {
            if now - last_run[i] >= *every || last_run[i].is_zero() {
                last_run[i] = now.max(Duration::from_nanos(1));
                if let Err(e) = maintain(db.conn(), sql) {
                    tracing::warn!(error = %e, sql, "maintenance statement failed");
                }
            }
        }
        for (i, r) in setup.retention.iter().enumerate() {
            if retain_more[i] || now - retained_at[i] >= RETENTION_EVERY || retained_at[i].is_zero()
            {
                retained_at[i] = now.max(Duration::from_nanos(1));
                match retain(db.conn(), r) {
                    Ok(n) => {
                        retain_more[i] = n >= RETENTION_BATCH as usize;
                        retained[i] += n as u64;
                        if n > 0 && !retain_more[i] {
                            tracing::info!(rows = retained[i], sql = %r.sql, "retention deleted old rows");
                            retained[i] = 0;
                        }
                    }
                    Err(e) => {
                        retain_more[i] = false;
                        tracing::warn!(error = %e, sql = %r.sql, "retention failed");
                    }
                }
            }
        }
        if retain_more.iter().any(|m| *m) {
            // More to delete: come back after the sends queued meanwhile.
            if let Some(jobs) = tick.upgrade() {
                let _ = jobs.try_send(Job {
                    work: Work::Tick,
                    reply: None,
                });
            }
        }
        if now - last_prune >= PRUNE_EVERY {
            last_prune = now;
            count(1);
            if let Err(e) = db.conn().execute(
                "DELETE FROM cometa_changes WHERE seq < (SELECT MAX(seq) FROM cometa_changes) - ?1",
                [CHANGES_KEPT],
            ) {
                tracing::warn!(error = %e, "pruning the change log failed");
            }
        }
    }
    tracing::debug!("writer stopped");
}

/// The change log's highest sequence.
fn max_seq(conn: &Connection) -> Result<i64, StoreError> {
    count(1);
    Ok(
        conn.query_row("SELECT IFNULL(MAX(seq), 0) FROM cometa_changes", [], |r| {
            r.get(0)
        })?,
    )
}

/// `(topic, key, seq)` logged above `after`, one per key with its highest
/// sequence. The rows are few (one commit's, or the few since the last look):
/// folded here, not by `GROUP BY`, which sorts through a temporary b-tree at
/// every call (a fifth of the writer's work per send when it did).
fn changed_since(r: &Runner<'_, '_>, after: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
    count(1);
    r.with(
        "SELECT topic, key, seq FROM cometa_changes WHERE seq > ?1",
        |st, _| {
            let mut rows = st.query([after])?;
            let mut keys: Vec<(String, String, i64)> = Vec::new();
            while let Some(r) = rows.next()? {
                let (topic, key) = (text(r.get_ref(0)?), text(r.get_ref(1)?));
                let seq: i64 = r.get(2)?;
                match keys.iter_mut().find(|k| k.0 == topic && k.1 == key) {
                    Some(k) => k.2 = k.2.max(seq),
                    None => keys.push((topic.into_owned(), key.into_owned(), seq)),
                }
            }
            Ok(keys)
        },
    )
}

/// A change log column as text (the trigger casts keys to TEXT; another
/// writer's bytes read lossily).
fn text(v: ValueRef<'_>) -> std::borrow::Cow<'_, str> {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t),
        ValueRef::Integer(i) => i.to_string().into(),
        ValueRef::Real(r) => r.to_string().into(),
        ValueRef::Null => "".into(),
    }
}

/// Wakes the waiters of each key, its sequence moved above every earlier file's.
fn signal(inner: &Inner, changes: &Changes, keys: Vec<(String, String, i64)>) {
    let offset = inner.seq_offset.load(Ordering::Relaxed);
    for (topic, value, seq) in keys {
        let seq = seq + offset;
        inner.max_signalled.fetch_max(seq, Ordering::Relaxed);
        changes.notify(&crate::changes::key(&topic, &value), seq);
    }
}

/// Opens and migrates the database now at `path`.
fn reopen(
    path: &Path,
    durability: Durability,
    setup: &WriterSetup,
) -> Result<(Connection, Option<(u64, u64)>), StoreError> {
    writable(path)?;
    let mut conn = open_writer(path, durability)?;
    apply(
        &mut conn,
        Schema {
            app: &setup.app_schema,
            extra: &setup.extra_sql,
            topics: &setup.topics,
        },
    )?;
    Ok((conn, file_id(path)))
}

/// One batch of a retention rule; the rows it deleted.
fn retain(conn: &Connection, r: &Retention) -> Result<usize, StoreError> {
    count(1);
    let mut st = conn.prepare_cached(&r.sql)?;
    let now = now_ms();
    let age_ms = r
        .max_age
        .map_or(0, |a| i64::try_from(a.as_millis()).unwrap_or(i64::MAX));
    for p in 1..=st.parameter_count() {
        let v = match st.parameter_name(p).map(|n| &n[1..]) {
            Some("cutoff_ms") => now.saturating_sub(age_ms),
            Some("cutoff") => now.saturating_sub(age_ms).div_euclid(1000),
            Some("keep") => r
                .keep
                .map_or(i64::MAX, |k| i64::try_from(k).unwrap_or(i64::MAX)),
            Some("batch") => RETENTION_BATCH,
            Some("now_ms") => now,
            Some("now") => now.div_euclid(1000),
            _ => continue,
        };
        st.raw_bind_parameter(p, v)?;
    }
    Ok(st.raw_execute()?)
}

fn maintain(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    count(1);
    let mut st = conn.prepare_cached(sql)?;
    let now = now_ms();
    for p in 1..=st.parameter_count() {
        match st.parameter_name(p) {
            Some(n) if &n[1..] == "now_ms" => st.raw_bind_parameter(p, now)?,
            Some(n) if &n[1..] == "now" => st.raw_bind_parameter(p, now.div_euclid(1000))?,
            _ => {}
        }
    }
    st.raw_execute()?;
    Ok(())
}

/// Runs `jobs` in one transaction; each job's result. A job that fails is
/// rolled back alone: the jobs run straight in the transaction first (a
/// savepoint around each costs a statement journal for every page they
/// touch), and only if one fails is the transaction rolled back and the batch
/// run again, each job in a savepoint. A transaction that cannot begin or
/// commit (another process holds the lock past `busy_timeout`) fails them all,
/// once, with nothing stored.
fn commit(r: &mut Runner<'_, '_>, jobs: &mut [Job]) -> Vec<Result<Boxed, StoreError>> {
    let fail_all = |e: StoreError, n: usize| {
        let msg = e.to_string();
        let busy = e.is_busy();
        (0..n)
            .map(|_| {
                Err(if busy {
                    StoreError::Busy
                } else {
                    StoreError::Failed(msg.clone())
                })
            })
            .collect::<Vec<_>>()
    };
    if let Err(e) = r.exec("BEGIN IMMEDIATE") {
        return fail_all(e, jobs.len());
    }
    let mut results = run_jobs(r, jobs, false);
    if results
        .iter()
        .any(|r| matches!(r, Err(e) if !matches!(e, StoreError::Closed)))
    {
        if !r.conn.is_autocommit() {
            let _ = r.exec("ROLLBACK");
        }
        if jobs.len() == 1 {
            return results;
        }
        if let Err(e) = r.exec("BEGIN IMMEDIATE") {
            return fail_all(e, jobs.len());
        }
        results = run_jobs(r, jobs, true);
    }
    // An I/O error or a full disk can roll the whole transaction back.
    let committed = if r.conn.is_autocommit() {
        Err(StoreError::Failed("the transaction was rolled back".into()))
    } else {
        r.exec("COMMIT")
    };
    if let Err(e) = committed {
        if !r.conn.is_autocommit() {
            let _ = r.exec("ROLLBACK");
        }
        return fail_all(e, jobs.len());
    }
    results
}

/// Runs each job of `jobs` in the open transaction, in a savepoint of its own
/// when `savepoints`; without, stops at the first that fails (the caller rolls
/// back and runs them again with).
fn run_jobs(
    r: &mut Runner<'_, '_>,
    jobs: &mut [Job],
    savepoints: bool,
) -> Vec<Result<Boxed, StoreError>> {
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        let Work::Run(run) = &mut job.work else {
            results.push(Err(StoreError::Closed));
            continue;
        };
        if !savepoints {
            let out = run(r);
            let failed = out.is_err();
            results.push(out);
            if failed {
                break;
            }
            continue;
        }
        if let Err(e) = r.exec("SAVEPOINT job") {
            results.push(Err(e));
            continue;
        }
        let out = run(r);
        let end = if out.is_ok() {
            Ok(())
        } else {
            r.exec("ROLLBACK TO job")
        };
        if let Err(e) = end.and_then(|()| r.exec("RELEASE job")) {
            results.push(Err(e));
            continue;
        }
        results.push(out);
    }
    results
}

impl StoreError {
    /// Another process held the lock past `busy_timeout`.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Busy => true,
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sql(Vec<(&'static str, Vec<(&'static str, Value)>)>, Vec<Rows>);

    impl Script for Sql {
        fn count(&self) -> usize {
            self.0.len()
        }
        fn sql(&self, i: usize) -> &str {
            self.0[i].0
        }
        fn runs(&mut self, _: usize) -> Result<bool, StoreError> {
            Ok(true)
        }
        fn bind(&self, i: usize, name: &str) -> Bound<'_> {
            self.0[i]
                .1
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(Bound::Null, |(_, v)| Bound::from(v))
        }
        fn record(&mut self, _: usize, rows: Rows, _: Option<i64>) {
            self.1.push(rows);
        }
    }

    const APP: &str = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, room TEXT, v TEXT);";

    fn topics() -> Vec<Topic> {
        vec![Topic {
            name: "room".into(),
            table: "t".into(),
            on: vec!["insert".into()],
            key: "NEW.room".into(),
        }]
    }

    #[test]
    fn a_change_log_with_autoincrement_is_rebuilt_and_its_newest_row_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE cometa_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT NOT NULL);
             INSERT INTO cometa_changes (topic, key) VALUES ('room', 'a'), ('room', 'b'), ('room', 'c');
             DELETE FROM cometa_changes WHERE seq = 3;",
        )
        .unwrap();
        drop(old);
        let topics = topics();
        let schema = Schema {
            app: APP,
            extra: &[],
            topics: &topics,
        };
        migrate(&path, schema).unwrap();
        migrate(&path, schema).expect("a second migrate finds nothing to rebuild");
        let conn = Connection::open(&path).unwrap();
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'cometa_changes'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("AUTOINCREMENT"), "{sql}");
        let log = |conn: &Connection| -> Vec<(i64, String)> {
            conn.prepare("SELECT seq, key FROM cometa_changes ORDER BY seq")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        // Sequence 3 was given once: the next change is logged above it.
        conn.execute("INSERT INTO t (room, v) VALUES ('x', 'one')", [])
            .unwrap();
        assert_eq!(
            log(&conn),
            [
                (1, "a".to_owned()),
                (2, "b".to_owned()),
                (3, String::new()),
                (4, "x".to_owned())
            ]
        );
        // Deleting the whole log by hand leaves the newest row, and the
        // sequence goes on from it.
        conn.execute("DELETE FROM cometa_changes", []).unwrap();
        assert_eq!(log(&conn), [(4, "x".to_owned())]);
        conn.execute("INSERT INTO t (room, v) VALUES ('y', 'two')", [])
            .unwrap();
        assert_eq!(log(&conn), [(4, "x".to_owned()), (5, "y".to_owned())]);
    }

    fn store(dir: &Path) -> Store {
        let topics = topics();
        let path = dir.join("t.sqlite");
        migrate(
            &path,
            Schema {
                app: APP,
                extra: &[],
                topics: &topics,
            },
        )
        .expect("migrate");
        Store::open(
            &path,
            Durability::Normal,
            WriterSetup {
                app_schema: APP.into(),
                extra_sql: Vec::new(),
                topics,
                maintenance: Vec::new(),
                retention: Vec::new(),
                changes: Arc::new(Changes::default()),
            },
        )
        .expect("open")
    }

    fn insert(room: &'static str, v: &'static str) -> Sql {
        Sql(
            vec![(
                "INSERT INTO t (room, v) VALUES (:room, :v)",
                vec![
                    ("room", Value::Text(room.into())),
                    ("v", Value::Text(v.into())),
                ],
            )],
            Vec::new(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_fails_alone_and_the_log_names_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut probe = VersionProbe::open(store.path()).unwrap();
        let ok = store.write(|r| {
            let mut s = insert("a", "one");
            r.run(&mut s)
        });
        let bad = store.write(|r| {
            let mut s = insert("b", "two");
            r.run(&mut s)?;
            let mut broken = Sql(vec![("INSERT INTO nope VALUES (1)", vec![])], vec![]);
            r.run(&mut broken)
        });
        let (ok, bad) = tokio::join!(ok, bad);
        ok.expect("the good job commits");
        assert!(bad.is_err());
        let rows = store
            .read(|r| {
                let mut s = Sql(vec![("SELECT room, v FROM t ORDER BY id", vec![])], vec![]);
                r.run(&mut s)?;
                Ok(s.1.remove(0))
            })
            .await
            .unwrap();
        assert_eq!(
            rows.rows,
            vec![vec![Value::Text("a".into()), Value::Text("one".into())]]
        );
        let changed = probe.changed().unwrap();
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!(
            (changed[0].0.as_str(), changed[0].1.as_str()),
            ("room", "a")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watcher_reads_only_what_the_writer_has_not_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut probe = VersionProbe::open(store.path()).unwrap();
        store
            .write(|r| r.run(&mut insert("ours", "1")))
            .await
            .unwrap();
        // The writer signalled its commit: nothing left for the watcher.
        assert!(store.signalled() > 0);
        assert_eq!(probe.changed_above(store.signalled()).unwrap(), []);
        // Another process's commit is the watcher's to find.
        let other = Connection::open(store.path()).unwrap();
        other
            .execute("INSERT INTO t (room, v) VALUES ('theirs', '2')", [])
            .unwrap();
        let found = probe.changed_above(store.signalled()).unwrap();
        let rooms: Vec<&str> = found.iter().map(|k| k.1.as_str()).collect();
        assert_eq!(rooms, ["theirs"]);
    }

    #[test]
    fn a_batch_with_a_failing_job_commits_the_others_and_runs_them_once_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = store(dir.path()).path().to_owned();
        let conn = Connection::open(&path).unwrap();
        let runs = Arc::new(AtomicU64::new(0));
        let job = |v: &'static str, fails: bool| {
            let runs = Arc::clone(&runs);
            Job {
                work: Work::Run(Box::new(move |r| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    r.run(&mut insert("r", v))?;
                    if fails {
                        r.run(&mut Sql(
                            vec![("INSERT INTO nope VALUES (1)", vec![])],
                            vec![],
                        ))?;
                    }
                    Ok(Box::new(()) as Boxed)
                })),
                reply: None,
            }
        };
        let mut jobs = vec![job("one", false), job("two", true), job("three", false)];
        let db = Db::open(conn);
        let results = db.run(|r| commit(r, &mut jobs));
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, true]);
        let stored: Vec<String> = db
            .conn()
            .prepare("SELECT v FROM t ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            stored,
            ["one", "three"],
            "the failing job's insert is rolled back"
        );
        // Straight through until "two" failed (2 runs), then all three again
        // in savepoints.
        assert_eq!(runs.load(Ordering::Relaxed), 5);
        // A batch where every job succeeds runs each once.
        let mut jobs = vec![job("four", false), job("five", false)];
        assert!(db.run(|r| commit(r, &mut jobs)).iter().all(Result::is_ok));
        assert_eq!(runs.load(Ordering::Relaxed), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_callers_of_one_question_share_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store
            .write(|r| {
                let mut s = insert("r", "x");
                r.run(&mut s)
            })
            .await
            .unwrap();
        let asks = (0..200).map(|_| {
            let s = store.clone();
            tokio::spawn(async move {
                s.read_shared("q".into(), |r| {
                    let mut q = Sql(vec![("SELECT v FROM t", vec![])], vec![]);
                    r.run(&mut q)?;
                    Ok(q.1.remove(0).rows.len())
                })
                .await
            })
        });
        for ask in asks {
            assert_eq!(*ask.await.unwrap().unwrap(), 1);
        }
        assert_eq!(store.flights_in_the_air(), 0);
    }

    #[test]
    fn text_that_is_not_utf8_reads_lossily() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.sqlite");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(APP).unwrap();
        c.execute(
            "INSERT INTO t (room, v) VALUES ('r', CAST(X'61FF62' AS TEXT))",
            [],
        )
        .unwrap();
        let mut s = Sql(vec![("SELECT v FROM t", vec![])], vec![]);
        Db::open(c).run(|r| r.run(&mut s)).unwrap();
        assert_eq!(s.1[0].rows[0][0], Value::Text("a\u{FFFD}b".into()));
    }
}
