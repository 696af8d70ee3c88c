-- What cometa adds beside an app's own tables (applied by `cometa migrate`
-- and at start-up, whatever the profile; never touches the app's tables).
--
-- The change log: triggers that cometa creates on the app's tables (one per
-- topic a profile declares) append (topic, key) here in the writer's own
-- transaction, whoever the writer is — cometa or the PHP app. The watcher reads
-- the rows above the last sequence it saw and wakes exactly the requests held
-- on those keys. cometa deletes old rows now and then.
CREATE TABLE IF NOT EXISTS cometa_changes (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key   TEXT NOT NULL
);
