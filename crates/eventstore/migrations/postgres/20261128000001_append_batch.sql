-- Group commit: the appends of several callers in one transaction (one round trip, one WAL
-- flush). Each group is one es_append_multi call (streams in the order given: callers sort
-- each group's streams by id) in its own subtransaction, so a refused group writes nothing and
-- the others still commit; positions go on from the transaction's last one, as in
-- es_append_multi. Events of all groups are concatenated in order; groups[g] is the number of
-- streams of group g, counts[i] the number of events of stream i.
--
-- Returns one row per stream of each group that was written (refusal NULL), and one row with
-- refusal '23505' (a reused event id), 'ES409' (a version mismatch; detail: the stream's
-- 1-based place in its group) or '55P03' (a stream locked by another transaction for longer
-- than lock_wait_ms: the caller writes that group alone) for each group not written. Any other
-- error fails the whole call. The lock timeout keeps one locked stream from holding every
-- other writer's appends behind it. Callers keep batches under 64 groups: more
-- subtransactions would overflow every backend's snapshot cache.
CREATE OR REPLACE FUNCTION es_append_batch(
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
    s0    INT := 0;   -- streams before the current group
    e0    INT := 0;   -- events before the current group
    k     INT;
    n     INT;
    place TEXT;
BEGIN
    PERFORM set_config('lock_timeout', lock_wait_ms || 'ms', true);
    FOR g IN 1 .. coalesce(array_length(groups, 1), 0) LOOP
        k := groups[g];
        SELECT coalesce(sum(c), 0) INTO n FROM unnest(counts[s0 + 1 : s0 + k]) AS c;
        BEGIN
            -- The function finishes (or raises) before its rows are added to this result.
            RETURN QUERY
            SELECT g, m.stream_version, m.first_position, m.last_position, NULL::text, NULL::text
              FROM es_append_multi(streams[s0 + 1 : s0 + k], kinds[s0 + 1 : s0 + k],
                                   expected[s0 + 1 : s0 + k], counts[s0 + 1 : s0 + k],
                                   ids[e0 + 1 : e0 + n], types[e0 + 1 : e0 + n],
                                   datas[e0 + 1 : e0 + n], metas[e0 + 1 : e0 + n]) AS m;
        EXCEPTION
            WHEN unique_violation THEN
                RETURN QUERY SELECT g, NULL::bigint, NULL::bigint, NULL::bigint, '23505'::text, NULL::text;
            WHEN lock_not_available THEN
                RETURN QUERY SELECT g, NULL::bigint, NULL::bigint, NULL::bigint, '55P03'::text, NULL::text;
            WHEN SQLSTATE 'ES409' THEN
                GET STACKED DIAGNOSTICS place = PG_EXCEPTION_DETAIL;
                RETURN QUERY SELECT g, NULL::bigint, NULL::bigint, NULL::bigint, 'ES409'::text, place;
        END;
        s0 := s0 + k;
        e0 := e0 + n;
    END LOOP;
END
$$;
