// The crash points come from the lifecycle table itself (src/core/transitions.ts), never from a
// hand-written list: every row is a candidate, the scenarios' undisturbed runs decide which rows a
// backend reaches, and the rest is reported as "not reachable on this path".
import { TRANSITIONS } from '../../../src/core/transitions.js';

export interface Row {
  from: string;
  event: string;
  to: string;
}

export const rowKey = (r: Row): string => `${r.from}->${r.to}:${r.event}`;

export const ALL_ROWS: Row[] = TRANSITIONS.map(([from, event, to]) => ({ from, event, to }));

/** Each reached row assigned to the first scenario (in the given order) whose undisturbed run takes it. */
export function assignRows(traces: Array<{ scenario: string; rows: Row[] }>): {
  plan: Array<{ scenario: string; row: Row }>;
  unreachable: Row[];
} {
  const taken = new Set<string>();
  const plan: Array<{ scenario: string; row: Row }> = [];
  for (const t of traces) {
    for (const r of t.rows) {
      const k = rowKey(r);
      if (taken.has(k)) continue;
      taken.add(k);
      plan.push({ scenario: t.scenario, row: r });
    }
  }
  return { plan, unreachable: ALL_ROWS.filter((r) => !taken.has(rowKey(r))) };
}
