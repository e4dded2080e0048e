// The OSTree backend's rpm-ostree driver through the full path: signed announcement on a real
// mosquitto -> agent process (dist/), which finds org.projectatomic.rpmostree1 on the device's bus
// by itself (driver "auto") -> the rpm-ostree STAND-IN (tests/helpers/rpmostree-standin.py: the
// real interface on a private dbus-daemon, the work done by libostree and the ostree tool on a real
// sysroot; not rpm-ostree, which Debian 12 does not have) -> GPG-verified pull, locked staged
// deployment -> FinalizeDeployment, whose reboot reaches the systemd stand-in -> the simulated
// power cycle (finalize-staged, bootloader picks an entry, a new rpm-ostreed) -> health checks ->
// Cleanup / Rollback.
//
// To keep the file's runtime down, the four scenarios run one after another on ONE device (each
// needs the previous one's end state: versions only go up). The plain driver's full path is in
// tests/integration/ostree.e2e.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { OstreeDevice } from '../helpers/ostree-testbed.js';

let broker: Mosquitto;
let lab: SimLab;
let d: OstreeDevice;
/** What the next reboot does: boot the default entry, or fall back to the previous one. */
let nextBoot: 'default' | 'fallback' = 'default';
const booted: Record<string, string> = {};

beforeAll(async () => {
  broker = await Mosquitto.start();
  lab = await SimLab.create(broker.url, 5);
  d = await OstreeDevice.create(lab, { rpmOstree: true, onReboot: (dev) => dev.cleanReboot(nextBoot === 'fallback' ? 1 : 0) });
  booted['1.0.0'] = d.testbed.bootedChecksum();
});
afterAll(async () => {
  await d?.close();
  await lab?.close();
  await broker?.stop();
});

const result = (id: string, ms = 60_000) =>
  lab.watcher.waitForResult(d.id, id, ms).catch((e: Error) => {
    throw new Error(`${e.message}\nagent:\n${d.logs.slice(-30).join('\n')}\nrpm-ostree stand-in:\n${d.rpmOstree?.log.slice(-30).join('\n') ?? ''}`);
  });
const idleOn = (version: string) =>
  lab.watcher.waitFor(() => d.state()?.state === 'idle' && d.state()?.runningVersion === version && d.state(), 20_000, `${d.id} idle on ${version}`);
const steps = (id: string) => lab.watcher.eventsOf(d.id).filter((e) => e.updateId === id).map((e) => e.to);
/** The stand-in's transactions, in order ("UpdateDeployment", "FinalizeDeployment", ...). */
const transactionsSince = (n: number) =>
  (d.rpmOstree?.log ?? [])
    .slice(n)
    .map((l) => /transaction (\w+) finished: success=(\w+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1]}:${m[2]}`);

// Each scenario is one or two simulated reboots of a real agent process: room above the default 60 s.
describe('OSTree backend, rpm-ostree driver (against the rpm-ostree stand-in), one device', { timeout: 120_000 }, () => {
  it('the agent chose the rpm-ostree driver because the name is on its bus', () => {
    expect(d.chosenDriver()).toMatchObject({ driver: 'rpm-ostree', why: 'org.projectatomic.rpmostree1 is on the bus' });
  });

  it('a good commit: pulled and staged by rpm-ostree, FinalizeDeployment reboots into it, checks pass: committed', async () => {
    const mark = d.rpmOstree?.log.length ?? 0;
    const commit = await d.testbed.commit('1.1.0');
    const a = await d.announce(commit, '1.1.0');
    const r = await result(a.id);
    expect(r.result, r.message).toBe('committed');
    expect(r.checks?.results[0]?.outputTail).toContain('/health: ok');
    await idleOn('1.1.0');
    booted['1.1.0'] = commit;
    expect(d.testbed.bootedChecksum()).toBe(commit);
    expect(d.testbed.defaultChecksum()).toBe(commit);
    expect(steps(a.id)).toEqual(['accepted', 'downloading', 'installing', 'rebooting', 'verifying', 'committing', 'committed']);
    // download-only, staged with lock-finalization, finalised (which rebooted), then cleanup.
    expect(transactionsSince(mark)).toEqual(['UpdateDeployment:True', 'UpdateDeployment:True', 'FinalizeDeployment:True', 'Cleanup:True']);
    // The one reboot came from rpm-ostree (after FinalizeDeployment), through logind.
    expect(d.systemd?.calls.map((c) => c.via)).toEqual(['logind']);
    expect((d.rpmOstree?.log ?? []).slice(mark).filter((l) => l.includes('initiating reboot'))).toHaveLength(1);
    expect(d.testbed.deployments().map((x) => x.checksum)).toEqual([commit, booted['1.0.0']]);
  });

  it('a failing health check: Rollback, reboot into the previous deployment: reverted', async () => {
    const mark = d.rpmOstree?.log.length ?? 0;
    const reboots = d.reboots;
    const commit = await d.testbed.commit('1.2.0', { health: 'degraded' });
    const a = await d.announce(commit, '1.2.0');
    const r = await result(a.id);
    expect(r).toMatchObject({ result: 'reverted', reason: 'HEALTH_CHECK_FAILED' });
    expect(r.checks?.results[0]?.outputTail).toContain('/health: degraded');
    await idleOn('1.1.0');
    expect(d.testbed.bootedChecksum()).toBe(booted['1.1.0']);
    expect(d.testbed.defaultChecksum()).toBe(booted['1.1.0']);
    expect(d.reboots - reboots).toBe(2);
    expect(transactionsSince(mark)).toEqual(['UpdateDeployment:True', 'UpdateDeployment:True', 'FinalizeDeployment:True', 'Rollback:True']);
  });

  it('a commit signed by a key the device does not trust: the pull transaction fails, the agent refuses naming GPG', async () => {
    const before = d.testbed.deployments().map((x) => `${x.checksum}.${x.serial}`);
    const reboots = d.reboots;
    const commit = await d.testbed.commit('1.2.1', { signer: 'untrusted' });
    const a = await d.announce(commit, '1.2.1');
    const r = await result(a.id);
    expect(r).toMatchObject({ result: 'failed', reason: 'DOWNLOAD_FAILED' });
    expect(r.message).toMatch(new RegExp(`refused commit ${commit} of updates:testos/stable: GPG verification failed: .*public key not found`));
    await idleOn('1.1.0');
    expect(d.testbed.deployments().map((x) => `${x.checksum}.${x.serial}`)).toEqual(before);
    expect(d.reboots).toBe(reboots);
  });

  it('a bootloader fallback (the previous deployment booted) is detected by checksum; the update is cleaned up: reverted', async () => {
    nextBoot = 'fallback';
    const mark = d.rpmOstree?.log.length ?? 0;
    const commit = await d.testbed.commit('1.3.0');
    const a = await d.announce(commit, '1.3.0');
    const r = await result(a.id);
    nextBoot = 'default';
    expect(r).toMatchObject({ result: 'reverted', reason: 'BOOTLOADER_FALLBACK' });
    expect(r.message).toContain(`booted slot ${booted['1.1.0']}`);
    await idleOn('1.1.0');
    expect(d.testbed.bootedChecksum()).toBe(booted['1.1.0']);
    // The fallen-back commit does not stay the next boot's choice: Cleanup(pending-deploy) removed it.
    expect(d.testbed.defaultChecksum()).toBe(booted['1.1.0']);
    expect(d.testbed.deployments().map((x) => x.checksum)).not.toContain(commit);
    expect(transactionsSince(mark)).toEqual(['UpdateDeployment:True', 'UpdateDeployment:True', 'FinalizeDeployment:True', 'Cleanup:True']);
  });
});
