// The crash-matrix scenarios on the SIMULATED backend (src/simulated): every outcome the table has
// that a scenario can reach, driven over a real mosquitto by signed announcements and commands.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SimLab, LabDevice } from '../../helpers/sim-lab.js';
import type { RigDevice, Scenario } from './crash-matrix.js';
import { commandUntilAccepted, updateIdOfStep, waitState } from './fleet-side.js';
import type { FaultBase } from './fault-scenarios.js';

export interface SimRigDevice extends RigDevice {
  lab: LabDevice;
}

export function simRig(lab: SimLab, opts: { rebootOnCommand?: boolean } = {}): () => Promise<SimRigDevice> {
  return async () => {
    const d = await lab.device(opts.rebootOnCommand ? { configOverride: (c) => ({ ...c, reboot: { waitForCommand: true } }) } : {});
    return {
      id: d.id,
      dbPath: join(d.dir, 'state', 'agent.db'),
      agent: d.sim,
      logs: d.logs,
      installs: () => null,
      // What the simulated backend's own reboot leaves behind: the bootloader picks the slot at the next start.
      powerCycle: async () => {
        writeFileSync(join(d.dir, 'device', 'reboot-requested'), 'power cut\n');
        d.sim.start();
      },
      close: () => d.sim.stop(),
      lab: d,
    };
  };
}

export type SimScenarioKey = 'good' | 'checkFails' | 'fallback' | 'installFails' | 'downloadFails' | 'cancel' | 'rebootCommand' | 'rollback' | 'powerCutAfterInstall';

export function simScenarios(lab: SimLab): Record<SimScenarioKey, Scenario<SimRigDevice>> {
  const announce = async (d: SimRigDevice, ...args: Parameters<SimLab['announcement']> extends [unknown, ...infer R] ? R : never) => {
    lab.artifacts.setRate(0);
    const a = lab.announcement(d.lab, ...args);
    await lab.announce(d.lab, a);
    return a.id;
  };
  return {
    good: { name: 'good update', drive: (d) => announce(d, '1.1.0') },
    checkFails: { name: 'failing health check', drive: (d) => announce(d, '1.1.0', { health: 'degraded' }) },
    fallback: { name: 'bootloader fallback', drive: (d) => announce(d, '1.1.0', { bootable: false }) },
    installFails: {
      name: 'install refused (image version differs)',
      drive: async (d) => {
        const img = lab.image('1.1.9', { compatible: d.lab.compatible });
        return announce(d, '1.1.0', { patch: { artifact: { url: img.url, sha256: img.sha256, size: img.size } } });
      },
    },
    downloadFails: {
      name: 'download refused (sha256 mismatch)',
      drive: async (d) => {
        const img = lab.image('1.1.0', { compatible: d.lab.compatible });
        return announce(d, '1.1.0', { patch: { artifact: { url: img.url, sha256: 'e'.repeat(64), size: img.size } } });
      },
    },
    cancel: {
      name: 'cancel while downloading',
      drive: async (d) => {
        const id = await announce(d, '1.1.0', { padBytes: 300_000 });
        lab.artifacts.setRate(100_000);
        await waitState(lab, d.id, ['downloading']);
        await commandUntilAccepted(lab, d.id, 'cancel', () => lab.watcher.eventsOf(d.id).some((e) => e.updateId === id && e.to === 'cancelled'));
        return id;
      },
    },
    powerCutAfterInstall: {
      // The slot is written and chosen for the next boot; the power goes before INSTALLED is recorded.
      name: 'power cut right after the install',
      failpoints: 'backend.install=crash-after',
      afterCrash: 'power-cycle',
      drive: (d) => announce(d, '1.1.0'),
    },
    rebootCommand: {
      name: 'reboot on command',
      drive: async (d) => {
        const id = await announce(d, '1.1.0');
        await waitState(lab, d.id, ['reboot-deferred']);
        await commandUntilAccepted(lab, d.id, 'reboot', () => lab.watcher.states.get(d.id)?.state !== 'reboot-deferred');
        return id;
      },
    },
    rollback: {
      name: 'rollback command after a committed update',
      drive: async (d) => {
        const first = await announce(d, '1.1.0');
        await lab.watcher.waitForResult(d.id, first, 60_000);
        await waitState(lab, d.id, ['idle']);
        await commandUntilAccepted(lab, d.id, 'rollback', () => lab.watcher.eventsOf(d.id).some((e) => e.to === 'rolling-back') || lab.watcher.states.get(d.id)?.state === 'rolling-back');
        return updateIdOfStep(lab, d.id, 'idle', 'rolling-back');
      },
    },
  };
}

/** How the fault scenarios (lib/fault-scenarios.ts) announce on a simulated device. */
export function simFaultBase(lab: SimLab): FaultBase<SimRigDevice> {
  return {
    announce: async (d, o) => {
      lab.artifacts.setRate(0);
      const a = lab.announcement(d.lab, '1.1.0', { ...(o.failing ? { health: 'degraded' } : {}), ...(o.window ? { patch: { rollout: { percent: 100, window: o.window } } } : {}) });
      await lab.announce(d.lab, a);
      return a.id;
    },
    rollback: (d) => simScenarios(lab).rollback.drive(d),
  };
}
