// The crash-matrix scenarios on the RAUC backend: a real `rauc service` 1.8 on a private
// dbus-daemon (tests/helpers/rauc-device.ts), reboots through the systemd STAND-IN.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RaucDevice, type RaucDeviceOptions } from '../../helpers/rauc-device.js';
import type { SimLab } from '../../helpers/sim-lab.js';
import type { RigDevice, Scenario } from './crash-matrix.js';
import { commandUntilAccepted, updateIdOfStep, waitState } from './fleet-side.js';
import type { FaultBase } from './fault-scenarios.js';

export interface RaucRigDevice extends RigDevice {
  dev: RaucDevice;
}

/** Installs RAUC completed: the sum of `installed.count` over the slots in its central status file. */
export function raucInstalls(d: RaucDevice): number {
  const file = join(d.testbed.dir, 'data', 'central.raucs');
  if (!existsSync(file)) return 0;
  return [...readFileSync(file, 'utf8').matchAll(/^installed\.count=(\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Rewrites the agent's config (a knob RaucDevice does not expose) and restarts the agent. */
export async function patchRaucConfig(d: RaucDevice, patch: (c: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
  await d.agent.stop();
  writeFileSync(d.configPath, JSON.stringify(patch(JSON.parse(readFileSync(d.configPath, 'utf8')) as Record<string, unknown>), null, 2));
  d.agent.start();
  await d.waitOnline();
}

export function wrapRauc(d: RaucDevice): RaucRigDevice {
  return {
    id: d.id,
    dbPath: join(d.dir, 'state', 'agent.db'),
    agent: d.agent,
    logs: d.logs,
    installs: () => raucInstalls(d),
    // The agent is already dead; RAUC goes down with the power; the bootloader picks the slot.
    powerCycle: async () => {
      d.lab.watcher.online.set(d.id, false);
      await d.testbed.simulateBoot();
      d.agent.start();
    },
    close: () => d.close(),
    dev: d,
  };
}

export function raucRig(lab: SimLab, key: string): () => Promise<RaucRigDevice> {
  return async () => {
    const opts: RaucDeviceOptions = { installAttempts: key === 'installFails' ? 1 : 3 };
    if (key === 'fallback') {
      opts.onReboot = async (dev) => {
        await dev.agent.stop();
        // The bootloader's attempts on B ran out: B is marked bad and A boots.
        writeFileSync(join(dev.testbed.dir, 'boot', 'state.B'), 'bad\n');
        await dev.testbed.simulateBoot();
        dev.agent.start();
      };
    }
    const d = await RaucDevice.create(lab, opts);
    if (key === 'rebootCommand') await patchRaucConfig(d, (c) => ({ ...c, reboot: { waitForCommand: true } }));
    return wrapRauc(d);
  };
}

export type RaucScenarioKey = 'good' | 'checkFails' | 'fallback' | 'installFails' | 'downloadFails' | 'cancel' | 'rebootCommand' | 'rollback' | 'powerCutAfterInstall';

export function raucScenarios(lab: SimLab): Record<RaucScenarioKey, Scenario<RaucRigDevice>> {
  const go = async (r: RaucRigDevice, version: string, files?: Record<string, string>, artifactPatch: Record<string, unknown> = {}, compatible?: string) => {
    lab.artifacts.setRate(0);
    const bundle = await r.dev.testbed.buildBundle(version, { ...(files ? { files } : {}), ...(compatible ? { compatible } : {}) });
    return (await r.dev.announce(bundle, version, {}, artifactPatch)).id;
  };
  return {
    good: { name: 'good update', drive: (r) => go(r, '1.1.0') },
    checkFails: { name: 'failing health check', drive: (r) => go(r, '1.1.0', { health: 'degraded' }) },
    fallback: { name: 'bootloader fallback', drive: (r) => go(r, '1.1.0') },
    installFails: { name: 'install refused (wrong compatible)', drive: (r) => go(r, '1.1.0', undefined, {}, 'other-board') },
    downloadFails: { name: 'download refused (sha256 mismatch)', drive: (r) => go(r, '1.1.0', undefined, { sha256: 'e'.repeat(64) }) },
    cancel: {
      name: 'cancel while downloading',
      drive: async (r) => {
        const bundle = await r.dev.testbed.buildBundle('1.1.0');
        // About six seconds of download: time for the command to land while downloading.
        lab.artifacts.setRate(Math.max(20_000, Math.floor(readFileSync(bundle).length / 6)));
        const id = (await r.dev.announce(bundle, '1.1.0')).id;
        await waitState(lab, r.id, ['downloading']);
        await commandUntilAccepted(lab, r.id, 'cancel', () => lab.watcher.eventsOf(r.id).some((e) => e.updateId === id && e.to === 'cancelled'));
        return id;
      },
    },
    powerCutAfterInstall: {
      // RAUC has written the slot and made it primary; the power goes before INSTALLED is recorded.
      name: 'power cut right after the install',
      failpoints: 'backend.install=crash-after',
      afterCrash: 'power-cycle',
      drive: (r) => go(r, '1.1.0'),
    },
    rebootCommand: {
      name: 'reboot on command',
      drive: async (r) => {
        const id = await go(r, '1.1.0');
        await waitState(lab, r.id, ['reboot-deferred']);
        await commandUntilAccepted(lab, r.id, 'reboot', () => lab.watcher.states.get(r.id)?.state !== 'reboot-deferred');
        return id;
      },
    },
    rollback: {
      name: 'rollback command after two committed updates',
      drive: async (r) => {
        // Slot A's factory image has no RAUC version: two updates leave a versioned, good slot to go back to.
        for (const v of ['1.1.0', '1.2.0']) {
          const id = await go(r, v);
          await lab.watcher.waitForResult(r.id, id, 60_000);
          await waitState(lab, r.id, ['idle']);
        }
        await commandUntilAccepted(lab, r.id, 'rollback', () => lab.watcher.eventsOf(r.id).some((e) => e.to === 'rolling-back') || lab.watcher.states.get(r.id)?.state === 'rolling-back');
        return updateIdOfStep(lab, r.id, 'idle', 'rolling-back');
      },
    },
  };
}

/** How the fault scenarios (lib/fault-scenarios.ts) announce on a RAUC device. */
export function raucFaultBase(lab: SimLab): FaultBase<RaucRigDevice> {
  return {
    announce: async (r, o) => {
      lab.artifacts.setRate(0);
      const bundle = await r.dev.testbed.buildBundle('1.1.0', o.failing ? { files: { health: 'degraded' } } : {});
      return (await r.dev.announce(bundle, '1.1.0', o.window ? { rollout: { percent: 100, window: o.window } } : {})).id;
    },
    rollback: (r) => raucScenarios(lab).rollback.drive(r),
  };
}
