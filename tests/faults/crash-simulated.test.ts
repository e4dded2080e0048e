// Crash at every step, SIMULATED backend: for every lifecycle row the scenarios reach (computed from
// src/core/transitions.ts and the undisturbed runs), kill -9 right before and right after the
// transaction that persists it, restart, and require the undisturbed result. See docs/reliability.md.
import { afterAll, beforeAll, describe, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { crashMatrix } from './lib/matrix-test.js';
import { simFaultBase, simRig, simScenarios } from './lib/sim-rig.js';
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

describe('crash at every step: simulated backend', () => {
  it('every reached transition, killed before and after its commit, converges to the undisturbed result', async () => {
    const s = simScenarios(lab);
    const order = ['good', 'checkFails', 'fallback', 'installFails', 'downloadFails', 'cancel', 'rebootCommand', 'rollback', 'powerCutAfterInstall'] as const;
    // The fault scenarios (lib/fault-scenarios.ts) minus two that `cancel` (a slow download) and `rebootCommand` cover here.
    await crashMatrix('simulated', lab, (key) => simRig(lab, { rebootOnCommand: key === 'rebootCommand' }), [...order.map((key) => ({ key, sc: s[key] })), ...faultScenarios(lab, simFaultBase(lab), ['downloadingCancel', 'rebootWindowOpens'])]);
  }, 40 * 60_000);
});
