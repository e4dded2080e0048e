// Reads a device's SQLite database from the outside (read-only, WAL): what the agent persisted.
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Row } from './table.js';

export interface DbFacts {
  integrity: string;
  outbox: number;
  transitions: Row[];
  historyRows: number;
  result: string | null;
}

export function readDb(path: string, updateId: string): DbFacts {
  const db = new Database(path, { readonly: true });
  try {
    const transitions = db
      .prepare('SELECT from_state AS "from", event, to_state AS "to" FROM transitions WHERE update_id = ? ORDER BY id')
      .all(updateId) as Row[];
    const history = db.prepare('SELECT result FROM history WHERE update_id = ? ORDER BY id').all(updateId) as Array<{ result: string }>;
    return {
      integrity: db.pragma('integrity_check', { simple: true }) as string,
      outbox: (db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n,
      transitions,
      historyRows: history.length,
      result: history.at(-1)?.result ?? null,
    };
  } finally {
    db.close();
  }
}

/** The update id of the latest finished update (rollbacks get their id on the device). */
export function lastHistoryId(path: string): string | null {
  if (!existsSync(path)) return null;
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT update_id AS id FROM history ORDER BY id DESC LIMIT 1').get() as { id: string } | undefined)?.id ?? null;
  } finally {
    db.close();
  }
}

export function outboxSize(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n;
  } finally {
    db.close();
  }
}
