-- es_append_batch's statements take array arguments, for which the planner's custom plans are
-- no better than its generic ones (the arrays' contents do not change the plans), yet it kept
-- planning some of them anew on every call: pg_stat_statements with track_planning showed its
-- result query replanned on 4,103 of 6,149 calls in the ordering benchmark. Planning once per
-- connection is enough.
ALTER FUNCTION es_append_batch(INT[], TEXT[], SMALLINT[], BIGINT[], INT[], UUID[], TEXT[],
                               JSONB[], JSONB[], INT)
    SET plan_cache_mode = force_generic_plan;
