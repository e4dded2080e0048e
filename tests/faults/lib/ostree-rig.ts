// The crash-matrix scenarios on the plain OSTree backend: a real ostree sysroot, GPG-verified pulls
// from a loopback remote, reboots through the systemd STAND-IN (tests/helpers/ostree-testbed.ts).
import { join } from 'node:path';
import { OstreeDevice, type OstreeDeviceOptions } from '../../helpers/ostree-testbed.js';
import type { SimLab } from '../../helpers/sim-lab.js';
import type { RigDevice, Scenario } from './crash-matrix.js';
import type { FaultBase } from './fault-scenarios.js';
import { commandUntilAccepted, updateIdOfStep, waitState } from './fleet-side.js';

export interface OstreeRigDevice extends RigDevice {
  dev: OstreeDevice;
}


export function ostreeRig(lab: SimLab, key: string): () => Promise<OstreeRigDevice> {
  return async () => {
    const opts: OstreeDeviceOptions = key === 'fallback' ? { onReboot: (dev) => dev.cleanReboot(1) } : {};
    const d = await OstreeDevice.create(lab, opts);
    return {
      id: d.id,
      dbPath: join(d.testbed.dir, 'agent-state', 'agent.db'),
      agent: d.agent,
      logs: d.logs,
      installs: () => null,
      // A staged deployment survives only a clean shutdown (ostree-finalize-staged), so the "power
      // cycle" here is a clean reboot by someone else: a power cut would simply boot the old one.
      powerCycle: () => d.cleanReboot(),
      close: () => d.close(),
      dev: d,
    };
  };
}

export type OstreeScenarioKey = 'good' | 'checkFails' | 'fallback' | 'downloadFails' | 'rollback' | 'rebootAfterInstall';

export function ostreeScenarios(lab: SimLab): Record<OstreeScenarioKey, Scenario<OstreeRigDevice>> {
  const go = async (r: OstreeRigDevice, version: string, o: Parameters<OstreeDevice['testbed']['commit']>[1] = {}) => {
    const commit = await r.dev.testbed.commit(version, o);
    return (await r.dev.announce(commit, version)).id;
  };
  return {
    good: { name: 'good update', drive: (r) => go(r, '1.1.0') },
    checkFails: { name: 'failing health check', drive: (r) => go(r, '1.1.0', { health: 'degraded' }) },
    fallback: { name: 'bootloader fallback', drive: (r) => go(r, '1.1.0') },
    downloadFails: { name: 'pull refused (unsigned commit)', drive: (r) => go(r, '1.1.0', { signer: 'none' }) },
    rollback: { name: 'rollback command after a committed update', drive: (r) => ostreeFaultBase(lab).rollback?.(r) ?? Promise.reject(new Error('no rollback')) },
    rebootAfterInstall: {
      name: 'a reboot right after the deployment was staged',
      failpoints: 'backend.install=crash-after',
      afterCrash: 'power-cycle',
      drive: (r) => go(r, '1.1.0'),
    },
  };
}

/** How the fault scenarios (lib/fault-scenarios.ts) announce on an OSTree device; a rollback goes back to the factory deployment. */
export function ostreeFaultBase(lab: SimLab): FaultBase<OstreeRigDevice> {
  const announce: FaultBase<OstreeRigDevice>['announce'] = async (r, o) => {
    const commit = await r.dev.testbed.commit('1.1.0', o.failing ? { health: 'degraded' } : {});
    return (await r.dev.announce(commit, '1.1.0', o.window ? { rollout: { percent: 100, window: o.window } } : {})).id;
  };
  return {
    announce,
    rollback: async (r) => {
      const first = await announce(r, {});
      await lab.watcher.waitForResult(r.id, first, 90_000);
      await waitState(lab, r.id, ['idle']);
      await commandUntilAccepted(lab, r.id, 'rollback', () => lab.watcher.eventsOf(r.id).some((e) => e.to === 'rolling-back') || lab.watcher.states.get(r.id)?.state === 'rolling-back');
      return updateIdOfStep(lab, r.id, 'idle', 'rolling-back');
    },
  };
}
