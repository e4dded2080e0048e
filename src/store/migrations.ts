// Schema versions, applied in order; user_version records how far a database got. Never edit a
// shipped entry: add a new one.
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  -- the update in flight, at most one row; absent = idle
  CREATE TABLE current_update (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL);
  CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    update_id TEXT NOT NULL, kind TEXT NOT NULL, from_version TEXT NOT NULL, to_version TEXT NOT NULL,
    result TEXT NOT NULL, reason TEXT, message TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT NOT NULL, record TEXT NOT NULL);
  CREATE TABLE transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, update_id TEXT NOT NULL,
    from_state TEXT NOT NULL, event TEXT NOT NULL, to_state TEXT NOT NULL, at TEXT NOT NULL);
  CREATE INDEX transitions_update ON transitions(update_id);
  -- events waiting for the broker's PUBACK, in order
  CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
    payload TEXT NOT NULL, created_at TEXT NOT NULL);
  -- replay protection: highest accepted sequence per compatible/channel (and per device for commands)
  CREATE TABLE sequence_marks (channel TEXT PRIMARY KEY, sequence INTEGER NOT NULL);
  -- last decided envelope per topic, so a retained re-delivery is recognised quietly
  CREATE TABLE topic_digests (topic TEXT PRIMARY KEY, digest TEXT NOT NULL);
  -- announcements that arrived while another update was in flight (newest per topic wins)
  CREATE TABLE queued_announcements (topic TEXT PRIMARY KEY, raw BLOB NOT NULL, received_at TEXT NOT NULL);
  -- recent decisions on incoming messages, for status/history (bounded)
  CREATE TABLE decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, topic TEXT NOT NULL, subject TEXT,
    decision TEXT NOT NULL, reason TEXT, message TEXT NOT NULL);
  `,
  // 2: the history is pruned to limits.historyKeep updates (AgentStore.pruneHistory). Admission's
  // PREVIOUSLY_REVERTED reads the history, so the id of a reverted update outlives its pruned row here
  // (a few dozen bytes each, bounded by MAX_REVERTED_IDS).
  `
  CREATE TABLE reverted_updates (update_id TEXT PRIMARY KEY, finished_at TEXT NOT NULL);
  `,
];
