// The plain OSTree backend proven against a real ostree 2022.7 sysroot, through the full path:
// signed announcement on a real mosquitto -> agent process (dist/) -> `ostree` CLI (and the
// python3-gi helper) run inside the simulated booted system -> GPG-verified pull from a loopback
// HTTP remote -> staged deploy -> reboot through the systemd stand-in, whose handler finalises the
// staged deployment and boots the default (or, for a fallback, the previous) deployment ->
// health checks -> commit / revert. Needs root, ostree, gnupg, util-linux, python3-gi: a missing
// one fails the test, never skips it (see tests/helpers/ostree-testbed.ts).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { OstreeDevice } from '../helpers/ostree-testbed.js';

let broker: Mosquitto;
let lab: SimLab;
const devices: OstreeDevice[] = [];

beforeAll(async () => {
  broker = await Mosquitto.start();
  lab = await SimLab.create(broker.url, 5);
});
afterEach(async () => {
  await Promise.all(devices.splice(0).map((d) => d.close()));
});
afterAll(async () => {
  await lab?.close();
  await broker?.stop();
});

async function device(opts: Parameters<typeof OstreeDevice.create>[1] = {}): Promise<OstreeDevice> {
  const d = await OstreeDevice.create(lab, opts);
  devices.push(d);
  return d;
}

const result = (d: OstreeDevice, id: string, ms = 60_000) =>
  lab.watcher.waitForResult(d.id, id, ms).catch((e: Error) => {
    throw new Error(`${e.message}\nagent:\n${d.logs.slice(-30).join('\n')}`);
  });
const idleOn = (d: OstreeDevice, version: string) =>
  lab.watcher.waitFor(() => d.state()?.state === 'idle' && d.state()?.runningVersion === version && d.state(), 20_000, `${d.id} idle on ${version}`);
const checksums = (d: OstreeDevice) => d.testbed.deployments().map((x) => `${x.checksum}.${x.serial}`);

describe('OSTree backend (plain ostree CLI)', () => {
  it('pulls the signed commit, stages it, reboots into it, checks, commits', async () => {
    const d = await device();
    // driver "auto" and no org.projectatomic.rpmostree1 on the device's bus: the ostree tool.
    expect(d.chosenDriver()).toMatchObject({ driver: 'ostree', why: expect.stringContaining('neither on the bus nor activatable') });
    const factory = d.testbed.bootedChecksum();
    const commit = await d.testbed.commit('1.1.0');
    const a = await d.announce(commit, '1.1.0');
    const r = await result(d, a.id);
    expect(r.result, r.message).toBe('committed');
    expect(r.checks?.results[0]?.outputTail).toContain('/health: ok');
    await idleOn(d, '1.1.0');
    expect(d.testbed.bootedChecksum()).toBe(commit);
    expect(d.testbed.defaultChecksum()).toBe(commit);
    // The factory deployment stays as the rollback.
    expect(d.testbed.deployments().map((x) => x.checksum)).toEqual([commit, factory]);
    expect(await d.testbed.statusInside()).toMatch(new RegExp(`\\* testos ${commit}\\.0`));
    expect(d.systemd?.calls.map((c) => c.via)).toEqual(['logind']);
    const steps = lab.watcher.eventsOf(d.id).filter((e) => e.updateId === a.id).map((e) => e.to);
    expect(steps).toEqual(['accepted', 'downloading', 'installing', 'rebooting', 'verifying', 'committing', 'committed']);
  });

  it('a failing health check: the previous deployment becomes the default again and boots: reverted', async () => {
    const d = await device();
    const factory = d.testbed.bootedChecksum();
    const commit = await d.testbed.commit('1.1.0', { health: 'degraded' });
    const a = await d.announce(commit, '1.1.0');
    const r = await result(d, a.id);
    expect(r).toMatchObject({ result: 'reverted', reason: 'HEALTH_CHECK_FAILED' });
    expect(r.message).toContain('rootfs-health');
    expect(r.checks?.results[0]?.outputTail).toContain('/health: degraded');
    await idleOn(d, '1.0.0');
    expect(d.testbed.bootedChecksum()).toBe(factory);
    expect(d.testbed.defaultChecksum()).toBe(factory);
    expect(d.reboots).toBe(2);
  });

  it.each([
    ['an unsigned', 'none' as const, /GPG verification failed.*no signatures found/],
    ['a wrongly signed (key not trusted by the device)', 'untrusted' as const, /GPG verification failed.*public key not found/],
  ])('%s commit is refused naming GPG; the deployments stay as they were', async (_name, signer, pattern) => {
    const d = await device();
    const before = checksums(d);
    const commit = await d.testbed.commit('1.1.0', { signer });
    const a = await d.announce(commit, '1.1.0');
    const r = await result(d, a.id);
    expect(r).toMatchObject({ result: 'failed', reason: 'DOWNLOAD_FAILED' });
    expect(r.message).toMatch(pattern);
    await idleOn(d, '1.0.0');
    expect(checksums(d)).toEqual(before);
    expect(d.reboots).toBe(0);
  });

  it('a bootloader fallback (the previous deployment booted) is detected by checksum: reverted', async () => {
    const d = await device({ onReboot: (dev) => dev.cleanReboot(1) });
    const factory = d.testbed.bootedChecksum();
    const commit = await d.testbed.commit('1.1.0');
    const a = await d.announce(commit, '1.1.0');
    const r = await result(d, a.id);
    expect(r).toMatchObject({ result: 'reverted', reason: 'BOOTLOADER_FALLBACK' });
    expect(r.message).toContain(`booted slot ${factory}`);
    await idleOn(d, '1.0.0');
    expect(d.testbed.bootedChecksum()).toBe(factory);
    // After the fallback the running deployment is the default again (the backend's clean-up at the
    // terminal state does it: the core calls keepBootedSlot only for failed/cancelled).
    expect(d.testbed.defaultChecksum()).toBe(factory);
  });
});
