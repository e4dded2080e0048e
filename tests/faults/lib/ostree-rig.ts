// The crash-matrix scenarios on the plain OSTree backend: a real ostree sysroot, GPG-verified pulls
// from a loopback remote, reboots through the systemd STAND-IN (tests/helpers/ostree-testbed.ts).
import { join } from 'node:path';
import { OstreeDevice, type OstreeDeviceOptions } from '../../helpers/ostree-testbed.js';
import type { SimLab } from '../../helpers/sim-lab.js';
import type { RigDevice, Scenario } from './crash-matrix.js';

export interface OstreeRigDevice extends RigDevice {
  dev: OstreeDevice;
}


export function ostreeRig(lab: SimLab, key: string): () => Promise<OstreeRigDevice> {
  return async () => {
    const opts: OstreeDeviceOptions = key === 'fallback' ? { onReboot: (dev) => dev.cleanReboot(1) } : {};
    const d = await OstreeDevice.create(lab, opts);
    return { id: d.id, dbPath: join(d.testbed.dir, 'agent-state', 'agent.db'), agent: d.agent, logs: d.logs, installs: () => null, close: () => d.close(), dev: d };
  };
}

export type OstreeScenarioKey = 'good' | 'checkFails' | 'fallback' | 'downloadFails';

export function ostreeScenarios(): Record<OstreeScenarioKey, Scenario<OstreeRigDevice>> {
  const go = async (r: OstreeRigDevice, version: string, o: Parameters<OstreeDevice['testbed']['commit']>[1] = {}) => {
    const commit = await r.dev.testbed.commit(version, o);
    return (await r.dev.announce(commit, version)).id;
  };
  return {
    good: { name: 'good update', drive: (r) => go(r, '1.1.0') },
    checkFails: { name: 'failing health check', drive: (r) => go(r, '1.1.0', { health: 'degraded' }) },
    fallback: { name: 'bootloader fallback', drive: (r) => go(r, '1.1.0') },
    downloadFails: { name: 'pull refused (unsigned commit)', drive: (r) => go(r, '1.1.0', { signer: 'none' }) },
  };
}
