-- The classic chat's schema (legacy_php/), the app's own tables. `cometa migrate
-- --profile classic` applies it; IF NOT EXISTS everywhere: the PHP app may
-- have created these tables before cometa ever ran.

-- One row per chat message. AUTOINCREMENT so that an id is never reused, even
-- after rows are deleted: clients follow `lastId` and must never see an old id again.
CREATE TABLE IF NOT EXISTS messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    room       TEXT    NOT NULL,
    user       TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    created_at INTEGER NOT NULL  -- unix time, seconds (PHP's time())
);
CREATE INDEX IF NOT EXISTS messages_room_id ON messages (room, id);

-- Last time a user was seen in a room by any endpoint that takes `user`.
CREATE TABLE IF NOT EXISTS presence (
    room    TEXT    NOT NULL,
    user    TEXT    NOT NULL,
    seen_ms INTEGER NOT NULL,  -- unix time, milliseconds
    PRIMARY KEY (room, user)
) WITHOUT ROWID;

-- A user's typing flag; it lapses 5 s after set_ms.
CREATE TABLE IF NOT EXISTS typing (
    room   TEXT    NOT NULL,
    user   TEXT    NOT NULL,
    set_ms INTEGER NOT NULL,  -- unix time, milliseconds
    PRIMARY KEY (room, user)
) WITHOUT ROWID;
