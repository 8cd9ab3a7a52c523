-- 0001: the event log and the idempotency keys, both append-only.
--
-- Same shape and semantics as the PostgreSQL schema. SQLite has one writer at
-- a time (BEGIN IMMEDIATE), which serialises position allocation and makes
-- commit order position order. Timestamps are RFC 3339 text with microseconds
-- and a Z, which sorts as time does; data and metadata are canonical JSON text,
-- the exact bytes the hash chain covers.

CREATE TABLE events (
    position        INTEGER PRIMARY KEY CHECK (position > 0),
    stream_id       TEXT    NOT NULL CHECK (stream_id <> ''),
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    event_id        BLOB    NOT NULL UNIQUE CHECK (length(event_id) = 16),
    event_type      TEXT    NOT NULL CHECK (event_type <> ''),
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 0),
    data            TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    occurred_at     TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    hash            BLOB    NOT NULL CHECK (length(hash) = 32),
    UNIQUE (stream_id, stream_version)
);

CREATE TABLE idempotency_keys (
    key             TEXT    PRIMARY KEY,
    fingerprint     TEXT    NOT NULL,
    first_position  INTEGER NOT NULL REFERENCES events (position),
    last_position   INTEGER NOT NULL REFERENCES events (position)
);

-- SQLite has no TRUNCATE: a DELETE without WHERE is still a DELETE, and these
-- triggers also disable its truncate optimisation, so they refuse it too.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'registre: UPDATE on table events is refused: the event log is append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'registre: DELETE on table events is refused: the event log is append-only');
END;
CREATE TRIGGER idempotency_keys_no_update BEFORE UPDATE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'registre: UPDATE on table idempotency_keys is refused: the event log is append-only');
END;
CREATE TRIGGER idempotency_keys_no_delete BEFORE DELETE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'registre: DELETE on table idempotency_keys is refused: the event log is append-only');
END;
