// Soak: FAULTS_SOAK_CYCLES (default 200, the count) consecutive update cycles through a real
// `rauc service` — good (committed), failing check (reverted), refused (rejected: downgrade) and
// broken bundle (failed) mixed — on one device. After every cycle: the agent's RSS and open fds
// (/proc/<pid>/status, /proc/<pid>/fd) and the database size (db + WAL). The curve goes to
// .tmp/faults/soak-curve.json; "flat" is computed from it: the last quarter's median against the
// second quarter's median (RSS, fds, WAL, database file). The device keeps only HISTORY_KEEP
// finished updates (limits.historyKeep): once that many are recorded, before the second quarter,
// each new one deletes the oldest and the file stops growing (freed pages are reused); the
// database's own page counts per table (dbstat) show where any remaining growth is. Every reboot
// starts a new agent process, so the RSS/fd curve shows that a start does not grow with the history,
// and the runs of cycles without a reboot (refused, failed) show one process over many messages.
// Figures in docs/reliability.md.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { RaucDevice } from '../helpers/rauc-device.js';
import { outboxSize } from './lib/db.js';
import { patchRaucConfig } from './lib/rauc-rig.js';
import { countFromEnv, record, writeJson } from './lib/summary.js';

const CYCLES = countFromEnv('FAULTS_SOAK_CYCLES', 200);
// Small, so the cap is reached early (after 11 cycles: 7 in 8 cycles record an update).
const HISTORY_KEEP = 10;

let broker: Mosquitto;
let lab: SimLab;
let dev: RaucDevice;
beforeAll(async () => {
  broker = await Mosquitto.start();
  lab = await SimLab.create(broker.url, 5);
  dev = await RaucDevice.create(lab, { installAttempts: 1 });
  await patchRaucConfig(dev, (c) => ({ ...c, limits: { historyKeep: HISTORY_KEEP } }));
});
afterAll(async () => {
  await dev?.close();
  await lab?.close();
  await broker?.stop();
});

function sample(pid: number): { rssKiB: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return { rssKiB: rss, fds: readdirSync(`/proc/${pid}/fd`).length };
}

const size = (p: string): number => (existsSync(p) ? statSync(p).size : 0);

/** What the database holds: history rows, and pages per concern (dbstat), read-only from outside. */
function dbFacts(path: string): { historyRows: number; pageSize: number; historyPages: number; decisionPages: number; freePages: number } {
  const db = new Database(path, { readonly: true });
  try {
    const pages = (names: string[]): number =>
      (db.prepare(`SELECT COUNT(*) AS n FROM dbstat WHERE name IN (${names.map(() => '?').join(',')})`).get(...names) as { n: number }).n;
    return {
      historyRows: (db.prepare('SELECT COUNT(*) AS n FROM history').get() as { n: number }).n,
      pageSize: db.pragma('page_size', { simple: true }) as number,
      historyPages: pages(['history', 'transitions', 'transitions_update']),
      decisionPages: pages(['decisions']),
      freePages: db.pragma('freelist_count', { simple: true }) as number,
    };
  } finally {
    db.close();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

describe('soak', () => {
  it(`${CYCLES} consecutive update cycles: RSS, open fds and the database size stay flat`, async () => {
    const t0 = Date.now();
    const dbPath = join(dev.dir, 'state', 'agent.db');
    type Point = { cycle: number; kind: string; result: string; pid: number; rssKiB: number; fds: number; dbBytes: number; walBytes: number; seconds: number } & ReturnType<typeof dbFacts>;
    const curve: Point[] = [];
    const wrong: string[] = [];
    let minor = 0;
    for (let i = 0; i < CYCLES; i++) {
      const t = Date.now();
      // Mostly good updates, with a reverted, a refused and a failed one in every eight.
      const kind = ['good', 'good', 'bad', 'good', 'rejected', 'good', 'good', 'broken'][i % 8] as string;
      let expected: string;
      let id: string;
      if (kind === 'rejected') {
        // A downgrade (signed, well-formed): refused by admission, nothing installed.
        const bundle = await dev.testbed.buildBundle('0.0.1');
        id = (await dev.announce(bundle, '0.0.1')).id;
        expected = 'rejected';
      } else {
        const v = `3.${++minor}.0`;
        const bundle = await dev.testbed.buildBundle(v, kind === 'bad' ? { files: { health: 'degraded' } } : kind === 'broken' ? { compatible: 'other-board' } : {});
        id = (await dev.announce(bundle, v)).id;
        expected = kind === 'good' ? 'committed' : kind === 'bad' ? 'reverted' : 'failed';
      }
      const r = await lab.watcher.waitForResult(dev.id, id, 90_000).catch((e: Error) => {
        throw new Error(`cycle ${i} (${kind}): ${e.message}\n${dev.logs.slice(-20).join('\n')}`);
      });
      await lab.watcher.waitFor(() => dev.state()?.state === 'idle' && dev.agent.pid !== undefined && outboxSize(dbPath) === 0 && dev.state(), 30_000, `cycle ${i} idle`);
      if (r.result !== expected) wrong.push(`cycle ${i} (${kind}): ${r.result} ${r.reason ?? ''} ${r.message ?? ''}`);
      const pid = dev.agent.pid as number;
      curve.push({ cycle: i, kind, result: r.result ?? 'none', pid, ...sample(pid), dbBytes: size(dbPath), walBytes: size(`${dbPath}-wal`), ...dbFacts(dbPath), seconds: (Date.now() - t) / 1000 });
    }
    const q = Math.floor(curve.length / 4);
    const second = curve.slice(q, 2 * q);
    const last = curve.slice(curve.length - q);
    const mid = (xs: typeof curve, f: (c: (typeof curve)[number]) => number) => median(xs.map(f));
    const flat = {
      rssKiB: { second: mid(second, (c) => c.rssKiB), last: mid(last, (c) => c.rssKiB) },
      fds: { second: mid(second, (c) => c.fds), last: mid(last, (c) => c.fds) },
      walBytes: { second: mid(second, (c) => c.walBytes), last: mid(last, (c) => c.walBytes) },
      dbBytes: { second: mid(second, (c) => c.dbBytes), last: mid(last, (c) => c.dbBytes) },
      // Between the two medians, after the history cap was reached: ~0 (before retention: ~3.4 KiB).
      dbBytesPerCycle: Math.round((mid(last, (c) => c.dbBytes) - mid(second, (c) => c.dbBytes)) / Math.max(1, curve.length - 2 * q)),
      historyPages: { second: mid(second, (c) => c.historyPages), last: mid(last, (c) => c.historyPages) },
      decisionPages: { second: mid(second, (c) => c.decisionPages), last: mid(last, (c) => c.decisionPages) },
      pageSize: curve[0]?.pageSize ?? 0,
      historyKeep: HISTORY_KEEP,
      capReachedAtCycle: curve.findIndex((c) => c.historyRows === HISTORY_KEEP),
    };
    writeJson('soak-curve.json', { cycles: CYCLES, flat, curve });
    record('soak', {
      scenario: `soak: ${CYCLES} cycles through RAUC (good / reverted / rejected / failed)`,
      runs: curve.length,
      converged: curve.length - wrong.length,
      lost: lab.watcher.eventsOf(dev.id).filter((e, i) => e.seq !== i + 1).length,
      duplicated: 0,
      seconds: Math.round((Date.now() - t0) / 1000),
      flat,
      agentProcesses: new Set(curve.map((c) => c.pid)).size,
    });
    expect(wrong).toEqual([]);
    // Generous margins: a leak of a few KiB per cycle over 200 cycles still fails these.
    expect(flat.rssKiB.last, 'RSS: last quarter median vs second quarter median').toBeLessThanOrEqual(flat.rssKiB.second * 1.25);
    expect(flat.fds.last, 'open fds').toBeLessThanOrEqual(flat.fds.second + 3);
    expect(flat.walBytes.last, 'WAL bytes').toBeLessThanOrEqual(flat.walBytes.second * 1.5 + 256 * 1024);
    // The history cap: reached before the second quarter starts (else there is nothing to compare),
    // and held from then on.
    expect(flat.capReachedAtCycle, `history cap (${HISTORY_KEEP}) reached before the second quarter (cycle ${q}); more cycles needed`).toBeGreaterThanOrEqual(0);
    expect(flat.capReachedAtCycle).toBeLessThanOrEqual(q);
    expect(curve.slice(flat.capReachedAtCycle).filter((c) => c.historyRows !== HISTORY_KEEP).map((c) => c.cycle), 'cycles with a history row count other than the cap').toEqual([]);
    // The history's own pages (history, transitions, its index) stay flat once the cap is reached:
    // +2 pages allowed for B-tree splits (a finished update is ~3.4 KiB, nearly a page, so without
    // retention this grows by about a page a cycle).
    expect(flat.historyPages.last, 'pages of history + transitions').toBeLessThanOrEqual(flat.historyPages.second + 2);
    // The database file stops growing once the cap is reached: the growth between the two medians,
    // in pages, less what the decisions table took (it fills up to its own cap of 500 rows, about one
    // small row a cycle), is at most DB_SLACK_PAGES. The slack is page granularity: the file grows in
    // whole pages, at checkpoints, to the high-water mark of pages in use while an update runs. Without
    // retention the file grew 21 pages between these medians at FAULTS_SOAK_CYCLES=40, 80 at 200.
    const DB_SLACK_PAGES = 6;
    const filePages = (flat.dbBytes.last - flat.dbBytes.second) / flat.pageSize;
    const decisionPages = flat.decisionPages.last - flat.decisionPages.second;
    expect(filePages - decisionPages, `database file growth after the cap, in pages, less the decisions table's (${filePages} - ${decisionPages})`).toBeLessThanOrEqual(DB_SLACK_PAGES);
  }, 90 * 60_000);
});
