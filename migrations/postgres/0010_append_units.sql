-- 0010: appends grouped by unit. A roll call (several streams, all or
-- nothing) used to be committed alone, planned in the process in four round
-- trips, while single appends shared the group commit's one call and one WAL
-- flush. registre_append now takes a unit number per request instead of one
-- `atomic` flag for the whole call: consecutive requests with the same number
-- are all or nothing (a failure puts back the state the unit found and marks
-- the unit's later requests status 5, not written), and units are independent
-- of one another. A single append is a unit of one; a small append_batch is
-- one unit, grouped with whatever else is waiting (store/src/postgres/append.rs).
-- Large batches (imports, seeding) keep the in-process plan of postgres/batch.rs.
--
-- Otherwise the function is 0007's, unchanged: same checks, same chain, same
-- writes. Migrations are never edited, so the new signature is a new definition.

DROP FUNCTION registre_append(boolean, text[], smallint[], bigint[], text[], text[], integer[],
                              uuid[], text[], integer[], text[], text[], timestamptz[], text[],
                              text[]);

CREATE FUNCTION registre_append(
    req_unit integer[],
    req_stream text[],
    req_expect smallint[],
    req_version bigint[],
    req_key text[],
    req_fingerprint text[],
    req_events integer[],
    ev_id uuid[],
    ev_type text[],
    ev_schema integer[],
    ev_data text[],
    ev_metadata text[],
    ev_occurred timestamptz[],
    ev_occurred_text text[],
    ev_partition text[]
) RETURNS TABLE (
    req integer,
    status smallint,
    first_position bigint,
    last_position bigint,
    version bigint,
    same_as integer,
    recorded_at timestamptz,
    hashes bytea[]
)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    head_position bigint := 0;
    head_hash bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    head_at timestamptz;
    at timestamptz;
    at_field bytea;
    stream_field bytea;
    type_bytes bytea;
    data_bytes bytea;
    metadata_bytes bytea;
    occurred_bytes bytea;
    known_stream text[] := '{}';
    known_version bigint[] := '{}';
    used_key text[] := '{}';
    used_fingerprint text[] := '{}';
    used_first bigint[] := '{}';
    used_last bigint[] := '{}';
    batch_key text[] := '{}';
    batch_fingerprint text[] := '{}';
    batch_req integer[] := '{}';
    out_position bigint[] := '{}';
    out_stream text[] := '{}';
    out_version bigint[] := '{}';
    out_index integer[] := '{}';
    out_hash bytea[] := '{}';
    key_key text[] := '{}';
    key_fingerprint text[] := '{}';
    key_first bigint[] := '{}';
    key_last bigint[] := '{}';
    i integer;
    e integer := 0;
    w integer := 0;
    k integer;
    n integer;
    slot integer;
    actual bigint;
    ok boolean;
    v bigint;
    p bigint;
    h bytea;
    req_hashes bytea[];
    requests integer := coalesce(array_length(req_stream, 1), 0);
    multi boolean := false;
    unit_failed boolean := false;
    unit_p bigint;
    unit_h bytea;
    unit_w integer;
    unit_known_stream text[];
    unit_known_version bigint[];
    unit_batch integer;
    unit_keys integer;
BEGIN
    PERFORM pg_advisory_xact_lock(5928222864759345733); -- store::postgres::APPEND_LOCK
    -- Each statement of a volatile function takes a fresh snapshot, so these
    -- reads see every append committed before the lock was granted.
    SELECT ev.position, ev.hash, ev.recorded_at INTO head_position, head_hash, head_at
      FROM events ev ORDER BY ev.position DESC LIMIT 1;
    IF NOT FOUND THEN
        head_position := 0;
        head_hash := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;
    -- recorded_at never goes backwards along the log, whatever the clocks.
    at := greatest(clock_timestamp(), head_at);
    -- RFC 3339 in UTC with microseconds and Z: chain::timestamp_text.
    at_field := convert_to(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'UTF8');
    at_field := int8send(octet_length(at_field)::bigint) || at_field;

    -- One backward index probe per stream (not max() over its rows): the cost
    -- stays flat however long the stream grows.
    SELECT coalesce(array_agg(s.stream_id), '{}'), coalesce(array_agg(s.v), '{}')
      INTO known_stream, known_version
      FROM (SELECT d.stream_id,
                   (SELECT ev.stream_version FROM events ev WHERE ev.stream_id = d.stream_id
                     ORDER BY ev.stream_version DESC LIMIT 1) AS v
              FROM (SELECT DISTINCT u.stream_id FROM unnest(req_stream) AS u(stream_id)) d) s
     WHERE s.v IS NOT NULL;
    -- Statements cost far more than expressions here: skip the ones with
    -- nothing to do.
    IF cardinality(array_remove(req_key, NULL)) > 0 THEN
        SELECT coalesce(array_agg(ik.key), '{}'), coalesce(array_agg(ik.fingerprint), '{}'),
               coalesce(array_agg(ik.first_position), '{}'), coalesce(array_agg(ik.last_position), '{}')
          INTO used_key, used_fingerprint, used_first, used_last
          FROM idempotency_keys ik WHERE ik.key = ANY(req_key);
    END IF;

    p := head_position;
    h := head_hash;
    FOR i IN 1 .. requests LOOP
        n := req_events[i];
        req := i - 1;
        same_as := NULL;
        recorded_at := NULL;
        hashes := NULL;
        -- A unit (consecutive requests with one number) is all or nothing:
        -- its state on entry is kept, and a failure puts it back.
        IF i = 1 OR req_unit[i] <> req_unit[i - 1] THEN
            unit_failed := false;
            multi := i < requests AND req_unit[i + 1] = req_unit[i];
            IF multi THEN
                unit_p := p;
                unit_h := h;
                unit_w := w;
                unit_known_stream := known_stream;
                unit_known_version := known_version;
                unit_batch := coalesce(array_length(batch_key, 1), 0);
                unit_keys := coalesce(array_length(key_key, 1), 0);
            END IF;
        END IF;
        IF unit_failed THEN
            e := e + n;
            status := 5; first_position := NULL; last_position := NULL; version := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF req_key[i] IS NOT NULL THEN
            slot := array_position(used_key, req_key[i]);
            IF slot IS NOT NULL THEN
                e := e + n;
                IF used_fingerprint[slot] <> req_fingerprint[i] THEN
                    status := 4; first_position := NULL; last_position := NULL; version := NULL;
                    RETURN NEXT;
                    IF multi THEN
                        -- The unit's earlier requests are taken back.
                        p := unit_p; h := unit_h; w := unit_w;
                        out_position := out_position[1:unit_w]; out_stream := out_stream[1:unit_w];
                        out_version := out_version[1:unit_w]; out_index := out_index[1:unit_w];
                        out_hash := out_hash[1:unit_w];
                        known_stream := unit_known_stream; known_version := unit_known_version;
                        batch_key := batch_key[1:unit_batch];
                        batch_fingerprint := batch_fingerprint[1:unit_batch];
                        batch_req := batch_req[1:unit_batch];
                        key_key := key_key[1:unit_keys]; key_fingerprint := key_fingerprint[1:unit_keys];
                        key_first := key_first[1:unit_keys]; key_last := key_last[1:unit_keys];
                        unit_failed := true;
                    END IF;
                    CONTINUE;
                END IF;
                status := 1; first_position := used_first[slot]; last_position := used_last[slot];
                version := NULL;
                RETURN NEXT;
                CONTINUE;
            END IF;
            slot := array_position(batch_key, req_key[i]);
            IF slot IS NOT NULL THEN
                e := e + n;
                first_position := NULL; last_position := NULL; version := NULL;
                IF batch_fingerprint[slot] <> req_fingerprint[i] THEN
                    status := 4;
                    RETURN NEXT;
                    IF multi THEN
                        -- The unit's earlier requests are taken back.
                        p := unit_p; h := unit_h; w := unit_w;
                        out_position := out_position[1:unit_w]; out_stream := out_stream[1:unit_w];
                        out_version := out_version[1:unit_w]; out_index := out_index[1:unit_w];
                        out_hash := out_hash[1:unit_w];
                        known_stream := unit_known_stream; known_version := unit_known_version;
                        batch_key := batch_key[1:unit_batch];
                        batch_fingerprint := batch_fingerprint[1:unit_batch];
                        batch_req := batch_req[1:unit_batch];
                        key_key := key_key[1:unit_keys]; key_fingerprint := key_fingerprint[1:unit_keys];
                        key_first := key_first[1:unit_keys]; key_last := key_last[1:unit_keys];
                        unit_failed := true;
                    END IF;
                    CONTINUE;
                END IF;
                status := 2; same_as := batch_req[slot];
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        slot := array_position(known_stream, req_stream[i]);
        actual := CASE WHEN slot IS NULL THEN 0 ELSE known_version[slot] END;
        ok := CASE req_expect[i]
                WHEN 0 THEN true
                WHEN 1 THEN actual = 0
                ELSE actual = req_version[i]
              END;
        IF NOT ok THEN
            e := e + n;
            status := 3; first_position := NULL; last_position := NULL; version := actual;
            RETURN NEXT;
            IF multi THEN
                        -- The unit's earlier requests are taken back.
                        p := unit_p; h := unit_h; w := unit_w;
                        out_position := out_position[1:unit_w]; out_stream := out_stream[1:unit_w];
                        out_version := out_version[1:unit_w]; out_index := out_index[1:unit_w];
                        out_hash := out_hash[1:unit_w];
                        known_stream := unit_known_stream; known_version := unit_known_version;
                        batch_key := batch_key[1:unit_batch];
                        batch_fingerprint := batch_fingerprint[1:unit_batch];
                        batch_req := batch_req[1:unit_batch];
                        key_key := key_key[1:unit_keys]; key_fingerprint := key_fingerprint[1:unit_keys];
                        key_first := key_first[1:unit_keys]; key_last := key_last[1:unit_keys];
                        unit_failed := true;
                    END IF;
            CONTINUE;
        END IF;

        v := actual;
        req_hashes := '{}';
        stream_field := convert_to(req_stream[i], 'UTF8');
        stream_field := int8send(octet_length(stream_field)::bigint) || stream_field;
        FOR k IN 1 .. n LOOP
            e := e + 1;
            p := p + 1;
            v := v + 1;
            type_bytes := convert_to(ev_type[e], 'UTF8');
            data_bytes := convert_to(ev_data[e], 'UTF8');
            metadata_bytes := convert_to(ev_metadata[e], 'UTF8');
            occurred_bytes := convert_to(ev_occurred_text[e], 'UTF8');
            -- Written out inline (no helper function): a SQL function called
            -- from PL/pgSQL runs as a statement of its own, ten per event.
            -- Fixed-size fields have constant length prefixes (8 and 16).
            h := sha256(
                h
                || '\x0000000000000008'::bytea || int8send(p)
                || stream_field
                || '\x0000000000000008'::bytea || int8send(v)
                || '\x0000000000000010'::bytea || uuid_send(ev_id[e])
                || int8send(octet_length(type_bytes)::bigint) || type_bytes
                || '\x0000000000000008'::bytea || int8send(ev_schema[e]::bigint)
                || int8send(octet_length(data_bytes)::bigint) || data_bytes
                || int8send(octet_length(metadata_bytes)::bigint) || metadata_bytes
                || int8send(octet_length(occurred_bytes)::bigint) || occurred_bytes
                || at_field);
            -- Element assignment, not `||`: PL/pgSQL updates the array in
            -- place instead of copying it once per event.
            req_hashes[k] := h;
            w := w + 1;
            out_position[w] := p;
            out_stream[w] := req_stream[i];
            out_version[w] := v;
            out_index[w] := e;
            out_hash[w] := h;
        END LOOP;
        IF slot IS NULL THEN
            known_stream := known_stream || req_stream[i];
            known_version := known_version || v;
        ELSE
            known_version[slot] := v;
        END IF;
        IF req_key[i] IS NOT NULL THEN
            batch_key := batch_key || req_key[i];
            batch_fingerprint := batch_fingerprint || req_fingerprint[i];
            batch_req := batch_req || (i - 1);
            -- A request that wrote nothing has no positions to remember: its
            -- retry re-checks the expected version and writes nothing either.
            IF n > 0 THEN
                key_key := key_key || req_key[i];
                key_fingerprint := key_fingerprint || req_fingerprint[i];
                key_first := key_first || (p - n + 1);
                key_last := key_last || p;
            END IF;
        END IF;
        status := 0;
        first_position := p - n + 1;
        last_position := p;
        version := actual;
        recorded_at := at;
        hashes := req_hashes;
        RETURN NEXT;
    END LOOP;

    INSERT INTO events (position, stream_id, stream_version, event_id, event_type,
                        schema_version, data, metadata, occurred_at, recorded_at, hash,
                        partition)
    SELECT w.position, w.stream_id, w.version, ev_id[w.idx], ev_type[w.idx],
           ev_schema[w.idx], ev_data[w.idx], ev_metadata[w.idx], ev_occurred[w.idx], at, w.hash,
           ev_partition[w.idx]
      FROM unnest(out_position, out_stream, out_version, out_index, out_hash)
           AS w(position, stream_id, version, idx, hash);
    IF cardinality(key_key) > 0 THEN
        INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position)
        SELECT * FROM unnest(key_key, key_fingerprint, key_first, key_last);
    END IF;
END;
$$;
