-- 0002: snapshots of folds. Mutable on purpose: a cache of the log, never a
-- source of truth.

CREATE TABLE snapshots (
    key       TEXT    PRIMARY KEY,
    version   INTEGER NOT NULL,
    position  INTEGER NOT NULL CHECK (position >= 0),
    state     BLOB    NOT NULL,
    saved_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
