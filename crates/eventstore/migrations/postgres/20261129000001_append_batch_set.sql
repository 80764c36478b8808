-- Group commit, set-based: es_append_batch first writes the whole batch with a few statements
-- over all its streams and events at once, in one subtransaction. Per group it used to run
-- es_append_multi in a subtransaction of its own, which cost a dozen statements and slices of
-- every argument array per group: most of the database's time in the ordering benchmark.
--
-- The set-based write is taken when no stream appears twice in the batch. Should any group be
-- refused (a version mismatch, a reused event id, a stream created or written meanwhile, a
-- stream locked past lock_wait_ms) or anything else fail, the subtransaction is rolled back
-- and the groups are written one by one as before, which finds out which groups were refused
-- and writes the others. The contract (arguments, rows returned, positions) is the one of
-- 20261128000001_append_batch.sql, whose function stays, renamed es_append_each, as that
-- append-by-append path.
ALTER FUNCTION es_append_batch(INT[], TEXT[], SMALLINT[], BIGINT[], INT[], UUID[], TEXT[],
                               JSONB[], JSONB[], INT)
    RENAME TO es_append_each;

CREATE FUNCTION es_append_batch(
    groups   INT[],
    streams  TEXT[],
    kinds    SMALLINT[],
    expected BIGINT[],
    counts   INT[],
    ids      UUID[],
    types    TEXT[],
    datas    JSONB[],
    metas    JSONB[],
    lock_wait_ms INT
) RETURNS TABLE (grp INT, stream_version BIGINT, first_position BIGINT, last_position BIGINT,
                 refusal TEXT, detail TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    total   INT := coalesce(array_length(streams, 1), 0);
    xid     BIGINT;
    base    BIGINT;
    refused BOOLEAN;
    missing INT;
    created INT;
    versions BIGINT[];  -- each stream's version after the batch
    absent   BOOLEAN[]; -- each stream's row did not exist
    present  TEXT[];    -- streams whose row exists, in id order
    moved    INT;
    written  BOOLEAN := false;
BEGIN
    PERFORM set_config('lock_timeout', lock_wait_ms || 'ms', true);
    IF total > 0 AND total = (SELECT count(DISTINCT s) FROM unnest(streams) AS s) THEN
        BEGIN
            -- One index lookup per stream (a join would let the planner scan every stream).
            SELECT bool_or((c.kd = 1 AND c.v IS NOT NULL)
                        OR (c.kd = 2 AND c.v IS NULL)
                        OR (c.kd = 3 AND c.v IS DISTINCT FROM c.ex)),
                   array_agg(coalesce(c.v, 0) + c.n ORDER BY c.i),
                   array_agg(c.v IS NULL ORDER BY c.i),
                   array_agg(c.st ORDER BY c.st) FILTER (WHERE c.v IS NOT NULL),
                   count(*) FILTER (WHERE c.v IS NULL)
              INTO refused, versions, absent, present, missing
              FROM (SELECT u.st, u.kd, u.ex, u.n, u.i,
                           (SELECT s.version FROM es_streams s WHERE s.stream_id = u.st) AS v
                      FROM unnest(streams, kinds, expected, counts)
                           WITH ORDINALITY AS u(st, kd, ex, n, i)) c;
            IF refused THEN
                RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'ES409';
            END IF;
            IF missing > 0 THEN
                INSERT INTO es_streams (stream_id, version)
                SELECT u.st, u.v FROM unnest(streams, versions, absent) AS u(st, v, a) WHERE u.a
                ON CONFLICT (stream_id) DO NOTHING;
                GET DIAGNOSTICS created = ROW_COUNT;
                IF created <> missing THEN
                    RAISE EXCEPTION 'stream created meanwhile' USING ERRCODE = 'ES409';
                END IF;
            END IF;
            IF missing < total THEN
                -- Rows are locked in stream id order (the index's); a stream another
                -- transaction moved since the lookup above is not matched.
                UPDATE es_streams s
                   SET version = versions[array_position(streams, s.stream_id)]
                 WHERE s.stream_id = ANY (present)
                   AND s.version = versions[array_position(streams, s.stream_id)]
                                   - counts[array_position(streams, s.stream_id)];
                GET DIAGNOSTICS moved = ROW_COUNT;
                IF moved <> total - missing THEN
                    RAISE EXCEPTION 'stream written meanwhile' USING ERRCODE = 'ES409';
                END IF;
            END IF;
            xid := pg_current_xact_id()::text::bigint;
            SELECT coalesce(max(e.position), xid << 16) INTO base
              FROM es_events e
             WHERE e.position > (xid << 16) AND e.position < ((xid + 1) << 16);
            INSERT INTO es_events (position, event_id, stream_id, version, event_type, data, metadata)
            SELECT base + e.ord, e.id, m.st, m.v - m.n + (e.ord - m.off), e.ty, e.data, e.meta
              FROM unnest(ids, types, datas, metas) WITH ORDINALITY AS e(id, ty, data, meta, ord)
              JOIN (SELECT u.st, u.v, u.n, sum(u.n) OVER (ORDER BY u.i) - u.n AS off
                      FROM unnest(streams, versions, counts) WITH ORDINALITY AS u(st, v, n, i)) m
                ON e.ord > m.off AND e.ord <= m.off + m.n;
            written := true;
        EXCEPTION
            WHEN OTHERS THEN
                written := false;
        END;
    END IF;
    IF written THEN
        RETURN QUERY
        SELECT x.g::int, u.v, base + u.off + 1, base + u.off + u.n, NULL::text, NULL::text
          FROM (SELECT x.g, row_number() OVER (ORDER BY x.g, j.j) AS i
                  FROM unnest(groups) WITH ORDINALITY AS x(k, g),
                       generate_series(1, x.k) AS j(j)) x
          JOIN (SELECT u.i, u.v, u.n, sum(u.n) OVER (ORDER BY u.i) - u.n AS off
                  FROM unnest(versions, counts) WITH ORDINALITY AS u(v, n, i)) u
            ON u.i = x.i
         ORDER BY u.i;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT * FROM es_append_each(groups, streams, kinds, expected, counts, ids, types, datas,
                                 metas, lock_wait_ms);
END
$$;
