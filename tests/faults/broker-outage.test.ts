// Broker outage: mosquitto stopped while one device is downloading, one installing and one
// verifying, and started again 30 s later. The updates go on without the broker (each ends while
// it is down, read from the devices' SQLite), and after the reconnect every event arrives, in
// order, once, and the retained state is right. Figures in docs/reliability.md.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { FleetWatcher } from '../../src/demo/watcher.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab, type LabDevice } from '../helpers/sim-lab.js';
import { outboxSize } from './lib/db.js';
import { record } from './lib/summary.js';

const OUTAGE_MS = 30_000;
const STEPS = ['idle>accepted', 'accepted>downloading', 'downloading>installing', 'installing>rebooting', 'rebooting>verifying', 'verifying>committing', 'committing>committed'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let broker: Mosquitto;
let lab: SimLab;
beforeAll(async () => {
  broker = await Mosquitto.start({ persistent: true });
  lab = await SimLab.create(broker.url, 5, { persistentWatcher: true });
});
afterAll(async () => {
  await lab?.close();
  await broker?.stop();
});

const dbOf = (d: LabDevice) => join(d.dir, 'state', 'agent.db');
function transitionsOf(d: LabDevice): number {
  const db = new Database(dbOf(d), { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM transitions').get() as { n: number }).n;
  } finally {
    db.close();
  }
}
function results(d: LabDevice): string[] {
  const db = new Database(dbOf(d), { readonly: true });
  try {
    return (db.prepare('SELECT result FROM history').all() as Array<{ result: string }>).map((r) => r.result);
  } finally {
    db.close();
  }
}

describe('broker outage during downloading, installing and verifying', () => {
  it('the updates finish while the broker is down; afterwards every event arrives once, in order, and the retained state is right', async () => {
    const t0 = Date.now();
    // Each device is held in its state long enough for the outage to start there, and leaves it during the outage.
    const downloading = await lab.device({});
    const installing = await lab.device({ installDelayMs: 15_000 });
    const verifying = await lab.device({ checkDelaySeconds: 12 });
    const plan = [
      { dev: downloading, state: 'downloading', a: lab.announcement(downloading, '1.1.0', { padBytes: 200_000 }) },
      { dev: installing, state: 'installing', a: lab.announcement(installing, '1.1.0') },
      { dev: verifying, state: 'verifying', a: lab.announcement(verifying, '1.1.0') },
    ];
    // The loopback server's throttle sends about 10 KB/s whatever the rate (1 KiB per 100 ms tick): ~20 s.
    lab.artifacts.setRate(60_000);
    for (const p of plan) await lab.announce(p.dev, p.a);
    for (const p of plan) await lab.watcher.waitFor(() => lab.watcher.states.get(p.dev.id)?.state === p.state, 30_000, `${p.dev.id} ${p.state}`);
    const seenBefore = new Map(plan.map((p) => [p.dev.id, lab.watcher.eventsOf(p.dev.id).length]));

    await broker.stopProcess();
    const down = Date.now();
    // While the broker is down: every update reaches its result in SQLite (nothing waits for the broker).
    const doneOffline = new Map<string, number>();
    const stepsBefore = new Map(plan.map((p) => [p.dev.id, transitionsOf(p.dev)]));
    while (Date.now() - down < OUTAGE_MS) {
      for (const p of plan) if (!doneOffline.has(p.dev.id) && results(p.dev).length > 0) doneOffline.set(p.dev.id, (Date.now() - down) / 1000);
      await sleep(250);
    }
    const offlineSteps = new Map(plan.map((p) => [p.dev.id, transitionsOf(p.dev) - (stepsBefore.get(p.dev.id) ?? 0)]));
    const queued = plan.map((p) => outboxSize(dbOf(p.dev)));
    await broker.startProcess();

    const perDevice = [];
    for (const p of plan) {
      const r = await lab.watcher.waitForResult(p.dev.id, p.a.id, 120_000).catch((e: Error) => {
        throw new Error(`${p.state} device: ${e.message}; history ${results(p.dev).join()}; outbox ${outboxSize(dbOf(p.dev))}; watcher saw ${lab.watcher.eventsOf(p.dev.id).map((x) => `${x.seq}:${x.to ?? x.type}`).join(' ')}; finished offline after ${String(doneOffline.get(p.dev.id))} s\n${p.dev.logs.slice(-25).join('\n')}`);
      });
      await lab.watcher.waitFor(() => outboxSize(dbOf(p.dev)) === 0, 30_000, `${p.dev.id} outbox drained`);
      // Arrival order (not sorted): de-duplicated by id, the sequence numbers only go up, without gaps.
      const seen = new Set<string>();
      const arrived = lab.watcher.events.filter((e) => e.deviceId === p.dev.id && !seen.has(e.eventId) && seen.add(e.eventId));
      const seqs = arrived.map((e) => e.seq);
      const steps = arrived.filter((e) => e.updateId === p.a.id && e.to !== undefined).map((e) => `${e.from}>${e.to}`);
      perDevice.push({ device: p.dev.id, heldIn: p.state, result: r.result, seqs, steps, afterReconnect: arrived.length - (seenBefore.get(p.dev.id) ?? 0), finishedOfflineAfterS: doneOffline.get(p.dev.id) ?? null, stepsWhileDown: offlineSteps.get(p.dev.id) ?? 0 });
    }
    // Retained state, as a consumer that connects only now sees it.
    const fresh = await FleetWatcher.connect(broker.url, 'ota/v1', 5);
    const retained = await Promise.all(plan.map((p) => fresh.waitFor(() => fresh.states.get(p.dev.id), 10_000, `retained state of ${p.dev.id}`)));
    await fresh.close();

    const lost = perDevice.filter((d) => d.steps.length < STEPS.length || d.seqs.some((s, i) => s !== i + 1)).length;
    const duplicated = perDevice.filter((d) => d.steps.length > STEPS.length).length;
    record('broker-outage', {
      scenario: 'broker outage 30 s (downloading / installing / verifying)',
      runs: plan.length,
      converged: perDevice.filter((d) => d.result === 'committed').length,
      lost,
      duplicated,
      seconds: Math.round((Date.now() - t0) / 1000),
      queuedInOutboxAtReconnect: queued,
      finishedOfflineAfterS: perDevice.map((d) => d.finishedOfflineAfterS),
      stepsWhileDown: perDevice.map((d) => d.stepsWhileDown),
    });

    for (const d of perDevice) {
      // It went on without the broker: lifecycle steps were committed while the broker was down.
      expect(d.stepsWhileDown, `${d.heldIn}: steps taken while the broker was down`).toBeGreaterThan(0);
      expect(d.result).toBe('committed');
      expect(d.steps).toEqual(STEPS);
      expect(d.seqs).toEqual(d.seqs.map((_, i) => i + 1));
      expect(d.afterReconnect).toBeGreaterThan(0);
    }
    for (const s of retained) expect({ state: s.state, runningVersion: s.runningVersion, result: s.lastResult?.result }).toEqual({ state: 'idle', runningVersion: '1.1.0', result: 'committed' });
    expect(queued.every((n) => n > 0)).toBe(true);
  }, 5 * 60_000);
});
