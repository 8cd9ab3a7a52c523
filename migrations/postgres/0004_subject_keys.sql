-- 0004: the per-person keys of crypto-shredding (GDPR art. 17).
--
-- Personal free text in events (names, reasons, comments, message bodies) is
-- stored encrypted with the key of the person it is about. The keys live here,
-- outside the append-only event table, so that erasing a person is destroying
-- a row's key: the events stay, their hash chain still verifies (it covers the
-- ciphertext), and the text can no longer be read. Unlike events, rows here are
-- updated (destroyed_at) and their key bytes overwritten with NULL.

CREATE TABLE subject_keys (
    subject_id    uuid        PRIMARY KEY,
    key_bytes     bytea       CHECK (key_bytes IS NULL OR length(key_bytes) = 32),
    created_at    timestamptz NOT NULL,
    destroyed_at  timestamptz,
    CHECK ((key_bytes IS NULL) = (destroyed_at IS NOT NULL))
);
