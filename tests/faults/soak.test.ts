// Soak: FAULTS_SOAK_CYCLES (default 200, the count) consecutive update cycles through a real
// `rauc service` — good (committed), failing check (reverted), refused (rejected: downgrade) and
// broken bundle (failed) mixed — on one device. After every cycle: the agent's RSS and open fds
// (/proc/<pid>/status, /proc/<pid>/fd) and the database size (db + WAL). The curve goes to
// .tmp/faults/soak-curve.json; "flat" is computed from it: the last quarter's median against the
// second quarter's median (RSS, fds, WAL), and for the database file, which keeps every finished
// update's history, the growth per cycle between those medians. Every reboot starts a new agent
// process, so the RSS/fd curve shows that a start does not grow with the history, and the runs of
// cycles without a reboot (refused, failed) show one process over many messages. Figures in docs/reliability.md.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { RaucDevice } from '../helpers/rauc-device.js';
import { outboxSize } from './lib/db.js';
import { countFromEnv, record, writeJson } from './lib/summary.js';

const CYCLES = countFromEnv('FAULTS_SOAK_CYCLES', 200);

let broker: Mosquitto;
let lab: SimLab;
let dev: RaucDevice;
beforeAll(async () => {
  broker = await Mosquitto.start();
  lab = await SimLab.create(broker.url, 5);
  dev = await RaucDevice.create(lab, { installAttempts: 1 });
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

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

describe('soak', () => {
  it(`${CYCLES} consecutive update cycles: RSS, open fds and the database size stay flat`, async () => {
    const t0 = Date.now();
    const dbPath = join(dev.dir, 'state', 'agent.db');
    const curve: Array<{ cycle: number; kind: string; result: string; pid: number; rssKiB: number; fds: number; dbBytes: number; walBytes: number; seconds: number }> = [];
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
      curve.push({ cycle: i, kind, result: r.result ?? 'none', pid, ...sample(pid), dbBytes: size(dbPath), walBytes: size(`${dbPath}-wal`), seconds: (Date.now() - t) / 1000 });
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
      // The history of finished updates is kept (no retention): the file grows by this much per cycle.
      dbBytesPerCycle: Math.round((mid(last, (c) => c.dbBytes) - mid(second, (c) => c.dbBytes)) / Math.max(1, curve.length - 2 * q)),
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
    // The database file: only the kept history grows it, a few KiB per update, not faster over time.
    expect(flat.dbBytesPerCycle, 'database bytes per cycle').toBeLessThanOrEqual(16 * 1024);
  }, 90 * 60_000);
});
