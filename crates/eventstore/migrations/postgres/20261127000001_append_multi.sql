-- A multi-stream append in one statement (one round trip, no transaction left open while the
-- client talks): streams are moved to their new versions in the order given (callers sort by
-- stream id, so two multi-appends never deadlock), then each stream's events are inserted with
-- positions derived from the transaction id as in the single-stream append.
--
-- kinds: 0 any, 1 no stream, 2 stream exists, 3 exact (expected[i]). Events are given
-- concatenated in stream order, counts[i] of them for stream i. A version mismatch raises
-- SQLSTATE 'ES409' with the stream's index (1-based) as its detail; a reused event id raises
-- 23505. Either way nothing is written.
CREATE OR REPLACE FUNCTION es_append_multi(
    streams  TEXT[],
    kinds    SMALLINT[],
    expected BIGINT[],
    counts   INT[],
    ids      UUID[],
    types    TEXT[],
    datas    JSONB[],
    metas    JSONB[]
) RETURNS TABLE (stream_version BIGINT, first_position BIGINT, last_position BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    xid  BIGINT := pg_current_xact_id()::text::bigint;
    base BIGINT;
    offs INT := 0;
    n    INT;
    v    BIGINT;
BEGIN
    SELECT coalesce(max(e.position), xid << 16) INTO base
      FROM es_events e
     WHERE e.position > (xid << 16) AND e.position < ((xid + 1) << 16);
    FOR i IN 1 .. coalesce(array_length(streams, 1), 0) LOOP
        n := counts[i];
        v := NULL;
        IF kinds[i] = 0 THEN
            INSERT INTO es_streams AS s (stream_id, version) VALUES (streams[i], n)
            ON CONFLICT (stream_id) DO UPDATE SET version = s.version + n
            RETURNING s.version INTO v;
        ELSIF kinds[i] = 1 THEN
            INSERT INTO es_streams (stream_id, version) VALUES (streams[i], n)
            ON CONFLICT (stream_id) DO NOTHING
            RETURNING es_streams.version INTO v;
        ELSIF kinds[i] = 2 THEN
            UPDATE es_streams s SET version = s.version + n
             WHERE s.stream_id = streams[i]
            RETURNING s.version INTO v;
        ELSE
            UPDATE es_streams s SET version = s.version + n
             WHERE s.stream_id = streams[i] AND s.version = expected[i]
            RETURNING s.version INTO v;
        END IF;
        IF v IS NULL THEN
            RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'ES409', DETAIL = i::text;
        END IF;
        INSERT INTO es_events (position, event_id, stream_id, version, event_type, data, metadata)
        SELECT base + offs + e.ord, e.id, streams[i], v - n + e.ord, e.ty, e.data, e.meta
          FROM UNNEST(ids[offs + 1 : offs + n], types[offs + 1 : offs + n],
                      datas[offs + 1 : offs + n], metas[offs + 1 : offs + n])
               WITH ORDINALITY AS e(id, ty, data, meta, ord);
        stream_version := v;
        first_position := base + offs + 1;
        last_position := base + offs + n;
        RETURN NEXT;
        offs := offs + n;
    END LOOP;
END
$$;
