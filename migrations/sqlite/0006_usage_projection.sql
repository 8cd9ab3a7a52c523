-- 0006: the usage projection (ENT audience measure), persisted incrementally.
-- Same tables as the PostgreSQL migration (see its comments); days are
-- 'YYYY-MM-DD' text, instants RFC 3339 text, uuids 16-byte blobs. The single
-- writer connection serialises folds as the advisory lock does on PostgreSQL.

CREATE TABLE usage_visits (
    establishment_id  BLOB    NOT NULL,
    day               TEXT    NOT NULL,
    service           TEXT    NOT NULL,
    profile           TEXT    NOT NULL,
    hour              INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 23),
    visits            INTEGER NOT NULL CHECK (visits > 0),
    PRIMARY KEY (establishment_id, day, service, profile, hour)
);

CREATE TABLE usage_visitors (
    establishment_id  BLOB    NOT NULL,
    day               TEXT    NOT NULL,
    service           TEXT    NOT NULL,
    profile           TEXT    NOT NULL,
    hour              INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 23),
    pseudonym         TEXT    NOT NULL,
    PRIMARY KEY (establishment_id, day, service, profile, hour, pseudonym)
);

CREATE TABLE usage_sessions (
    pseudonym  TEXT NOT NULL,
    service    TEXT NOT NULL,
    last_at    TEXT NOT NULL,
    PRIMARY KEY (pseudonym, service)
);

CREATE TABLE usage_checkpoint (
    only_row        INTEGER PRIMARY KEY CHECK (only_row = 1),
    last_access_id  INTEGER NOT NULL CHECK (last_access_id >= 0)
);
INSERT INTO usage_checkpoint (only_row, last_access_id) VALUES (1, 0);
