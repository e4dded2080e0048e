// Nothing is lost: kill -9 of the agent while downloading, installing and verifying, then a
// restart, ends exactly as an undisturbed run does — same steps, same result, every event delivered
// once with its own id, the SQLite database intact. And a broker outage in the middle of an update
// delays the events but loses none.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab, type LabDevice } from '../helpers/sim-lab.js';

const UNDISTURBED = ['idle>accepted', 'accepted>downloading', 'downloading>installing', 'installing>rebooting', 'rebooting>verifying', 'verifying>committing', 'committing>committed'];

function checkEvents(lab: SimLab, dev: LabDevice, updateId: string): void {
  const all = lab.watcher.eventsOf(dev.id);
  // De-duplicated by id, the sequence is gap-free from 1: nothing lost...
  expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
  // ...and no step was reported twice under a new id.
  const steps = all.filter((e) => e.updateId === updateId).map((e) => `${e.from}>${e.to}`);
  expect(steps).toEqual(UNDISTURBED);
}

function integrity(dev: LabDevice): { check: string; outbox: number } {
  const db = new Database(join(dev.dir, 'state', 'agent.db'), { readonly: true });
  try {
    return {
      check: (db.pragma('integrity_check', { simple: true }) as string),
      outbox: (db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n,
    };
  } finally {
    db.close();
  }
}

describe('kill -9 and restart', () => {
  let broker: Mosquitto;
  let lab: SimLab;
  beforeAll(async () => {
    broker = await Mosquitto.start();
    lab = await SimLab.create(broker.url, 5);
  });
  afterAll(async () => {
    await lab?.close();
    await broker?.stop();
  });

  const cases = [
    { state: 'downloading', device: {}, padBytes: 300_000, rate: 60_000 },
    { state: 'installing', device: { installDelayMs: 4000 }, padBytes: 0, rate: 0 },
    { state: 'verifying', device: { checkDelaySeconds: 3 }, padBytes: 0, rate: 0 },
  ] as const;

  it.each(cases)('killed while $state: converges to committed with no event lost or duplicated', async (c) => {
    const dev = await lab.device(c.device);
    lab.artifacts.setRate(c.rate);
    const a = lab.announcement(dev, '1.1.0', c.padBytes ? { padBytes: c.padBytes } : {});
    const requestsBefore = lab.artifacts.requests.length;
    await lab.announce(dev, a);
    await lab.watcher.waitFor(() => lab.watcher.states.get(dev.id)?.state === c.state, 20_000, c.state);
    // Let the effect get going (bytes on disk, slot half written, check running) before the kill.
    await new Promise((r) => setTimeout(r, 700));
    const code = await dev.sim.crash();
    expect(code).toBeNull(); // killed by the signal, not exited
    lab.artifacts.setRate(0);
    dev.sim.start();
    const result = await lab.watcher.waitForResult(dev.id, a.id, 40_000);
    expect(result.result).toBe('committed');
    await lab.watcher.waitFor(() => lab.watcher.states.get(dev.id)?.state === 'idle' && integrity(dev).outbox === 0, 10_000, 'idle, outbox drained');
    checkEvents(lab, dev, a.id);
    const db = integrity(dev);
    expect(db.check).toBe('ok');
    expect(db.outbox).toBe(0);
    if (c.state === 'downloading') {
      // The partial download was resumed, not started over.
      expect(lab.artifacts.requests.slice(requestsBefore).some((r) => /Range|bytes=\d+-/.test(r))).toBe(true);
    }
  });
});

describe('crash loop on the new slot', () => {
  let broker: Mosquitto;
  let lab: SimLab;
  beforeAll(async () => {
    broker = await Mosquitto.start();
    lab = await SimLab.create(broker.url, 5);
  });
  afterAll(async () => {
    await lab?.close();
    await broker?.stop();
  });

  it('a new slot that keeps killing the agent before a verdict is reverted, not retried forever', async () => {
    // The "health check" kills the agent that runs it, as a broken new system might.
    const dev = await lab.device({
      configOverride: (c) => ({ ...c, limits: { maxResumes: 3 }, healthChecks: [{ kind: 'command', name: 'crasher', argv: ['sh', '-c', 'kill -9 $PPID; sleep 5'], timeoutMs: 10_000 }] }),
    });
    let restarts = 0;
    let done = false;
    // systemd's Restart=always, played by the test.
    const keepAlive = (async () => {
      while (!done && restarts < 10) {
        await dev.sim.exited();
        if (done) break;
        restarts++;
        dev.sim.start();
      }
    })();
    const a = lab.announcement(dev, '1.1.0');
    await lab.announce(dev, a);
    const r = await lab.watcher
      .waitForResult(dev.id, a.id, 40_000)
      .catch((e: Error) => {
        throw new Error(`${e.message}; restarts ${restarts}\n${dev.logs.filter((l) => !l.includes('"level":20')).slice(-12).join('\n')}`);
      })
      .finally(() => {
        // Also on failure: the keep-alive loop must not restart the agent after the lab stops it.
        done = true;
      });
    expect(r).toMatchObject({ result: 'reverted', reason: 'RESUME_BUDGET_EXHAUSTED' });
    expect(r.message).toMatch(/restarted 4 times in state verifying/);
    expect(restarts).toBe(4);
    await lab.watcher.waitFor(() => lab.watcher.states.get(dev.id)?.state === 'idle' && lab.watcher.states.get(dev.id)?.runningVersion === '1.0.0', 10_000, 'idle on 1.0.0');
    void keepAlive;
  });
});

describe('broker outage during an update', () => {
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

  it('the update completes while the broker is down; every event arrives afterwards, in order', async () => {
    const dev = await lab.device({ logLevel: 'debug' });
    lab.artifacts.setRate(60_000);
    const a = lab.announcement(dev, '1.1.0', { padBytes: 120_000 });
    await lab.announce(dev, a);
    await lab.watcher.waitFor(() => lab.watcher.states.get(dev.id)?.state === 'downloading', 10_000, 'downloading');
    await broker.stopProcess();
    lab.artifacts.setRate(0);
    // The agent does not wait for the broker: the update finishes offline (read from its database).
    const deadline = Date.now() + 30_000;
    let history: Array<{ result: string }> = [];
    while (Date.now() < deadline) {
      const db = new Database(join(dev.dir, 'state', 'agent.db'), { readonly: true });
      history = db.prepare('SELECT result FROM history').all() as Array<{ result: string }>;
      db.close();
      if (history.length) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(history).toEqual([{ result: 'committed' }]);
    expect(integrity(dev).outbox).toBeGreaterThan(0);
    await broker.startProcess();
    const result = await lab.watcher.waitForResult(dev.id, a.id, 30_000).catch((e: Error) => {
      throw new Error(`${e.message}; outbox ${integrity(dev).outbox}; watcher saw ${lab.watcher.eventsOf(dev.id).length} events; agent log:\n${dev.logs.slice(-15).join('\n')}`);
    });
    expect(result.result).toBe('committed');
    await lab.watcher.waitFor(() => integrity(dev).outbox === 0, 10_000, 'outbox drained');
    checkEvents(lab, dev, a.id);
  });
});
