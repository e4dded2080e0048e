// D-Bus faults on the RAUC path, where a call can hang instead of fail. `rauc service` killed
// mid-install and the bus daemon restarted mid-install are covered in
// tests/integration/rauc.e2e.test.ts ("rauc killed mid-install", "the bus restarted mid-install");
// this file adds the calls that never answer: `rauc service` frozen (SIGSTOP) in the middle of an
// install and before the first call, and the dbus-daemon itself frozen mid-install. The agent must
// end the update with a reason (its timeouts) instead of wedging, and take the next update once the
// service is back. The last case also kills (-9) and restarts the agent while RAUC is still frozen:
// the booted-slot guard must outlive the process (src/rauc/guard-marker.ts). Figures in docs/reliability.md.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { RaucDevice } from '../helpers/rauc-device.js';
import { patchRaucConfig } from './lib/rauc-rig.js';
import { record } from './lib/summary.js';

let broker: Mosquitto;
let lab: SimLab;
const devices: RaucDevice[] = [];
const outcomes: Array<{ fault: string; result: string; reason?: string | undefined; message: string; primaryAfterFault: string; nextUpdate: string; seconds: number }> = [];

beforeAll(async () => {
  broker = await Mosquitto.start();
  lab = await SimLab.create(broker.url, 5);
});
afterEach(async () => {
  await Promise.all(devices.splice(0).map((d) => d.close()));
});
afterAll(async () => {
  record('dbus-faults', {
    scenario: 'D-Bus calls that never answer (rauc / dbus-daemon SIGSTOPped)',
    runs: outcomes.length,
    converged: outcomes.filter((o) => o.result === 'failed' && o.nextUpdate === 'committed').length,
    lost: 0,
    duplicated: 0,
    seconds: Math.round(outcomes.reduce((n, o) => n + o.seconds, 0)),
    outcomes,
  });
  await lab?.close();
  await broker?.stop();
});

async function frozenDevice(): Promise<RaucDevice> {
  const d = await RaucDevice.create(lab, { installAttempts: 1 });
  devices.push(d);
  // The shortest install timeout the config allows, so a frozen RAUC costs seconds, not 30 minutes.
  await patchRaucConfig(d, (c) => ({ ...c, backend: { ...(c.backend as object), installTimeoutMs: 10_000 } }));
  return d;
}

const pidOf = (d: RaucDevice, which: 'rauc' | 'dbusDaemon'): number => {
  const p = d.testbed.pids()[which];
  if (!p) throw new Error(`${which} is not running`);
  return p;
};

async function faultCase(fault: string, when: 'installing' | 'before-first-call', target: 'rauc' | 'dbusDaemon', message: RegExp): Promise<void> {
  const t0 = Date.now();
  const d = await frozenDevice();
  const bundle = await d.testbed.buildBundle('1.1.0', { sizeMiB: 24 });
  let pid = 0;
  if (when === 'before-first-call') {
    pid = pidOf(d, target);
    process.kill(pid, 'SIGSTOP');
  }
  const a = await d.announce(bundle, '1.1.0');
  if (when === 'installing') {
    await lab.watcher.waitFor(() => d.state()?.update?.progress?.phase === 'installing', 30_000, 'RAUC installing');
    pid = pidOf(d, target);
    process.kill(pid, 'SIGSTOP');
  }
  let r;
  let logAtCont: number | undefined;
  try {
    r = await lab.watcher.waitForResult(d.id, a.id, 120_000);
    // Not wedged: the agent is idle again with the fault still in place.
    await lab.watcher.waitFor(() => d.state()?.state === 'idle' && d.state(), 60_000, 'idle while the fault lasts');
  } finally {
    logAtCont = d.testbed.raucStderr().length;
    process.kill(pid, 'SIGCONT');
  }
  // Back to normal: a RAUC install frozen half-way finishes after SIGCONT; wait for its last word
  // (bounded) before the next update, which then also puts the booted slot first again.
  if (when === 'installing') {
    const mark = logAtCont ?? 0;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !/succeeded|failed/i.test(d.testbed.raucStderr().slice(mark))) await new Promise((res) => setTimeout(res, 200));
  }
  // Which slot the bootloader would boot now. A frozen RAUC that finishes its install after the
  // agent gave up makes the new slot primary; the agent's BootedSlotGuard must put the booted slot
  // back once RAUC is idle (it polls every 5 s), or the next reboot boots an unchecked update.
  const guardDeadline = Date.now() + 30_000;
  while (Date.now() < guardDeadline && d.testbed.primary() !== d.testbed.bootedSlot()) await new Promise((res) => setTimeout(res, 250));
  const primaryAfterFault = d.testbed.primary();
  expect(primaryAfterFault, 'the next boot after a failed install must be the booted slot').toBe(d.testbed.bootedSlot());
  const b2 = await d.testbed.buildBundle('1.2.0');
  const again = await d.announce(b2, '1.2.0');
  const next = await lab.watcher.waitForResult(d.id, again.id, 90_000);
  outcomes.push({ fault, result: r.result ?? 'none', reason: r.reason, message: r.message ?? '', primaryAfterFault, nextUpdate: next.result ?? 'none', seconds: (Date.now() - t0) / 1000 });
  expect(r.result).toBe('failed');
  expect(r.reason).toBe('INSTALL_FAILED');
  expect(r.message).toMatch(message);
  expect(next.result).toBe('committed');
}

/** The restarted agent's log says it took over the earlier agent's guard (src/rauc/booted-slot-guard.ts). */
const resumedGuard = (d: RaucDevice, from: number): boolean => d.logs.slice(from).some((l) => l.includes('resuming the booted-slot guard of an earlier agent'));

async function restartWhileFrozenCase(): Promise<void> {
  const t0 = Date.now();
  const d = await frozenDevice();
  const booted = d.testbed.bootedSlot();
  const marker = join(d.dir, 'state', 'downloads', 'keep-booted-slot.json');
  const bundle = await d.testbed.buildBundle('1.1.0', { sizeMiB: 24 });
  const callsBefore = d.testbed.bootloaderCalls().length;
  const a = await d.announce(bundle, '1.1.0');
  await lab.watcher.waitFor(() => d.state()?.update?.progress?.phase === 'installing', 30_000, 'RAUC installing');
  const pid = pidOf(d, 'rauc');
  process.kill(pid, 'SIGSTOP');
  let r;
  let callsAtCont: number;
  let logAtCont: number;
  try {
    r = await lab.watcher.waitForResult(d.id, a.id, 120_000);
    await lab.watcher.waitFor(() => d.state()?.state === 'idle' && d.state(), 60_000, 'idle while the fault lasts');
    expect(existsSync(marker), 'the guard is recorded on disk while RAUC is frozen').toBe(true);
    // kill -9 and a new agent, RAUC still frozen: only the record on disk can tell it about the guard.
    await d.agent.crash();
    lab.watcher.online.set(d.id, false);
    const logsAtStart = d.logs.length;
    d.agent.start();
    await lab.watcher.waitFor(() => resumedGuard(d, logsAtStart), 30_000, 'the restarted agent resumes the guard').catch((e: Error) => {
      throw new Error(`${e.message}\n${d.logs.slice(logsAtStart).slice(-20).join('\n')}`);
    });
  } finally {
    callsAtCont = d.testbed.bootloaderCalls().length;
    logAtCont = d.testbed.raucStderr().length;
    process.kill(pid, 'SIGCONT');
  }
  // RAUC finishes the abandoned install (its last word, bounded), which makes the new slot primary...
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && !/succeeded|failed/i.test(d.testbed.raucStderr().slice(logAtCont))) await new Promise((res) => setTimeout(res, 200));
  // ...and the restarted agent's guard puts the booted slot back once RAUC is idle (every 5 s).
  const guardDeadline = Date.now() + 30_000;
  while (Date.now() < guardDeadline && (d.testbed.primary() !== booted || existsSync(marker))) await new Promise((res) => setTimeout(res, 250));
  const primaryAfterFault = d.testbed.primary();
  const calls = d.testbed.bootloaderCalls().slice(callsBefore);
  const contAt = callsAtCont - callsBefore;
  await d.waitOnline();
  const b2 = await d.testbed.buildBundle('1.2.0');
  const again = await d.announce(b2, '1.2.0');
  const next = await lab.watcher.waitForResult(d.id, again.id, 90_000);
  outcomes.push({ fault: 'rauc frozen mid-install, agent kill -9 + restart while frozen', result: r.result ?? 'none', reason: r.reason, message: r.message ?? '', primaryAfterFault, nextUpdate: next.result ?? 'none', seconds: (Date.now() - t0) / 1000 });
  expect(r.result).toBe('failed');
  expect(r.reason).toBe('INSTALL_FAILED');
  // The case bites: RAUC completed the install and made the other slot primary (after SIGCONT, or
  // just before the freeze landed: where it lands varies); after that, and after SIGCONT, the booted
  // slot was made primary again - by the restarted agent, as the first one is dead and RAUC itself
  // never does it.
  const other = booted === 'A' ? 'B' : 'A';
  const raucMadeOtherPrimary = calls.lastIndexOf(`set-primary ${other}`);
  const trace = `bootloader calls since the announcement: ${calls.join(', ')}; SIGCONT after call ${contAt}`;
  expect(raucMadeOtherPrimary, `RAUC completed the abandoned install (${trace})`).toBeGreaterThanOrEqual(0);
  const putBack = calls.indexOf(`set-primary ${booted}`, Math.max(raucMadeOtherPrimary + 1, contAt));
  expect(putBack, `then, after SIGCONT, the booted slot was made primary again (${trace})`).toBeGreaterThanOrEqual(0);
  expect(primaryAfterFault, 'the next boot after a failed install must be the booted slot').toBe(booted);
  expect(existsSync(marker), 'the record is gone once the guard is done').toBe(false);
  expect(next.result).toBe('committed');
}

describe('D-Bus calls that never answer', () => {
  it('rauc service frozen in the middle of an install: the install timeout ends it with a reason; the next update commits', async () => {
    // Where the freeze lands (the Completed wait, or the slot status read right after) varies: both are timeouts.
    await faultCase('rauc frozen mid-install', 'installing', 'rauc', /did not complete within 10000 ms|no answer within 10000 ms/);
  }, 5 * 60_000);

  it('rauc service frozen before the first call: the call timeout ends it with a reason; the next update commits', async () => {
    await faultCase('rauc frozen before the first call', 'before-first-call', 'rauc', /no answer within 10000 ms/);
  }, 5 * 60_000);

  it('the dbus-daemon frozen mid-install: the agent times out instead of waiting forever; the next update commits', async () => {
    await faultCase('dbus-daemon frozen mid-install', 'installing', 'dbusDaemon', /did not complete within 10000 ms|no answer within 10000 ms/);
  }, 5 * 60_000);

  it('rauc frozen mid-install, the agent killed (-9) and restarted while it is still frozen: the restarted agent puts the booted slot back first once RAUC is idle; the next update commits', async () => {
    await restartWhileFrozenCase();
  }, 6 * 60_000);
});
