// `ota-fleet simulate` against a real mosquitto: 20 in-process devices (the real Agent, one SQLite
// store, simulated slots and MQTT connection each) with every kind of fault; the report's totals
// must match the faults device by device.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSimulation, renderSimulateReport, type SimulateReport } from '../../src/fleet/simulate.js';
import { Mosquitto } from '../helpers/mosquitto.js';

let broker: Mosquitto;
beforeAll(async () => {
  broker = await Mosquitto.start();
});
afterAll(async () => {
  await broker?.stop();
});

describe('ota-fleet simulate', () => {
  it('20 devices with health-check, bootloader, connection, duplicate and reorder faults end as predicted', async () => {
    const progress: string[] = [];
    const r = await runSimulation({
      devices: 20,
      brokerUrl: broker.url,
      failShare: 0.2,
      fallbackShare: 0.1,
      dropShare: 0.1,
      dupShare: 0.1,
      reorderShare: 0.1,
      timeoutMs: 45_000,
      onProgress: (l) => progress.push(l),
    });
    const table = renderSimulateReport(r).join('\n');
    expect(r.mismatches, table).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.inRollout).toBe(20);
    expect(r.faults).toEqual({ failHealth: 4, fallback: 2, drop: 2, dup: 2, reorder: 2 });
    expect(r.outcome).toMatchObject({ committed: 14, reverted: 6, failed: 0, cancelled: 0, rejected: 0, pending: 0 });
    expect(r.outcome.reasons).toMatchObject({ HEALTH_CHECK_FAILED: 4, BOOTLOADER_FALLBACK: 2 });
    // The wire faults happened: connections cut, a redelivered and a stale announcement.
    expect(r.sim).toMatchObject({ drops: 2, duplicated: 2, staleInjected: 2, fallbacksArmed: 2 });
    // 14 commits reboot once, 4 health-check reverts twice, 2 fallbacks once.
    expect(r.sim.reboots).toBe(14 + 4 * 2 + 2);
    // Transition events: 7 per commit or health-check revert, 5 per fallback; plus at least one
    // REPLAYED refusal per reorder device (the stale copy).
    expect(r.messages.events).toBeGreaterThanOrEqual(14 * 7 + 4 * 7 + 2 * 5 + 2);
    expect(r.messages.perSecond).toBeGreaterThan(0);
    expect(r.memory.peakRssBytes).toBeGreaterThan(0);
    expect(table).toMatch(/committed\s+14\s+expected 14/);
    expect(table).toMatch(/result\s+OK/);
    expect(progress[0]).toMatch(/starting 20 simulated device/);
  });

  it('the CLI runs a partial rollout and prints the report as JSON', async () => {
    const FLEET = join(process.cwd(), 'dist/cli/ota-fleet.js');
    if (!existsSync(FLEET) || !readFileSync(FLEET, 'utf8').includes("command('simulate')")) throw new Error('dist/ is missing or stale: run `npm run build` first');
    const { stdout } = await promisify(execFile)(process.execPath, [FLEET, 'simulate', '--devices', '6', '--percent', '50', '--broker', broker.url, '--json', '--quiet', '--cleanup']);
    const r = JSON.parse(stdout) as SimulateReport;
    expect(r.ok).toBe(true);
    expect(r.devices).toBe(6);
    expect(r.outcome.committed).toBe(r.inRollout);
    expect(r.expected.untouched).toBe(6 - r.inRollout);
    expect(r.outcome.notInRollout).toBe(6 - r.inRollout);
  });
});
