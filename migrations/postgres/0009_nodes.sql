-- 0009: the node registry (issue 12, decision 0021). One row per serving
-- node: what it serves and where the other nodes reach it. A node upserts
-- its row at start, moves `heartbeat_at` every heartbeat period and deletes
-- it at a clean stop; a node whose heartbeat is older than the liveness
-- timeout is not forwarded to (its row stays until it returns or an
-- operator removes it: a crash leaves no one to delete it).
CREATE TABLE nodes (
    node_id       uuid        PRIMARY KEY,
    -- The base URL other nodes send internal and forwarded requests to.
    advertise_url text        NOT NULL CHECK (advertise_url <> ''),
    -- The establishments' UAIs it folds, as a JSON array; NULL: all of them.
    served        jsonb       CHECK (served IS NULL OR jsonb_typeof(served) = 'array'),
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL
);
