-- 0008: communication (issue 16): the notification outbox (see the
-- PostgreSQL migration's comments). The embedded store keeps attachment
-- bytes as files in its data directory (`attachments/`), not here. Instants
-- are Unix milliseconds, uuids 16-byte blobs.
CREATE TABLE notification_outbox (
    position     INTEGER NOT NULL,
    person_id    BLOB    NOT NULL,
    channel      TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    about_id     BLOB    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    lease_until  INTEGER,
    delivered_at INTEGER,
    PRIMARY KEY (position, person_id, channel)
);

CREATE TABLE notification_checkpoint (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    position  INTEGER NOT NULL
);
INSERT INTO notification_checkpoint (id, position) VALUES (1, 0);
