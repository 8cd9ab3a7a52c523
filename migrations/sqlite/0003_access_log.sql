-- 0003: the access log (who read whose data). Rows are DELETEd by the
-- retention purge; AUTOINCREMENT so that an id is never reused after a purge (a
-- reader resumes from the last id it read). The single writer makes id order
-- commit order.

CREATE TABLE access_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              TEXT    NOT NULL,
    viewer_id       BLOB    NOT NULL,
    viewer_profile  TEXT    NOT NULL,
    subject_id      BLOB,
    operation       TEXT    NOT NULL,
    service         TEXT    NOT NULL
);

CREATE INDEX access_log_subject_idx ON access_log (subject_id, id)
    WHERE subject_id IS NOT NULL;
CREATE INDEX access_log_at_idx ON access_log (at);
