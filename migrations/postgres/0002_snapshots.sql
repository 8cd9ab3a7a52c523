-- 0002: snapshots of folds (projection state, aggregate decision state).
--
-- Mutable on purpose: a snapshot is a cache of the log, never a source of
-- truth, and is overwritten as the fold advances.

CREATE TABLE snapshots (
    key       text   PRIMARY KEY,
    version   integer NOT NULL,
    position  bigint NOT NULL CHECK (position >= 0),
    state     bytea  NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT now()
);
