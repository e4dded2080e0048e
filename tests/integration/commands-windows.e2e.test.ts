// Commands (check, cancel, rollback), the queue for announcements that arrive mid-update, rollout
// membership and maintenance windows — through a real mosquitto and the real agent process.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';

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
afterEach(() => lab.artifacts.setRate(0));

const stateOf = (id: string) => lab.watcher.states.get(id);

describe('commands', () => {
  it('check runs the health checks now and reports the verdict', async () => {
    const dev = await lab.device();
    const n = lab.watcher.eventsOf(dev.id).length;
    await lab.command(dev, 'check');
    const e = await lab.nextEvent(dev, n, (x) => x.type === 'check');
    expect(e.checks?.passed).toBe(true);
    expect(e.checks?.results.map((r) => r.name)).toEqual(['self-test']);
  });

  it('cancel stops an update while it downloads; nothing is installed', async () => {
    const dev = await lab.device();
    const slots = dev.slotsDigest();
    lab.artifacts.setRate(20_000);
    const a = lab.announcement(dev, '1.1.0', { padBytes: 400_000 });
    await lab.announce(dev, a);
    await lab.watcher.waitFor(() => stateOf(dev.id)?.state === 'downloading', 10_000, 'downloading');
    await lab.command(dev, 'cancel', { updateId: a.id });
    const result = await lab.watcher.waitForResult(dev.id, a.id);
    expect(result).toMatchObject({ result: 'cancelled', reason: 'CANCELLED', from: 'downloading', to: 'cancelled' });
    await lab.watcher.waitFor(() => stateOf(dev.id)?.state === 'idle', 5000, 'idle');
    expect(dev.slotsDigest()).toBe(slots);
  });

  it('rollback returns a committed device to its previous version', async () => {
    const dev = await lab.device();
    const a = lab.announcement(dev, '1.1.0');
    await lab.announce(dev, a);
    expect((await lab.watcher.waitForResult(dev.id, a.id)).result).toBe('committed');
    await lab.watcher.waitFor(() => stateOf(dev.id)?.state === 'idle' && stateOf(dev.id)?.runningVersion === '1.1.0', 5000, 'idle on 1.1.0');
    const n = lab.watcher.eventsOf(dev.id).length;
    await lab.command(dev, 'rollback');
    const e = await lab.nextEvent(dev, n, (x) => x.result !== undefined && x.type === 'transition');
    expect(e).toMatchObject({ result: 'reverted', reason: 'ROLLBACK_REQUESTED', from: 'rolling-back', version: '1.0.0' });
    await lab.watcher.waitFor(() => stateOf(dev.id)?.state === 'idle' && stateOf(dev.id)?.runningVersion === '1.0.0', 10_000, 'back on 1.0.0');
  });
});

describe('reboot on command', () => {
  it('with reboot.waitForCommand the installed update waits; a signed reboot command carries it to committed', async () => {
    const dev = await lab.device({ configOverride: (c) => ({ ...c, reboot: { waitForCommand: true } }) });
    const n0 = lab.watcher.eventsOf(dev.id).length;
    await lab.command(dev, 'reboot');
    expect((await lab.nextEvent(dev, n0, (x) => x.type === 'rejected')).reason).toBe('COMMAND_NOT_APPLICABLE');
    const a = lab.announcement(dev, '1.1.0');
    await lab.announce(dev, a);
    const s = await lab.watcher.waitFor(() => stateOf(dev.id)?.state === 'reboot-deferred' && stateOf(dev.id), 10_000, 'reboot-deferred');
    expect(s.runningVersion).toBe('1.0.0');
    expect(s.update?.deferredUntil).toBeUndefined();
    await lab.command(dev, 'reboot', { updateId: a.id });
    expect((await lab.watcher.waitForResult(dev.id, a.id)).result).toBe('committed');
    await lab.watcher.waitFor(() => stateOf(dev.id)?.runningVersion === '1.1.0', 5000, 'running 1.1.0');
  });
});

describe('announcements during an update, and rollouts', () => {
  it('a newer announcement during an update is refused as UPDATE_IN_PROGRESS, queued, and installed afterwards', async () => {
    const dev = await lab.device();
    lab.artifacts.setRate(50_000);
    const first = lab.announcement(dev, '1.1.0', { padBytes: 150_000 });
    await lab.announce(dev, first);
    await lab.watcher.waitFor(() => stateOf(dev.id)?.state === 'downloading', 10_000, 'downloading');
    const second = lab.announcement(dev, '1.2.0');
    const n = lab.watcher.eventsOf(dev.id).length;
    await lab.announce(dev, second);
    const refusal = await lab.nextEvent(dev, n, (x) => x.type === 'rejected');
    expect(refusal).toMatchObject({ reason: 'UPDATE_IN_PROGRESS', updateId: second.id });
    lab.artifacts.setRate(0);
    expect((await lab.watcher.waitForResult(dev.id, first.id)).result).toBe('committed');
    const done = await lab.nextEvent(dev, n, (x) => x.updateId === second.id && x.type === 'transition' && x.result !== undefined, 40_000, 'the queued update to end');
    expect(done.result).toBe('committed');
    await lab.watcher.waitFor(() => stateOf(dev.id)?.runningVersion === '1.2.0', 5000, 'running 1.2.0');
  });

  it('an update this device reverted is not retried when the same id is promoted', async () => {
    const dev = await lab.device();
    const a = lab.announcement(dev, '1.1.0', { health: 'degraded' });
    await lab.announce(dev, a);
    expect((await lab.watcher.waitForResult(dev.id, a.id)).result).toBe('reverted');
    await lab.watcher.waitFor(() => stateOf(dev.id)?.state === 'idle', 5000, 'idle');
    await lab.announce(dev, { ...a, sequence: lab.nextSequence(), rollout: { percent: 100, groups: [] } });
    const d = await lab.waitForDecision(dev, (x) => x.reason === 'PREVIOUSLY_REVERTED');
    expect(d.message).toContain(a.id);
    expect(stateOf(dev.id)?.state).toBe('idle');
  });

  it('a device outside the rollout percentage ignores it; a promotion with the same id brings it in', async () => {
    const dev = await lab.device();
    const a = lab.announcement(dev, '1.1.0', { patch: { rollout: { percent: 0 } } });
    await lab.announce(dev, a);
    const d = await lab.waitForDecision(dev, (x) => x.subject === `${a.id}@1.1.0`);
    expect(d).toMatchObject({ decision: 'ignored', reason: 'NOT_IN_ROLLOUT' });
    expect(stateOf(dev.id)?.state).toBe('idle');
    await lab.announce(dev, { ...a, sequence: lab.nextSequence(), rollout: { percent: 100 } });
    expect((await lab.watcher.waitForResult(dev.id, a.id)).result).toBe('committed');
  });
});

describe('maintenance windows', () => {
  const hourFromNow = (h: number) => (new Date().getUTCHours() + h) % 24;

  it('a closed install window defers the update and reports the next opening; cancel ends it', async () => {
    const dev = await lab.device();
    const opensAtHour = hourFromNow(12);
    const a = lab.announcement(dev, '1.1.0', { patch: { rollout: { percent: 100, window: { cron: `0 ${opensAtHour} * * *`, durationMinutes: 30, timezone: 'UTC', applies: 'install' } } } });
    await lab.announce(dev, a);
    const s = await lab.watcher.waitFor(() => stateOf(dev.id)?.state === 'deferred' && stateOf(dev.id), 10_000, 'deferred');
    const until = new Date(s.update?.deferredUntil ?? 0);
    expect(until.getUTCHours()).toBe(opensAtHour);
    expect(until.getUTCMinutes()).toBe(0);
    expect(until.getTime()).toBeGreaterThan(Date.now());
    const deferredEvent = lab.watcher.eventsOf(dev.id).find((e) => e.updateId === a.id && e.to === 'deferred');
    expect(deferredEvent?.deferredUntil).toBe(s.update?.deferredUntil);
    await lab.command(dev, 'cancel');
    expect((await lab.watcher.waitForResult(dev.id, a.id)).result).toBe('cancelled');
  });

  it('an open window lets the update through', async () => {
    const dev = await lab.device();
    const a = lab.announcement(dev, '1.1.0', { patch: { rollout: { percent: 100, window: { cron: '* * * * *', durationMinutes: 5, timezone: 'Europe/Berlin', applies: 'install' } } } });
    await lab.announce(dev, a);
    expect((await lab.watcher.waitForResult(dev.id, a.id)).result).toBe('committed');
  });

  it('a reboot window lets the install run now and holds the reboot', async () => {
    const dev = await lab.device();
    const a = lab.announcement(dev, '1.1.0', { patch: { rollout: { percent: 100, window: { cron: `30 ${hourFromNow(6)} * * *`, durationMinutes: 10, timezone: 'UTC', applies: 'reboot' } } } });
    await lab.announce(dev, a);
    const s = await lab.watcher.waitFor(() => stateOf(dev.id)?.state === 'reboot-deferred' && stateOf(dev.id), 10_000, 'reboot-deferred');
    expect(s.update?.deferredUntil).toMatch(/:30:00/);
    expect(s.runningVersion).toBe('1.0.0');
    const n = lab.watcher.eventsOf(dev.id).length;
    await lab.command(dev, 'cancel');
    const refusal = await lab.nextEvent(dev, n, (x) => x.type === 'rejected');
    expect(refusal.reason).toBe('COMMAND_NOT_APPLICABLE');
  });
});
