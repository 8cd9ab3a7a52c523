-- 0003: the access log (who read whose data), for the CNIL right of access and
-- the usage indicators.
--
-- Not events: rows are DELETEd by the retention purge. Ids must still be
-- allocated in commit order (a reader resumes from the last id it read), and
-- never reused after a purge, so they come from a one-row counter whose row
-- lock is held until commit, not from a sequence.

CREATE TABLE access_log (
    id              bigint      PRIMARY KEY,
    at              timestamptz NOT NULL,
    viewer_id       uuid        NOT NULL,
    viewer_profile  text        NOT NULL,
    subject_id      uuid,
    operation       text        NOT NULL,
    service         text        NOT NULL
);

CREATE INDEX access_log_subject_idx ON access_log (subject_id, id)
    WHERE subject_id IS NOT NULL;
CREATE INDEX access_log_at_idx ON access_log (at);

CREATE TABLE access_log_counter (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_id   bigint  NOT NULL
);
INSERT INTO access_log_counter (only_row, last_id) VALUES (true, 0);
