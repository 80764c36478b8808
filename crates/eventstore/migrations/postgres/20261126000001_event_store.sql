-- Event store: streams, events in $all order, checkpoints and snapshots.
--
-- position = (id of the writing transaction << 16) + ordinal within that transaction, so a
-- reader that only reads below pg_snapshot_xmin(pg_current_snapshot()) << 16 never passes an
-- event that a still-running (older) transaction will commit later.
CREATE TABLE IF NOT EXISTS es_streams (
    stream_id TEXT PRIMARY KEY,
    version   BIGINT NOT NULL CHECK (version > 0)
);

CREATE TABLE IF NOT EXISTS es_events (
    position    BIGINT PRIMARY KEY,
    event_id    UUID NOT NULL UNIQUE,
    stream_id   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    event_type  TEXT NOT NULL,
    data        JSONB NOT NULL,
    metadata    JSONB NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);

CREATE TABLE IF NOT EXISTS es_checkpoints (
    name       TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS es_snapshots (
    stream_id TEXT PRIMARY KEY,
    version   BIGINT NOT NULL,
    state     JSONB NOT NULL,
    taken_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
