// Everything the agent persists, behind one class. Each lifecycle transition goes through
// `commitTransition`, which writes the new record, the transition log row and the outgoing event in
// one transaction: after a crash either all of it happened or none of it did. The history is bounded:
// the transaction that records a finished update also deletes the oldest ones beyond `historyKeep`.
import type { UpdateRecord } from '../core/update-record.js';
import type { DeviceEvent } from '../schemas/device-messages.js';
import type Database from 'better-sqlite3';
import { openDatabase, type Db } from './database.js';
import { crashPoint } from '../agent/crash-points.js';

export interface OutboxRow {
  seq: number;
  eventId: string;
  topic: string;
  payload: string;
}

export interface HistoryRow {
  updateId: string;
  kind: string;
  fromVersion: string;
  toVersion: string;
  result: string;
  reason: string | null;
  message: string;
  startedAt: string;
  finishedAt: string;
}

export interface DecisionRow {
  at: string;
  topic: string;
  subject: string | null;
  decision: string;
  reason: string | null;
  message: string;
}

export interface TransitionRow {
  updateId: string;
  from: string;
  event: string;
  to: string;
  at: string;
}

const MAX_DECISIONS = 500;
/** Default of limits.historyKeep (src/config/schema.ts): finished updates kept with their transitions. */
export const DEFAULT_HISTORY_KEEP = 100;
/** Ids of reverted updates remembered after their history row is pruned (PREVIOUSLY_REVERTED); ~60 bytes each. */
const MAX_REVERTED_IDS = 1000;

export class AgentStore {
  readonly db: Db;
  /** Each SQL text is prepared once: +28% decisions/s on the message path (bench/perf-run.ts, docs/performance.md). */
  private readonly statements = new Map<string, Database.Statement<unknown[]>>();

  private readonly historyKeep: number;

  /** `historyKeep`: limits.historyKeep; the agent passes its config's value. */
  constructor(path: string, opts: { readonly?: boolean; historyKeep?: number } = {}) {
    this.db = openDatabase(path, opts);
    this.historyKeep = opts.historyKeep ?? DEFAULT_HISTORY_KEEP;
  }

  close(): void {
    this.statements.clear();
    this.db.close();
  }

  private prepare(sql: string): Database.Statement<unknown[]> {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  current(): UpdateRecord | null {
    const row = this.prepare('SELECT record FROM current_update WHERE id = 1').get() as { record: string } | undefined;
    return row ? (JSON.parse(row.record) as UpdateRecord) : null;
  }

  /** Persists a record without a transition (e.g. the resume counter). */
  saveRecord(record: UpdateRecord): void {
    this.prepare('INSERT INTO current_update (id, record) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET record = excluded.record').run(JSON.stringify(record));
  }

  /**
   * One lifecycle step, atomically: the record (or null when the update is closed), the transition
   * log, the events to publish, and the history row when an update ends.
   */
  commitTransition(args: {
    record: UpdateRecord | null;
    transition: TransitionRow;
    events: Array<Omit<DeviceEvent, 'seq'>>;
    topic: string;
    history?: HistoryRow;
  }): DeviceEvent[] {
    const t = args.transition;
    // Fault injection for tests/faults (inert unless OTA_AGENT_CRASH_AT is set): src/agent/crash-points.ts.
    const nested = this.db.inTransaction;
    crashPoint('before', t.from, t.to, t.event, nested);
    const events = this.db.transaction(() => {
      if (args.record) this.saveRecord(args.record);
      else this.prepare('DELETE FROM current_update WHERE id = 1').run();
      this.prepare('INSERT INTO transitions (update_id, from_state, event, to_state, at) VALUES (?, ?, ?, ?, ?)').run(t.updateId, t.from, t.event, t.to, t.at);
      if (args.history) {
        this.insertHistory(args.history, args.record);
        this.pruneHistory();
      }
      return args.events.map((e) => this.enqueueEvent(args.topic, e));
    })();
    crashPoint('after', t.from, t.to, t.event, nested);
    return events;
  }

  private insertHistory(h: HistoryRow, record: UpdateRecord | null): void {
    this
      .prepare(
        `INSERT INTO history (update_id, kind, from_version, to_version, result, reason, message, started_at, finished_at, record)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(h.updateId, h.kind, h.fromVersion, h.toVersion, h.result, h.reason, h.message, h.startedAt, h.finishedAt, JSON.stringify(record ?? {}));
  }

  /**
   * Keeps the newest `historyKeep` history rows; older rows go, with their transitions. Runs in the
   * transaction that inserted a history row, so the database stops growing once the cap is reached
   * (freed pages are reused). Transitions are kept for any update id that still has a kept history
   * row (an id tried twice) and for the update in flight, whatever its id. The id of a pruned reverted
   * update is remembered in reverted_updates so that admission still refuses to try it again.
   */
  private pruneHistory(): void {
    const cutoff = this.prepare('SELECT id FROM history ORDER BY id DESC LIMIT 1 OFFSET ?').get(this.historyKeep - 1) as { id: number } | undefined;
    if (!cutoff) return; // not more than historyKeep rows yet
    // Only rows older than the newest `historyKeep` (id < cutoff.id) are touched.
    this
      .prepare("INSERT OR IGNORE INTO reverted_updates (update_id, finished_at) SELECT update_id, finished_at FROM history WHERE id < ? AND result = 'reverted' ORDER BY id")
      .run(cutoff.id);
    this.prepare('DELETE FROM reverted_updates WHERE rowid <= (SELECT MAX(rowid) FROM reverted_updates) - ?').run(MAX_REVERTED_IDS);
    this
      .prepare(
        `DELETE FROM transitions WHERE update_id IN (SELECT update_id FROM history WHERE id < @cutoff)
           AND update_id NOT IN (SELECT update_id FROM history WHERE id >= @cutoff)
           AND update_id <> COALESCE((SELECT json_extract(record, '$.updateId') FROM current_update WHERE id = 1), '')`,
      )
      .run({ cutoff: cutoff.id });
    this.prepare('DELETE FROM history WHERE id < ?').run(cutoff.id);
  }

  /** Adds an event to the outbox with the next per-device sequence number. Call inside a transaction. */
  enqueueEvent(topic: string, e: Omit<DeviceEvent, 'seq'>): DeviceEvent {
    const seq = this.nextEventSeq();
    const event = { ...e, seq } as DeviceEvent;
    this.prepare('INSERT INTO outbox (seq, event_id, topic, payload, created_at) VALUES (?, ?, ?, ?, ?)').run(seq, e.eventId, topic, JSON.stringify(event), e.at);
    return event;
  }

  /** An event outside a lifecycle transition (a refusal, a check report), with its decision row. */
  recordEvent(topic: string, e: Omit<DeviceEvent, 'seq'>, decision?: DecisionRow): DeviceEvent {
    return this.db.transaction(() => {
      if (decision) this.addDecision(decision);
      return this.enqueueEvent(topic, e);
    })();
  }

  private nextEventSeq(): number {
    const row = this.prepare("SELECT value FROM meta WHERE key = 'event_seq'").get() as { value: string } | undefined;
    const next = (row ? Number(row.value) : 0) + 1;
    this.prepare("INSERT INTO meta (key, value) VALUES ('event_seq', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(next));
    return next;
  }

  outboxPeek(limit: number): OutboxRow[] {
    return this.prepare('SELECT seq, event_id AS eventId, topic, payload FROM outbox ORDER BY seq LIMIT ?').all(limit) as OutboxRow[];
  }

  outboxAck(seq: number): void {
    this.prepare('DELETE FROM outbox WHERE seq = ?').run(seq);
  }

  outboxSize(): number {
    return (this.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n;
  }

  lastSequence(channel: string): number | undefined {
    const row = this.prepare('SELECT sequence FROM sequence_marks WHERE channel = ?').get(channel) as { sequence: number } | undefined;
    return row?.sequence;
  }

  advanceSequence(channel: string, sequence: number): void {
    this
      .prepare('INSERT INTO sequence_marks (channel, sequence) VALUES (?, ?) ON CONFLICT(channel) DO UPDATE SET sequence = MAX(sequence, excluded.sequence)')
      .run(channel, sequence);
  }

  lastDigest(topic: string): string | undefined {
    const row = this.prepare('SELECT digest FROM topic_digests WHERE topic = ?').get(topic) as { digest: string } | undefined;
    return row?.digest;
  }

  setDigest(topic: string, digest: string): void {
    this.prepare('INSERT INTO topic_digests (topic, digest) VALUES (?, ?) ON CONFLICT(topic) DO UPDATE SET digest = excluded.digest').run(topic, digest);
  }

  clearDigest(topic: string): void {
    this.prepare('DELETE FROM topic_digests WHERE topic = ?').run(topic);
  }

  queueAnnouncement(topic: string, raw: Uint8Array, at: string): void {
    this
      .prepare('INSERT INTO queued_announcements (topic, raw, received_at) VALUES (?, ?, ?) ON CONFLICT(topic) DO UPDATE SET raw = excluded.raw, received_at = excluded.received_at')
      .run(topic, Buffer.from(raw), at);
  }

  takeQueuedAnnouncements(): Array<{ topic: string; raw: Buffer }> {
    return this.db.transaction(() => {
      const rows = this.prepare('SELECT topic, raw FROM queued_announcements ORDER BY received_at').all() as Array<{ topic: string; raw: Buffer }>;
      this.prepare('DELETE FROM queued_announcements').run();
      return rows;
    })();
  }

  addDecision(d: DecisionRow): void {
    this.prepare('INSERT INTO decisions (at, topic, subject, decision, reason, message) VALUES (?, ?, ?, ?, ?, ?)').run(d.at, d.topic, d.subject, d.decision, d.reason, d.message);
    this.prepare('DELETE FROM decisions WHERE id <= (SELECT MAX(id) FROM decisions) - ?').run(MAX_DECISIONS);
  }

  decisions(limit: number): DecisionRow[] {
    return this.prepare('SELECT at, topic, subject, decision, reason, message FROM decisions ORDER BY id DESC LIMIT ?').all(limit) as DecisionRow[];
  }

  history(limit: number): HistoryRow[] {
    return this
      .prepare(
        `SELECT update_id AS updateId, kind, from_version AS fromVersion, to_version AS toVersion, result, reason, message,
                started_at AS startedAt, finished_at AS finishedAt FROM history ORDER BY id DESC LIMIT ?`,
      )
      .all(limit) as HistoryRow[];
  }

  transitions(updateId: string): TransitionRow[] {
    return this.prepare('SELECT update_id AS updateId, from_state AS "from", event, to_state AS "to", at FROM transitions WHERE update_id = ? ORDER BY id').all(updateId) as TransitionRow[];
  }

  wasReverted(updateId: string): boolean {
    if (this.prepare("SELECT 1 FROM history WHERE update_id = ? AND result = 'reverted' LIMIT 1").get(updateId) !== undefined) return true;
    // A read-only tool may open a database the (older) agent has not migrated yet: no such table then.
    if (!this.hasRevertedTable()) return false;
    return this.prepare('SELECT 1 FROM reverted_updates WHERE update_id = ?').get(updateId) !== undefined;
  }

  private revertedTable: boolean | undefined;
  private hasRevertedTable(): boolean {
    this.revertedTable ??= this.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reverted_updates'").get() !== undefined;
    return this.revertedTable;
  }

  lastOutcome(): (HistoryRow & { record: string }) | undefined {
    return this
      .prepare(
        `SELECT update_id AS updateId, kind, from_version AS fromVersion, to_version AS toVersion, result, reason, message,
                started_at AS startedAt, finished_at AS finishedAt, record FROM history ORDER BY id DESC LIMIT 1`,
      )
      .get() as (HistoryRow & { record: string }) | undefined;
  }

  getMeta(key: string): string | undefined {
    return (this.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }
}
