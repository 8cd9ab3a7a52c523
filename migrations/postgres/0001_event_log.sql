-- 0001: the event log and the idempotency keys, both append-only.
--
-- Positions are NOT a sequence: the store allocates them as max(position) + 1
-- under a transaction-scoped advisory lock held until commit, so commit order is
-- position order and a tailing reader never later sees an event below one it
-- has read (see docs/decisions/0001-event-store.md).
--
-- data and metadata are TEXT holding canonical JSON (keys sorted, no
-- whitespace), not jsonb: the hash chain is computed over these exact bytes and
-- jsonb would renormalise numbers and key order.

CREATE TABLE events (
    position        bigint      PRIMARY KEY CHECK (position > 0),
    stream_id       text        NOT NULL CHECK (stream_id <> ''),
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL CHECK (event_type <> ''),
    schema_version  integer     NOT NULL CHECK (schema_version >= 0),
    data            text        NOT NULL,
    metadata        text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    -- SHA-256 of the previous event's hash and this row (store::chain).
    hash            bytea       NOT NULL CHECK (octet_length(hash) = 32),
    -- Also the index read_stream uses: deciding a command reads only the
    -- versions after its snapshot, whatever the stream's length.
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

-- One row per idempotency key that wrote something: the positions it wrote, so
-- a retry answers the original events.
CREATE TABLE idempotency_keys (
    key             text   PRIMARY KEY,
    fingerprint     text   NOT NULL,
    first_position  bigint NOT NULL REFERENCES events (position),
    last_position   bigint NOT NULL REFERENCES events (position)
);

-- The log is append-only at the database level, not only in the code: any
-- UPDATE, DELETE or TRUNCATE is refused, whoever sends it.
CREATE FUNCTION registre_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'registre: % on table % is refused: the event log is append-only',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION registre_refuse_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION registre_refuse_change();

CREATE TRIGGER idempotency_keys_append_only
    BEFORE UPDATE OR DELETE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION registre_refuse_change();
CREATE TRIGGER idempotency_keys_no_truncate
    BEFORE TRUNCATE ON idempotency_keys
    FOR EACH STATEMENT EXECUTE FUNCTION registre_refuse_change();
