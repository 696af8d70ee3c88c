-- The "talk to a stranger" app's own five tables (docs/apps/omegle.md), as the
-- PHP app keeps them. `cometa migrate --profile omegle` creates them when
-- missing; IF NOT EXISTS everywhere, and cometa never alters them.
-- `sentdate` and `archivedDate` have a resolution of one second: queues are
-- read ORDER BY the date, then id.
CREATE TABLE IF NOT EXISTS users   (id INTEGER PRIMARY KEY AUTOINCREMENT, inchat TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chats   (userId INTEGER NOT NULL, randomUserId INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS msgs    (id INTEGER PRIMARY KEY AUTOINCREMENT, userId INTEGER, randomUserId INTEGER,
                                    msg TEXT, sentdate TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS oldmsgs (id INTEGER PRIMARY KEY AUTOINCREMENT, userId INTEGER NOT NULL, randomUserId INTEGER NOT NULL,
                                    msg TEXT NOT NULL, archivedDate TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS typing  (id INTEGER NOT NULL);
