-- 0011: the notification outbox per partition (issue 12 follow-up; see the
-- PostgreSQL migration's comments). The embedded store is one node, but
-- keeps the same schema and rules.
CREATE TABLE notification_partition_checkpoints (
    partition  TEXT    PRIMARY KEY CHECK (partition <> ''),
    position   INTEGER NOT NULL
);

ALTER TABLE notification_outbox ADD COLUMN partition TEXT;
