-- 0007: partitions (see postgres/0007 and docs/decisions/0019). Each event's
-- establishment UAI or 'directory'; NULL until the backfill of a log written
-- before this migration, which may set it once and change nothing else.

ALTER TABLE events ADD COLUMN partition TEXT CHECK (partition <> '');

CREATE INDEX events_partition_position ON events (partition, position);

DROP TRIGGER events_no_update;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
WHEN NOT (OLD.partition IS NULL AND NEW.partition IS NOT NULL
          AND NEW.position IS OLD.position AND NEW.stream_id IS OLD.stream_id
          AND NEW.stream_version IS OLD.stream_version AND NEW.event_id IS OLD.event_id
          AND NEW.event_type IS OLD.event_type AND NEW.schema_version IS OLD.schema_version
          AND NEW.data IS OLD.data AND NEW.metadata IS OLD.metadata
          AND NEW.occurred_at IS OLD.occurred_at AND NEW.recorded_at IS OLD.recorded_at
          AND NEW.hash IS OLD.hash)
BEGIN
    SELECT RAISE(ABORT, 'registre: UPDATE on table events is refused: the event log is append-only');
END;
