// The whole loop through a real mosquitto, over MQTT 5 and 3.1.1: signed announcement -> agent
// process -> simulated A/B slots -> reboot -> health checks -> committed / reverted / rejected.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';

describe.each([5, 4] as const)('lifecycle over MQTT %s', (protocolVersion) => {
  let broker: Mosquitto;
  let lab: SimLab;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    lab = await SimLab.create(broker.url, protocolVersion);
  });
  afterAll(async () => {
    await lab?.close();
    await broker?.stop();
  });

  it('a good update ends committed, and the device runs the new version', async () => {
    const dev = await lab.device();
    const a = lab.announcement(dev, '1.1.0');
    await lab.announce(dev, a);
    const result = await lab.watcher.waitForResult(dev.id, a.id);
    expect(result.result).toBe('committed');
    expect(result.checks?.passed).toBe(true);
    const state = await lab.watcher.waitFor(() => { const s = lab.watcher.states.get(dev.id); return s?.state === 'idle' && s.runningVersion === '1.1.0' && s; }, 10_000, 'idle on 1.1.0');
    expect(state.lastResult?.result).toBe('committed');
    expect(state.bootedSlot).toBe('B');
    const steps = lab.watcher.eventsOf(dev.id).filter((e) => e.updateId === a.id).map((e) => `${e.from}>${e.to}`);
    expect(steps).toEqual(['idle>accepted', 'accepted>downloading', 'downloading>installing', 'installing>rebooting', 'rebooting>verifying', 'verifying>committing', 'committing>committed']);
  });

  it('the bundled agent (dist/bundle, what a release ships), with the node options of systemd/ota-agent.service, runs the same update to committed', async () => {
    // The unit's NODE_OPTIONS (--jitless among them, docs/performance.md): the agent as it runs on a device.
    const unit = readFileSync(new URL('../../systemd/ota-agent.service', import.meta.url), 'utf8');
    const nodeOptions = /^Environment="NODE_OPTIONS=([^"]+)"$/m.exec(unit)?.[1];
    expect(nodeOptions).toContain('--jitless');
    const dev = await lab.device({ entry: 'dist/bundle/ota-agent.mjs', env: { NODE_OPTIONS: nodeOptions } });
    const a = lab.announcement(dev, '1.2.0');
    await lab.announce(dev, a);
    const result = await lab.watcher.waitForResult(dev.id, a.id);
    expect(result.result).toBe('committed');
    // Two processes (before and after the simulated reboot), both from the bundle.
    expect(dev.sim.bootCount).toBe(2);
    expect(readFileSync(`/proc/${String(dev.sim.pid)}/cmdline`, 'utf8')).toContain('dist/bundle/ota-agent.mjs');
    expect(readFileSync(`/proc/${String(dev.sim.pid)}/environ`, 'utf8').split('\0')).toContain(`NODE_OPTIONS=${String(nodeOptions)}`);
    const steps = lab.watcher.eventsOf(dev.id).filter((e) => e.updateId === a.id).map((e) => e.to);
    expect(steps).toEqual(['accepted', 'downloading', 'installing', 'rebooting', 'verifying', 'committing', 'committed']);
  });

  it('a new slot that fails its health check is reverted, naming the check', async () => {
    const dev = await lab.device();
    const a = lab.announcement(dev, '1.1.0', { health: 'degraded' });
    await lab.announce(dev, a);
    const result = await lab.watcher.waitForResult(dev.id, a.id);
    expect(result.result).toBe('reverted');
    expect(result.reason).toBe('HEALTH_CHECK_FAILED');
    expect(result.message).toContain('self-test');
    expect(result.checks?.failed).toEqual(['self-test']);
    expect(result.checks?.results[0]?.outputTail).toContain('self-test: degraded');
    const state = await lab.watcher.waitFor(() => { const s = lab.watcher.states.get(dev.id); return s?.state === 'idle' && s; }, 10_000, 'idle');
    expect(state.runningVersion).toBe('1.0.0');
    expect(state.bootedSlot).toBe('A');
  });

  it('a bootloader fallback is reported as reverted, never as success', async () => {
    const dev = await lab.device();
    const a = lab.announcement(dev, '1.1.0', { bootable: false });
    await lab.announce(dev, a);
    const result = await lab.watcher.waitForResult(dev.id, a.id);
    expect(result.result).toBe('reverted');
    expect(result.reason).toBe('BOOTLOADER_FALLBACK');
    expect(result.message).toMatch(/booted slot A/);
  });

  it('a tampered announcement is rejected and nothing changes', async () => {
    const dev = await lab.device();
    const before = dev.slotsDigest();
    const a = lab.announcement(dev, '1.1.0');
    const env = JSON.parse(lab.sign(a)) as { payload: string };
    const p = JSON.parse(Buffer.from(env.payload, 'base64').toString()) as typeof a;
    p.version = '9.9.9';
    env.payload = Buffer.from(JSON.stringify(p)).toString('base64');
    const n = lab.watcher.eventsOf(dev.id).length;
    await lab.publishRaw(lab.t.announce(dev.compatible, 'stable'), JSON.stringify(env));
    const e = await lab.nextEvent(dev, n, (x) => x.type === 'rejected');
    expect(e.reason).toBe('BAD_SIGNATURE');
    expect(lab.watcher.states.get(dev.id)?.state).toBe('idle');
    expect(dev.slotsDigest()).toBe(before);
  });

  it('events carry unique ids and a gap-free per-device sequence', async () => {
    const dev = await lab.device();
    const a = lab.announcement(dev, '2.0.0');
    await lab.announce(dev, a);
    await lab.watcher.waitForResult(dev.id, a.id);
    const events = lab.watcher.eventsOf(dev.id);
    expect(new Set(events.map((e) => e.eventId)).size).toBe(events.length);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  });
});
