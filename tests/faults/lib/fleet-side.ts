// What a fleet operator does around a device under test: send a signed command and, when the device
// does not answer it (it was killed before persisting it), send it again; wait for states.
import type { Command } from '../../../src/schemas/command.js';
import type { SimLab } from '../../helpers/sim-lab.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Publishes `command` until the device reports it accepted (a `command` event) or `done()` holds.
 * An accepted command is never re-sent: if it then does not take effect, that is a finding.
 */
export async function commandUntilAccepted(lab: SimLab, deviceId: string, command: Command['command'], done: () => boolean = () => false, attempts = 8): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    const from = lab.watcher.eventsOf(deviceId).length;
    await lab.publishRaw(lab.t.commands(deviceId), lab.commandEnvelope(deviceId, command), false);
    // Long enough for a device that was killed right after accepting it to restart and report it
    // (a restart plus a simulated reboot, under load); re-sending sooner would double the command.
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (done()) return;
      const ev = lab.watcher.eventsOf(deviceId).slice(from);
      if (ev.some((e) => e.type === 'command' && e.command === command)) return;
      await sleep(50);
    }
  }
  throw new Error(`${deviceId} did not accept "${command}" after ${attempts} attempts`);
}

export async function waitState(lab: SimLab, deviceId: string, states: string[], timeoutMs = 60_000): Promise<void> {
  await lab.watcher.waitFor(() => states.includes(lab.watcher.states.get(deviceId)?.state ?? ''), timeoutMs, `${deviceId} in ${states.join('/')}`);
}

/** The id of the update that took `from>to` on this device (e.g. a rollback, whose id the device makes). */
export async function updateIdOfStep(lab: SimLab, deviceId: string, from: string, to: string, timeoutMs = 30_000): Promise<string> {
  const e = await lab.watcher.waitFor(() => lab.watcher.eventsOf(deviceId).find((x) => x.from === from && x.to === to && x.updateId), timeoutMs, `${from}>${to} on ${deviceId}`);
  return e.updateId as string;
}
