-- 0009: the node registry (see the PostgreSQL migration's comments). The
-- embedded store only ever has one node; the table is here so that both
-- backends answer the same registry calls. Instants are Unix milliseconds,
-- uuids 16-byte blobs, `served` a JSON array of UAIs or NULL (all).
CREATE TABLE nodes (
    node_id       BLOB    PRIMARY KEY,
    advertise_url TEXT    NOT NULL CHECK (advertise_url <> ''),
    served        TEXT,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL
);
