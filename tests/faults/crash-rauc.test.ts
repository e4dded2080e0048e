// Crash at every step, RAUC backend (real `rauc service` 1.8, private dbus-daemon, real mosquitto):
// every lifecycle row the scenarios reach, kill -9 right before and right after its commit, restart,
// same result as undisturbed; RAUC never asked to install an update more often than the crash point
// explains (see installsAllowed in lib/crash-matrix.ts). Figures in docs/reliability.md.
import { afterAll, beforeAll, describe, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { crashMatrix } from './lib/matrix-test.js';
import { raucFaultBase, raucRig, raucScenarios } from './lib/rauc-rig.js';
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

describe('crash at every step: RAUC backend', () => {
  it('every reached transition, killed before and after its commit, converges to the undisturbed result', async () => {
    const s = raucScenarios(lab);
    const order = ['good', 'checkFails', 'fallback', 'installFails', 'downloadFails', 'cancel', 'rebootCommand', 'rollback', 'powerCutAfterInstall'] as const;
    // The fault scenarios (lib/fault-scenarios.ts) minus two that `cancel` (a slow download) and `rebootCommand` cover here.
    await crashMatrix('rauc', lab, (key) => raucRig(lab, key), [...order.map((key) => ({ key, sc: s[key] })), ...faultScenarios(lab, raucFaultBase(lab), ['downloadingCancel', 'rebootWindowOpens'])]);
  }, 40 * 60_000);
});
