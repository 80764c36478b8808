-- Group commit: the appends of several callers in one transaction (one round trip, one WAL
-- flush). Each group is what one es_append_multi call does (streams in the order given,
-- callers sort each group's streams by id), run in its own subtransaction, so a refused group
-- writes nothing and the others still commit. Events of all groups are concatenated in order;
-- groups[g] is the number of streams of group g, counts[i] the number of events of stream i.
--
-- Returns one row per stream of each group that was written (refusal NULL), and one row with
-- refusal '23505' (a reused event id) or 'ES409' (a version mismatch; detail: the stream's
-- 1-based place in its group) for each refused group. Any other error fails the whole call.
-- Callers keep batches under 64 groups: more subtransactions would overflow every backend's
-- snapshot cache.
CREATE OR REPLACE FUNCTION es_append_batch(
    groups   INT[],
    streams  TEXT[],
    kinds    SMALLINT[],
    expected BIGINT[],
    counts   INT[],
    ids      UUID[],
    types    TEXT[],
    datas    JSONB[],
    metas    JSONB[]
) RETURNS TABLE (grp INT, stream_version BIGINT, first_position BIGINT, last_position BIGINT,
                 refusal TEXT, detail TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    xid    BIGINT := pg_current_xact_id()::text::bigint;
    base   BIGINT;
    s0     INT := 0;   -- streams before the current group
    e0     INT := 0;   -- events before the current group
    offs   INT;
    i      INT;
    n      INT;
    v      BIGINT;
    vs     BIGINT[];
    place  TEXT;
BEGIN
    SELECT coalesce(max(e.position), xid << 16) INTO base
      FROM es_events e
     WHERE e.position > (xid << 16) AND e.position < ((xid + 1) << 16);
    FOR g IN 1 .. coalesce(array_length(groups, 1), 0) LOOP
        offs := e0;
        vs := '{}';
        BEGIN
            FOR j IN 1 .. groups[g] LOOP
                i := s0 + j;
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
                    RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'ES409', DETAIL = j::text;
                END IF;
                INSERT INTO es_events (position, event_id, stream_id, version, event_type, data, metadata)
                SELECT base + offs + e.ord, e.id, streams[i], v - n + e.ord, e.ty, e.data, e.meta
                  FROM UNNEST(ids[offs + 1 : offs + n], types[offs + 1 : offs + n],
                              datas[offs + 1 : offs + n], metas[offs + 1 : offs + n])
                       WITH ORDINALITY AS e(id, ty, data, meta, ord);
                vs := vs || v;
                offs := offs + n;
            END LOOP;
            -- Written: one row per stream.
            offs := e0;
            FOR j IN 1 .. groups[g] LOOP
                n := counts[s0 + j];
                grp := g;
                stream_version := vs[j];
                first_position := base + offs + 1;
                last_position := base + offs + n;
                refusal := NULL;
                detail := NULL;
                RETURN NEXT;
                offs := offs + n;
            END LOOP;
        EXCEPTION
            WHEN unique_violation THEN
                grp := g; stream_version := NULL; first_position := NULL; last_position := NULL;
                refusal := '23505'; detail := NULL;
                RETURN NEXT;
            WHEN SQLSTATE 'ES409' THEN
                GET STACKED DIAGNOSTICS place = PG_EXCEPTION_DETAIL;
                grp := g; stream_version := NULL; first_position := NULL; last_position := NULL;
                refusal := 'ES409'; detail := place;
                RETURN NEXT;
        END;
        FOR j IN 1 .. groups[g] LOOP
            e0 := e0 + counts[s0 + j];
        END LOOP;
        s0 := s0 + groups[g];
    END LOOP;
END
$$;
