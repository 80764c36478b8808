-- Event store (embedded): writers are serialised by SQLite, so rowid order is commit order.
CREATE TABLE IF NOT EXISTS es_streams (
    stream_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL CHECK (version > 0)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS es_events (
    position    INTEGER PRIMARY KEY,
    event_id    BLOB NOT NULL UNIQUE,
    stream_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    event_type  TEXT NOT NULL,
    data        TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE TABLE IF NOT EXISTS es_checkpoints (
    name       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS es_snapshots (
    stream_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    state     TEXT NOT NULL,
    taken_at  TEXT NOT NULL
) WITHOUT ROWID;
