// Crash at every step, plain OSTree backend (real ostree sysroot, real mosquitto): every lifecycle
// row the scenarios reach, kill -9 right before and right after its commit, restart, same result
// as undisturbed. Figures in docs/reliability.md.
import { afterAll, beforeAll, describe, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { crashMatrix } from './lib/matrix-test.js';
import { ostreeFaultBase, ostreeRig, ostreeScenarios } from './lib/ostree-rig.js';
import { faultScenarios } from './lib/fault-scenarios.js';

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

describe('crash at every step: OSTree backend', () => {
  it('every reached transition, killed before and after its commit, converges to the undisturbed result', async () => {
    const s = ostreeScenarios(lab);
    const order = ['good', 'checkFails', 'fallback', 'downloadFails', 'rollback', 'rebootAfterInstall'] as const;
    await crashMatrix('ostree', lab, (key) => ostreeRig(lab, key), [...order.map((key) => ({ key, sc: s[key] })), ...faultScenarios(lab, ostreeFaultBase(lab))]);
  }, 40 * 60_000);
});
