// Every fault test writes its measured figures to .tmp/faults/summary-<scenario>.json, which
// docs/reliability.md is written from.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const OUT_DIR = join(REPO, '.tmp', 'faults');

export interface ScenarioFigures {
  scenario: string;
  runs: number;
  converged: number;
  lost: number;
  duplicated: number;
  seconds: number;
  notes?: string;
  [extra: string]: unknown;
}

/** One file per scenario key (two workers write at once): .tmp/faults/summary-<key>.json. */
export function record(key: string, figures: ScenarioFigures): void {
  writeJson(`summary-${key}.json`, { ...figures, recordedAt: new Date().toISOString() });
}

export function writeJson(name: string, data: unknown): string {
  mkdirSync(OUT_DIR, { recursive: true });
  const p = join(OUT_DIR, name);
  writeFileSync(p, JSON.stringify(data, null, 2));
  return p;
}

/** Counts from the environment (FAULTS_RUNS, FAULTS_SOAK_CYCLES), with the numbers as defaults. */
export function countFromEnv(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${v}: expected a positive integer`);
  return n;
}
