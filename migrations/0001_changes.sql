-- What cometa adds beside an app's own tables (applied by `cometa migrate`
-- and at start-up, whatever the profile; never touches the app's tables).
--
-- The change log: triggers that cometa creates on the app's tables (one per
-- topic a profile declares) append (topic, key) here in the writer's own
-- transaction, whoever the writer is — cometa or the PHP app. The watcher reads
-- the rows above the last sequence it saw and wakes exactly the requests held
-- on those keys. cometa deletes old rows now and then.
--
-- `seq` is the rowid, which SQLite makes one more than the largest: it only
-- grows as long as the newest row stays, which the trigger below sees to
-- (cometa's pruning never deletes it either). Not AUTOINCREMENT: that costs
-- every logged row a read and a rewrite of sqlite_sequence, in PHP's writes
-- too (a third of what logging a change costs).
CREATE TABLE IF NOT EXISTS cometa_changes (
    seq   INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    key   TEXT NOT NULL
);

-- Whoever deletes from the log (a hand-run `DELETE FROM cometa_changes`), the
-- newest row stays: were it gone, the next sequence could start again below
-- what the watcher has seen, and it would miss changes.
CREATE TRIGGER IF NOT EXISTS cometa_changes_keep_newest
BEFORE DELETE ON cometa_changes
WHEN OLD.seq = (SELECT MAX(seq) FROM cometa_changes)
BEGIN
    SELECT RAISE(IGNORE);
END;
