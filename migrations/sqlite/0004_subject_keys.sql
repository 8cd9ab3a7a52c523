-- 0004: the per-person keys of crypto-shredding (GDPR art. 17). Personal free
-- text in events is encrypted with the key of the person it is about; the keys
-- live here, outside the append-only event table, so that erasing a person is
-- overwriting a key with NULL: the events and their hash chain stay intact.

CREATE TABLE subject_keys (
    subject_id    BLOB PRIMARY KEY,
    key_bytes     BLOB CHECK (key_bytes IS NULL OR length(key_bytes) = 32),
    created_at    TEXT NOT NULL,
    destroyed_at  TEXT,
    CHECK ((key_bytes IS NULL) = (destroyed_at IS NOT NULL))
);
