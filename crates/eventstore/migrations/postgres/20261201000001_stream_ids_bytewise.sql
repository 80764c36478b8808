-- Stream ids compare byte by byte (collation "C") instead of by the database's locale.
--
-- Stream ids are opaque keys: nothing sorts them for people to read. Under a locale collation
-- (the default of most clusters, en_US.UTF-8 on RDS, and even C.UTF-8 on PostgreSQL 15) every
-- comparison in the stream indexes goes through strcoll() on copies of both strings; in the
-- ordering benchmark the group-commit writer's busiest functions were those comparisons
-- (_bt_compare, varstr_cmp, strcoll, strcmp). With "C" they are one memcmp.
--
-- Changing only the collation rewrites no table, but rebuilds the indexes on these columns
-- under an exclusive lock: on a large store, run this migration in a quiet moment. A busy
-- table fails the migration (and the start) after 10 s rather than queueing every append
-- behind the lock. The collation is part of the result type of the statements that read
-- these columns, and Postgres refuses a cached statement whose result type changed ("cached
-- plan must not change result type"): processes of an older release must not run on after
-- this migration (their pooled connections would fail those reads until replaced).
SET LOCAL lock_timeout = '10s';
ALTER TABLE es_streams ALTER COLUMN stream_id TYPE TEXT COLLATE "C";
ALTER TABLE es_events ALTER COLUMN stream_id TYPE TEXT COLLATE "C";
ALTER TABLE es_snapshots ALTER COLUMN stream_id TYPE TEXT COLLATE "C";
