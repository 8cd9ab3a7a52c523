-- 0011: the notification outbox per partition (issue 12 follow-up, decision 0021).
--
-- A node serving a set of establishments sees only their events and the
-- directory's, and composes only their notices: the one checkpoint of 0008
-- cannot say how far each partition was enqueued. Each partition (a UAI, or
-- 'directory') has its own row, moved by whichever node serves it, in the
-- transaction that enqueues its rows and only from the position it read
-- (compare-and-set): a node taking a school over resumes where the previous
-- holder stopped. A partition without a row starts from 0008's checkpoint
-- when it is above 0 (an upgraded region loses nothing), otherwise from
-- where a node first sees it. 0008's checkpoint is no longer moved.
CREATE TABLE notification_partition_checkpoints (
    partition  text   PRIMARY KEY CHECK (partition <> ''),
    position   bigint NOT NULL
);

-- The partition of the event a row announces: a node sends only what it can
-- compose. NULL for rows enqueued before 0011, which a node folding every
-- establishment sends.
ALTER TABLE notification_outbox ADD COLUMN partition text;
