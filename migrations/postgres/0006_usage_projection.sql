-- 0006: the usage projection (ENT audience measure), persisted incrementally.
--
-- Not a cache of the event log: it is folded from the access log, which the
-- retention purge deletes, so these tables are the only copy of the indicators
-- of purged periods. A rebuild of the read model and an erasure leave them
-- alone; they hold pseudonyms (HMAC of a person id), never a person id.
--
-- The counts, the sessionization state and the checkpoint change in one
-- transaction under an advisory lock (see store/src/usage.rs): a crash never
-- counts an access twice, and one node at a time folds.

-- Visits started per establishment, local day, service, profile and local hour.
CREATE TABLE usage_visits (
    establishment_id  uuid     NOT NULL,
    day               date     NOT NULL,
    service           text     NOT NULL,
    profile           text     NOT NULL,
    hour              smallint NOT NULL CHECK (hour BETWEEN 0 AND 23),
    visits            bigint   NOT NULL CHECK (visits > 0),
    PRIMARY KEY (establishment_id, day, service, profile, hour)
);

-- Who started a visit in a cell: distinct visitors over any date range are
-- counted from these rows.
CREATE TABLE usage_visitors (
    establishment_id  uuid     NOT NULL,
    day               date     NOT NULL,
    service           text     NOT NULL,
    profile           text     NOT NULL,
    hour              smallint NOT NULL CHECK (hour BETWEEN 0 AND 23),
    pseudonym         text     NOT NULL,
    PRIMARY KEY (establishment_id, day, service, profile, hour, pseudonym)
);

-- Sessionization: the last read of a pseudonym in a service. A read within 30
-- minutes of it continues the visit.
CREATE TABLE usage_sessions (
    pseudonym  text        NOT NULL,
    service    text        NOT NULL,
    last_at    timestamptz NOT NULL,
    PRIMARY KEY (pseudonym, service)
);

-- The last access-log id folded. The retention purge deletes only entries at
-- or below it.
CREATE TABLE usage_checkpoint (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_access_id  bigint  NOT NULL CHECK (last_access_id >= 0)
);
INSERT INTO usage_checkpoint (only_row, last_access_id) VALUES (true, 0);
