-- 0008: communication (issue 16): attachment bytes and the notification outbox.
--
-- Attachments: the event log holds an attachment's SHA-256 only; the bytes
-- are here, content-addressed. `owner` is the nil uuid for bytes stored as
-- uploaded, or the vault subject whose key sealed them (a justification's
-- documents are sealed with the student's key: destroying it erases them).
CREATE TABLE attachment_blobs (
    sha256      text   NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    owner       uuid   NOT NULL,
    bytes       bytea  NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sha256, owner)
);

-- One row per (log position, person, channel): what the log says must reach
-- someone. Rows hold ids only; the sender reads the content and the address
-- from its read model when it sends. The primary key is the deduplication:
-- a page of the log enqueued twice adds nothing.
CREATE TABLE notification_outbox (
    position     bigint      NOT NULL,
    person_id    uuid        NOT NULL,
    channel      text        NOT NULL,
    kind         text        NOT NULL,
    about_id     uuid        NOT NULL,
    state        text        NOT NULL DEFAULT 'pending'
                             CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL,
    lease_until  timestamptz,
    delivered_at timestamptz,
    PRIMARY KEY (position, person_id, channel)
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_at) WHERE state = 'pending';

-- The log position up to which notifications were enqueued.
CREATE TABLE notification_checkpoint (
    id        smallint PRIMARY KEY CHECK (id = 1),
    position  bigint   NOT NULL
);
INSERT INTO notification_checkpoint (id, position) VALUES (1, 0);
