// Power cuts: the agent and `rauc service` SIGKILLed together at a random moment of an update
// (seeded; the seed is printed, FAULTS_SEED replays it), then the simulated bootloader picks the
// slot of the next boot, RAUC and the agent start again. Every run must end committed (a good
// update) or reverted (a failing health check), never stuck. FAULTS_RUNS sets the number of runs
// (default 100, the count). The private dbus-daemon stays up across a cut (it is the test's
// bus, not the device's). Figures in docs/reliability.md.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { RaucDevice } from '../helpers/rauc-device.js';
import { outboxSize, readDb } from './lib/db.js';
import { prng, seedFromEnv } from './lib/prng.js';
import { countFromEnv, record, writeJson } from './lib/summary.js';
import { raucInstalls } from './lib/rauc-rig.js';
import { join } from 'node:path';

const RUNS = countFromEnv('FAULTS_RUNS', 100);
const SEED = seedFromEnv();

let broker: Mosquitto;
let lab: SimLab;
let dev: RaucDevice;
/** Power operations (a requested reboot, a power cut) one at a time; a cut cancels a pending reboot. */
let power: Promise<void> = Promise.resolve();
let generation = 0;
const serial = (op: () => Promise<void>): Promise<void> => (power = power.then(op, op));

beforeAll(async () => {
  console.log(`[faults] power-cut seed ${SEED} (replay with FAULTS_SEED=${SEED}), ${RUNS} runs`);
  broker = await Mosquitto.start();
  lab = await SimLab.create(broker.url, 5);
  dev = await RaucDevice.create(lab, {
    onReboot: (d) => {
      const gen = generation;
      return serial(async () => {
        if (gen !== generation) return; // the power went out before this reboot happened
        await d.cleanReboot();
      });
    },
  });
});
afterAll(async () => {
  await dev?.close();
  await lab?.close();
  await broker?.stop();
});

describe('power cuts at random points', () => {
  it(`${RUNS} updates, each cut once at a random moment: every one ends committed or reverted`, async () => {
    const t0 = Date.now();
    const rnd = prng(SEED);
    const runs: Array<{ run: number; kind: string; cutAtMs: number; stateAtCut: string; result: string; expected: string; installs: number; seconds: number }> = [];
    const problems: string[] = [];
    let version = 0;
    for (let i = 0; i < RUNS; i++) {
      const t = Date.now();
      const bad = rnd() < 0.3;
      const cutAt = Math.floor(rnd() * (bad ? 6000 : 4000));
      const v = `2.${++version}.0`;
      const bundle = await dev.testbed.buildBundle(v, bad ? { files: { health: 'degraded' } } : {});
      const installsBefore = raucInstalls(dev);
      const a = await dev.announce(bundle, v);
      await new Promise((r) => setTimeout(r, cutAt));
      let stateAtCut = '';
      await serial(async () => {
        generation++;
        stateAtCut = dev.state()?.state ?? '?';
        // Both die in the same tick, as in a power cut.
        await Promise.all([dev.agent.crash(), dev.testbed.killRauc()]);
        lab.watcher.online.set(dev.id, false);
        await dev.testbed.simulateBoot();
        dev.agent.start();
      });
      const expected = bad ? 'reverted' : 'committed';
      const r = await lab.watcher.waitForResult(dev.id, a.id, 90_000).catch((e: Error) => {
        throw new Error(`run ${i} (seed ${SEED}, cut at ${cutAt} ms in ${stateAtCut}): ${e.message}\n${dev.logs.slice(-30).join('\n')}`);
      });
      await lab.watcher.waitFor(() => dev.state()?.state === 'idle' && outboxSize(join(dev.dir, 'state', 'agent.db')) === 0 && dev.state(), 30_000, 'idle');
      const facts = readDb(join(dev.dir, 'state', 'agent.db'), a.id);
      const installs = raucInstalls(dev) - installsBefore;
      runs.push({ run: i, kind: bad ? 'failing check' : 'good', cutAtMs: cutAt, stateAtCut, result: r.result ?? 'none', expected, installs, seconds: (Date.now() - t) / 1000 });
      if (r.result !== expected) problems.push(`run ${i}: ${r.result} (${r.reason ?? ''}: ${r.message ?? ''}), expected ${expected}; cut at ${cutAt} ms in ${stateAtCut}`);
      if (facts.integrity !== 'ok' || facts.historyRows !== 1) problems.push(`run ${i}: integrity ${facts.integrity}, ${facts.historyRows} history rows`);
      // The slot to go back to must never receive the new image (an install repeated on the new boot would write it there).
      const booted = dev.testbed.bootedSlot();
      const fallback = booted === 'A' ? 'B' : 'A';
      if (dev.testbed.slotSha256(fallback, dev.testbed.imageSize(bundle)) === dev.testbed.imageSha256(bundle) && dev.testbed.slotSha256(booted, dev.testbed.imageSize(bundle)) === dev.testbed.imageSha256(bundle)) {
        problems.push(`run ${i}: ${v} was written into both slots (booted ${booted}); cut at ${cutAt} ms in ${stateAtCut}`);
      }
    }
    const events = lab.watcher.eventsOf(dev.id);
    const lostSeq = events.filter((e, i) => e.seq !== i + 1).length;
    const byState: Record<string, number> = {};
    for (const r of runs) byState[r.stateAtCut] = (byState[r.stateAtCut] ?? 0) + 1;
    writeJson('power-cut.json', { seed: SEED, runs });
    record('power-cut', {
      scenario: 'power cut (agent + rauc SIGKILL), random point',
      runs: runs.length,
      converged: runs.filter((r) => r.result === r.expected).length,
      lost: lostSeq,
      duplicated: events.length - new Set(events.map((e) => `${e.updateId}|${e.from}|${e.to}|${e.type}|${e.reason ?? ''}`)).size,
      seconds: Math.round((Date.now() - t0) / 1000),
      seed: SEED,
      cutsByState: byState,
      results: { committed: runs.filter((r) => r.result === 'committed').length, reverted: runs.filter((r) => r.result === 'reverted').length, other: runs.filter((r) => !['committed', 'reverted'].includes(r.result)).length },
      raucInstallsPerRun: { max: Math.max(...runs.map((r) => r.installs)), repeated: runs.filter((r) => r.installs > 1).length },
    });
    expect(problems, `seed ${SEED}`).toEqual([]);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(runs.every((r) => ['committed', 'reverted'].includes(r.result))).toBe(true);
  }, 60 * 60_000);
});
