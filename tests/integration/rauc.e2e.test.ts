// The RAUC backend proven against a real `rauc service` 1.8 on a private dbus-daemon, through the
// full path: signed announcement on a real mosquitto -> agent -> RAUC over D-Bus -> reboot through
// the systemd stand-in -> the simulated bootloader -> health checks -> Mark good / bad.
import { copyFileSync, existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { RaucDevice } from '../helpers/rauc-device.js';
import { raucInstalls } from '../faults/lib/rauc-rig.js';
import { randomBytes } from 'node:crypto';

const d0 = () => randomBytes(4).toString('hex');

const run = promisify(execFile);
let broker: Mosquitto;
let lab: SimLab;
const devices: RaucDevice[] = [];

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

async function device(opts: Parameters<typeof RaucDevice.create>[1] = {}): Promise<RaucDevice> {
  const d = await RaucDevice.create(lab, opts);
  devices.push(d);
  return d;
}

const result = (d: RaucDevice, id: string, ms = 60_000) =>
  lab.watcher.waitForResult(d.id, id, ms).catch((e: Error) => {
    throw new Error(`${e.message}\nagent:\n${d.logs.slice(-25).join('\n')}\nrauc:\n${d.testbed.raucStderr().slice(-1500)}`);
  });
const idleOn = (d: RaucDevice, version: string) =>
  lab.watcher.waitFor(() => d.state()?.state === 'idle' && d.state()?.runningVersion === version && d.state(), 20_000, `${d.id} idle on ${version}`);

describe('RAUC backend', () => {
  it('installs a good bundle into the other slot, reboots, checks, marks good: committed', async () => {
    const d = await device();
    const bundle = await d.testbed.buildBundle('1.1.0');
    const a = await d.announce(bundle, '1.1.0');
    const r = await result(d, a.id);
    expect(r.result).toBe('committed');
    expect(r.checks?.results[0]?.outputTail).toContain('slot B /health: ok');
    await idleOn(d, '1.1.0');
    // The bytes RAUC wrote into slot B are the bundle's image, and the bootloader agrees.
    expect(d.testbed.slotSha256('B', d.testbed.imageSize(bundle))).toBe(d.testbed.imageSha256(bundle));
    expect(d.testbed.bootedSlot()).toBe('B');
    expect(d.testbed.primary()).toBe('B');
    expect(d.testbed.slotState('B')).toBe('good');
    expect(d.systemd?.calls.map((c) => c.via)).toEqual(['logind']);
    const steps = lab.watcher.eventsOf(d.id).filter((e) => e.updateId === a.id).map((e) => e.to);
    expect(steps).toEqual(['accepted', 'downloading', 'installing', 'rebooting', 'verifying', 'committing', 'committed']);
    // ota-agent status shows both slots from GetSlotStatus.
    const { stdout } = await run(process.execPath, ['dist/cli/ota-agent.js', '-c', d.configPath, 'status', '--json']);
    const status = JSON.parse(stdout) as { slots: Array<{ name: string; booted: boolean; version?: string; bootStatus?: string }> };
    expect(status.slots.map((s) => [s.name, s.booted, s.version, s.bootStatus]).sort()).toEqual([
      ['A', false, undefined, 'good'],
      ['B', true, '1.1.0', 'good'],
    ]);
  });

  it('a failing health check after the reboot marks the slot bad and boots the old one: reverted', async () => {
    const d = await device();
    const bundle = await d.testbed.buildBundle('1.1.0', { files: { health: 'degraded' } });
    const a = await d.announce(bundle, '1.1.0');
    const r = await result(d, a.id);
    expect(r).toMatchObject({ result: 'reverted', reason: 'HEALTH_CHECK_FAILED' });
    expect(r.message).toContain('rootfs-health');
    expect(r.checks?.results[0]?.outputTail).toContain('slot B /health: degraded');
    await idleOn(d, '1.0.0');
    expect(d.testbed.bootedSlot()).toBe('A');
    expect(d.testbed.primary()).toBe('A');
    expect(d.testbed.slotState('B')).toBe('bad');
    expect(d.testbed.bootloaderCalls()).toEqual(expect.arrayContaining(['set-state B bad', 'set-primary A']));
  });

  describe('bad bundles fail with a reason, and the slots stay as they were', () => {
    const cases: Array<[string, (d: RaucDevice) => Promise<{ path: string; patch?: Record<string, unknown> }>, RegExp]> = [
      ['signed by an untrusted CA', async (d) => ({ path: await d.testbed.buildBundle('1.1.0', { signer: 'untrusted' }) }), /signature verification failed/],
      ['wrong compatible', async (d) => ({ path: await d.testbed.buildBundle('1.1.0', { compatible: 'other-board' }) }), /Compatible mismatch/],
      [
        'truncated',
        async (d) => {
          const p = await d.testbed.buildBundle('1.1.0');
          const cut = join(d.dir, 'truncated.raucb');
          copyFileSync(p, cut);
          truncateSync(cut, Math.floor(readFileSync(cut).length / 2));
          return { path: cut };
        },
        /Invalid bundle format|signature|squashfs|bundle/i,
      ],
      ['sha256 mismatch', async (d) => ({ path: await d.testbed.buildBundle('1.1.0'), patch: { sha256: 'f'.repeat(64) } }), /sha256 mismatch/],
      ['404', async (d) => ({ path: await d.testbed.buildBundle('1.1.0'), patch: { url: lab.artifacts.url('does-not-exist.raucb') } }), /404/],
    ];
    it.each(cases)('%s', async (_name, make, pattern) => {
      const d = await device({ installAttempts: 1 });
      const before = { a: d.testbed.slotSha256('A'), b: d.testbed.slotSha256('B'), primary: d.testbed.primary() };
      const { path, patch } = await make(d);
      // A broken artifact field is properly signed: a fleet-side mistake or a bad mirror, not an attack.
      const a = await d.announce(path, '1.1.0', {}, patch ?? {});
      const r = await result(d, a.id);
      expect(r.result).toBe('failed');
      expect(r.reason).toMatch(/DOWNLOAD_FAILED|INSTALL_FAILED/);
      expect(r.message).toMatch(pattern);
      await idleOn(d, '1.0.0');
      expect({ a: d.testbed.slotSha256('A'), primary: d.testbed.primary() }).toEqual({ a: before.a, primary: before.primary });
      if (!/404|sha256/.test(_name)) return;
      // Nothing was handed to RAUC at all when the download failed: slot B untouched too.
      expect(d.testbed.slotSha256('B')).toBe(before.b);
    });
  });

  it('rauc killed mid-install: a clear failure; with RAUC back, the next attempt succeeds', async () => {
    const d = await device({ installAttempts: 1 });
    const bundle = await d.testbed.buildBundle('1.1.0', { sizeMiB: 24 });
    const a = await d.announce(bundle, '1.1.0');
    await lab.watcher.waitFor(() => d.state()?.state === 'installing', 20_000, 'installing');
    await d.testbed.killRauc();
    const r = await result(d, a.id);
    expect(r).toMatchObject({ result: 'failed', reason: 'INSTALL_FAILED' });
    expect(r.message).toMatch(/left the bus|ServiceUnknown|NameHasNoOwner|disconnect|RAUC/i);
    await d.testbed.startRauc('A');
    const again = await d.announce(bundle, '1.1.0');
    expect((await result(d, again.id)).result).toBe('committed');
  });

  it('the bus restarted mid-install: the retry policy carries the same update to committed', async () => {
    const d = await device({ installAttempts: 4 });
    const bundle = await d.testbed.buildBundle('1.1.0', { sizeMiB: 28 });
    const a = await d.announce(bundle, '1.1.0');
    // RAUC reporting progress means its install is under way.
    await lab.watcher.waitFor(() => d.state()?.update?.progress?.phase === 'installing', 20_000, 'RAUC installing');
    await d.testbed.restartBus();
    await d.startSystemd();
    const r = await result(d, a.id);
    if (r.result !== 'committed') throw new Error(`${r.result}: ${r.message}\n${d.logs.filter((l) => /retry|RAUC|rauc|error|fail/i.test(l)).slice(-20).join('\n')}\nrauc:\n${d.testbed.raucStderr().slice(-1500)}`);
    // Where exactly the restart lands (InstallBundle, the Completed wait, GetSlotStatus) varies; each
    // of those paths is retried, and the update must end committed whichever it hit.
    expect(d.testbed.bootedSlot()).toBe('B');
  });

  it('reboot through systemd reboot.target, and RAUC fetching the URL itself when configured', async () => {
    const d = await device({ rebootMethod: 'systemd', passUrlToRauc: true });
    const bundle = await d.testbed.buildBundle('1.1.0');
    const a = await d.announce(bundle, '1.1.0');
    expect((await result(d, a.id)).result).toBe('committed');
    expect(d.systemd?.calls.map((c) => [c.via, c.detail])).toEqual([['systemd', { unit: 'reboot.target', mode: 'replace-irreversibly' }]]);
    // RAUC, not the agent, fetched the bundle: the agent never even made its download directory.
    expect(lab.artifacts.requests.filter((r) => r.includes(d.compatible)).length).toBeGreaterThan(0);
    expect(existsSync(join(d.dir, 'state', 'downloads'))).toBe(false);
  });

  it('ota-agent install FILE: an offline RAUC bundle goes through the same lifecycle; an untrusted one is refused', async () => {
    const d = await device();
    const bad = await d.testbed.buildBundle('1.2.0', { signer: 'untrusted' });
    const refused = await run(process.execPath, ['dist/cli/ota-agent.js', '-c', d.configPath, 'install', bad]).catch((e: { code: number; stderr: string }) => e);
    expect(refused).toMatchObject({ code: 1 });
    expect((refused as { stderr: string }).stderr).toMatch(/refused \(ARTIFACT_INVALID\).*not a valid rauc update/);
    const before = d.testbed.slotSha256('B');
    expect(d.testbed.primary()).toBe('A');
    expect(d.testbed.slotSha256('B')).toBe(before);

    const good = await d.testbed.buildBundle('1.2.0');
    const { stdout } = await run(process.execPath, ['dist/cli/ota-agent.js', '-c', d.configPath, 'install', good]);
    const id = /as (local-\d+)/.exec(stdout)?.[1] ?? 'missing';
    const r = await result(d, id);
    expect(r).toMatchObject({ result: 'committed', version: '1.2.0' });
    expect(d.testbed.bootedSlot()).toBe('B');
  });

  it('a bootloader fallback (the new slot never came up) is reported as such, never as success', async () => {
    const d = await device({
      onReboot: async (dev) => {
        await dev.agent.stop();
        // The bootloader's attempt counter for B ran out: it marks B bad and boots A.
        writeFileSync(join(dev.testbed.dir, 'boot', 'state.B'), 'bad\n');
        await dev.testbed.simulateBoot();
        dev.agent.start();
      },
    });
    const bundle = await d.testbed.buildBundle('1.1.0');
    const a = await d.announce(bundle, '1.1.0');
    const r = await result(d, a.id);
    expect(r).toMatchObject({ result: 'reverted', reason: 'BOOTLOADER_FALLBACK' });
    expect(r.message).toMatch(/booted slot A/);
    expect(r.message).toMatch(/B \(inactive.*bad.*1\.1\.0\)/);
    await idleOn(d, '1.0.0');
  });

  it('power lost after RAUC finished the install, before INSTALLED was written: the new boot is verified, nothing installed twice', async () => {
    // The agent dies (crash point) right before committing INSTALLED; RAUC has written slot B and made
    // it primary. Then the power goes: the bootloader boots B. Installing again from there would
    // overwrite A, the slot to go back to.
    const marker = join(lab.dir, `crash-${d0()}`);
    process.env.OTA_AGENT_CRASH_AT = 'before:installing->rebooting:INSTALLED';
    process.env.OTA_AGENT_CRASH_ONCE = marker;
    let d: RaucDevice;
    try {
      d = await device();
    } finally {
      delete process.env.OTA_AGENT_CRASH_AT;
      delete process.env.OTA_AGENT_CRASH_ONCE;
    }
    const slotA = d.testbed.slotSha256('A');
    const bundle = await d.testbed.buildBundle('1.1.0');
    const a = await d.announce(bundle, '1.1.0');
    await lab.watcher.waitFor(() => existsSync(marker) && d.agent.pid === undefined, 60_000, 'the agent killed at the crash point');
    await d.testbed.killRauc();
    lab.watcher.online.set(d.id, false);
    expect(await d.testbed.simulateBoot()).toBe('B');
    d.agent.start();
    const r = await result(d, a.id);
    expect(r.result).toBe('committed');
    await idleOn(d, '1.1.0');
    expect(raucInstalls(d)).toBe(1);
    expect(d.reboots).toBe(0);
    expect(d.testbed.slotSha256('A')).toBe(slotA);
    expect(d.testbed.slotSha256('B', d.testbed.imageSize(bundle))).toBe(d.testbed.imageSha256(bundle));
    expect(d.testbed.slotState('B')).toBe('good');
    const steps = lab.watcher.eventsOf(d.id).filter((e) => e.updateId === a.id).map((e) => `${e.from ?? ''}>${e.to ?? ''}`);
    expect(steps).toEqual(['idle>accepted', 'accepted>downloading', 'downloading>installing', 'installing>verifying', 'verifying>committing', 'committing>committed']);
  });

  it('agent killed between install and reboot: it resumes and reboots; killed while verifying: it resumes and commits', async () => {
    let first = true;
    const d = await device({
      healthDelaySeconds: 2,
      onReboot: async (dev) => {
        if (first) {
          // The reboot request reached systemd, but the agent dies before anything happens.
          first = false;
          await dev.agent.crash();
          dev.agent.start();
          return;
        }
        await dev.cleanReboot();
      },
    });
    const bundle = await d.testbed.buildBundle('1.1.0');
    const a = await d.announce(bundle, '1.1.0');
    await lab.watcher.waitFor(() => d.state()?.state === 'verifying' && d.reboots >= 2, 60_000, 'verifying after the second reboot request');
    await new Promise((r) => setTimeout(r, 500));
    await d.agent.crash();
    d.agent.start();
    const r = await result(d, a.id);
    expect(r.result).toBe('committed');
    expect(d.reboots).toBe(2);
    const events = lab.watcher.eventsOf(d.id);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.updateId === a.id).map((e) => e.to)).toEqual(['accepted', 'downloading', 'installing', 'rebooting', 'verifying', 'committing', 'committed']);
  });
});
