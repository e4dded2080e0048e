// The fleet tools against a real mosquitto and in-process simulated devices (the real Agent, each
// with its own store, simulated slots and MQTT connection): publish reaches exactly the devices in
// the bucket, promote adds devices, a window defers, commands reach only their devices, watch
// --json --once counts right, and shared subscriptions split the event stream. The CLI runs from
// dist/ (`npm run build` first; `npm test` does).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolloutBucket } from '../../src/core/rollout.js';
import { startArtifactServer, type ArtifactServer } from '../../src/demo/artifact-server.js';
import { FleetWatcher } from '../../src/demo/watcher.js';
import { FleetView, type FleetSummary } from '../../src/fleet/fleet-view.js';
import { SimFleet } from '../../src/fleet/sim-fleet.js';
import { FleetWatch } from '../../src/fleet/watch.js';
import { encodeSimImage } from '../../src/simulated/image.js';
import { Mosquitto } from '../helpers/mosquitto.js';

const FLEET = join(process.cwd(), 'dist/cli/ota-fleet.js');
const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [FLEET, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const tag = Math.random().toString(36).slice(2, 7);
const compatible = `ft-${tag}`;
const ANN = `${compatible}-1.1.0`; // publish's default id: <compatible>-<version>
const ANN2 = `${compatible}-1.2.0-night`;

// Device ids chosen by their bucket for ANN: two below 30, two in [30, 60), two at or above 60.
const low: string[] = [];
const mid: string[] = [];
const high: string[] = [];
for (let i = 0; low.length < 2 || mid.length < 2 || high.length < 2; i++) {
  const id = `${compatible}-d${i}`;
  const b = rolloutBucket(id, ANN);
  const into = b < 30 ? low : b < 60 ? mid : high;
  if (into.length < 2) into.push(id);
}
const all = [...low, ...mid, ...high];

let broker: Mosquitto;
let dir: string;
let artifacts: ArtifactServer;
let fleet: SimFleet;
let events: FleetWatcher;
let key: string;
let image: { url: string; path: string };

function makeImage(version: string) {
  const name = `${compatible}-${version}.img`;
  const bytes = encodeSimImage({ format: 'ota-sim-image/1', compatible, version, files: { health: 'ok' } });
  const path = join(dir, 'artifacts', name);
  writeFileSync(path, bytes);
  return { url: artifacts.url(name), path, sha256: createHash('sha256').update(bytes).digest('hex') };
}

const result = (id: string, updateId: string) => events.eventsOf(id).find((e) => e.updateId === updateId && e.result !== undefined);
const decisions = (id: string) => fleet.device(id).store.decisions(20);
const watchOnce = async (announcement: string): Promise<FleetSummary> => {
  const r = await cli(['watch', '-b', broker.url, '--json', '--once', '--settle-ms', '300', '--announcement', announcement]);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0] as string) as FleetSummary;
};

beforeAll(async () => {
  if (!existsSync(FLEET) || !readFileSync(FLEET, 'utf8').includes("command('promote')")) throw new Error('dist/ is missing or stale: run `npm run build` first');
  broker = await Mosquitto.start();
  dir = mkdtempSync(join(tmpdir(), 'ota-fleet-test-'));
  const kg = await cli(['keygen', '-o', join(dir, 'keys')]);
  expect(kg.code, kg.stderr).toBe(0);
  key = join(dir, 'keys', 'fleet.key');
  artifacts = await startArtifactServer(join(dir, 'artifacts'));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'artifacts'), { recursive: true });
  image = makeImage('1.1.0');
  events = await FleetWatcher.connect(broker.url);
  fleet = await SimFleet.start(
    { brokerUrl: broker.url, compatible, dir: join(dir, 'devices'), publicKeyPem: readFileSync(join(dir, 'keys', 'fleet.pub'), 'utf8') },
    all.map((id) => ({ id })),
  );
  await events.waitFor(() => all.every((id) => events.online.get(id) && events.states.get(id)), 15_000, 'all devices online');
});

afterAll(async () => {
  await fleet?.stop();
  await events?.close();
  await artifacts?.close();
  await broker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('ota-fleet publish, promote, watch and command on a fleet', () => {
  const annFile = () => join(dir, 'ann.json');

  it('publish: the devices in the bucket update, the rest do not', async () => {
    // Two independent shared-subscription members, to check that they split the event stream.
    const views = [new FleetView(ANN), new FleetView(ANN)];
    const shared = await Promise.all(views.map((v) => FleetWatch.start(v, { url: broker.url, share: `ingest-${tag}` })));
    try {
      const pub = await cli(['publish', '-k', key, '-b', broker.url, '--compatible', compatible, '--version', '1.1.0', '--url', image.url, '--artifact', image.path, '--percent', '30', '--out', annFile()]);
      expect(pub.code, pub.stderr).toBe(0);
      for (const id of low) expect((await events.waitFor(() => result(id, ANN), 20_000, `${id} committed`)).result).toBe('committed');
      for (const id of [...mid, ...high]) {
        await events.waitFor(() => decisions(id).find((d) => d.reason === 'NOT_IN_ROLLOUT'), 10_000, `${id} NOT_IN_ROLLOUT`);
        expect(events.eventsOf(id).filter((e) => e.updateId === ANN)).toEqual([]);
        expect(fleet.device(id).agent.bootInfo.version).toBe('1.0.0');
      }
      const total = low.reduce((n, id) => n + events.eventsOf(id).length, 0);
      await events.waitFor(() => views[0]!.counters.events + views[1]!.counters.events >= total, 5_000, 'shared events');
      // Each event went to exactly one member; both members see every retained state.
      expect(views[0]!.counters.events + views[1]!.counters.events).toBe(total);
      expect(views.every((v) => v.counters.events > 0)).toBe(true);
      expect(views.every((v) => all.every((id) => v.row(id)?.state))).toBe(true);
    } finally {
      await Promise.all(shared.map((s) => s.close()));
    }
  });

  it('promote: re-signed with the same id and a higher percentage, it adds devices', async () => {
    const before = JSON.parse(readFileSync(annFile(), 'utf8')) as { payload: string };
    const p = await cli(['promote', '-k', key, '-b', broker.url, '--from', annFile(), '--percent', '60', '--out', join(dir, 'ann60.json')]);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(new RegExp(`promoted ${ANN} 1\\.1\\.0: 30% -> 60%; seq \\d+ -> \\d+`));
    const after = JSON.parse(Buffer.from((JSON.parse(readFileSync(join(dir, 'ann60.json'), 'utf8')) as { payload: string }).payload, 'base64').toString()) as { id: string; sequence: number; rollout: unknown };
    const prev = JSON.parse(Buffer.from(before.payload, 'base64').toString()) as { sequence: number };
    expect(after.id).toBe(ANN);
    expect(after.sequence).toBeGreaterThan(prev.sequence);
    expect(after.rollout).toEqual({ percent: 60 });
    for (const id of mid) expect((await events.waitFor(() => result(id, ANN), 20_000, `${id} committed`)).result).toBe('committed');
    for (const id of low) await events.waitFor(() => decisions(id).find((d) => d.reason === 'ALREADY_INSTALLED'), 10_000, `${id} ALREADY_INSTALLED`);
    for (const id of high) {
      await events.waitFor(() => decisions(id).filter((d) => d.reason === 'NOT_IN_ROLLOUT').length === 2, 10_000, `${id} second NOT_IN_ROLLOUT`);
      expect(fleet.device(id).agent.bootInfo.version).toBe('1.0.0');
    }
  });

  it('promote refuses to lower the percentage without --force, and to re-sign what another key signed', async () => {
    // This time from the retained topic.
    const lower = await cli(['promote', '-k', key, '-b', broker.url, '--compatible', compatible, '--percent', '40']);
    expect(lower.code).toBe(2);
    expect(lower.stderr).toMatch(/narrows the rollout \(percent 60 -> 40\).*--force/);
    const dry = await cli(['promote', '-k', key, '-b', broker.url, '--compatible', compatible, '--percent', '40', '--force', '--dry-run', '--device', high[0] as string]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`${ANN} 1.1.0: 60% -> 40%`);
    await cli(['keygen', '-o', join(dir, 'other')]);
    const foreign = await cli(['promote', '-k', join(dir, 'other', 'fleet.key'), '-b', broker.url, '--compatible', compatible, '--percent', '90']);
    expect(foreign.code).toBe(2);
    expect(foreign.stderr).toMatch(/not signed by your key\(s\); refusing to re-sign/);
  });

  it('watch --json --once reports the rollout from the retained state', async () => {
    await events.waitFor(() => [...low, ...mid].every((id) => events.states.get(id)?.state === 'idle' && events.states.get(id)?.lastResult?.updateId === ANN), 10_000, 'final states');
    const s = await watchOnce(ANN);
    expect(s.devices).toBeGreaterThanOrEqual(all.length);
    expect(s.announcement).toMatchObject({ id: ANN, version: '1.1.0', percent: 60, committed: 4, reverted: 0, failed: 0, rejected: 0, pending: 0, waiting: 0, notInRollout: 2 });
  });

  it('a maintenance window defers the update', async () => {
    const img = makeImage('1.2.0');
    const hour = (new Date().getUTCHours() + 12) % 24; // opens 12 hours from now: closed now
    const pub = await cli(['publish', '-k', key, '-b', broker.url, '--compatible', compatible, '--version', '1.2.0', '--id', ANN2, '--url', img.url, '--sha256', img.sha256, '--size', String(readFileSync(img.path).length), '--window-cron', `0 ${hour} * * *`, '--window-minutes', '60']);
    expect(pub.code, pub.stderr).toBe(0);
    for (const id of all) {
      const e = await events.waitFor(() => events.eventsOf(id).find((x) => x.updateId === ANN2 && x.to === 'deferred'), 15_000, `${id} deferred`);
      expect(new Date(e.deferredUntil as string).getUTCHours()).toBe(hour);
    }
  });

  it('a command for one device reaches only that device', async () => {
    const target = low[0] as string;
    const c = await cli(['command', target, 'cancel', '-k', key, '-b', broker.url, '--update', ANN2]);
    expect(c.code, c.stderr).toBe(0);
    expect((await events.waitFor(() => result(target, ANN2), 10_000, `${target} cancelled`)).result).toBe('cancelled');
    expect(events.eventsOf(target).some((e) => e.type === 'command' && e.command === 'cancel')).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    for (const id of all.filter((x) => x !== target)) {
      expect(events.eventsOf(id).filter((e) => e.type === 'command' || (e.type === 'rejected' && e.command))).toEqual([]);
      expect(events.states.get(id)?.state).toBe('deferred');
    }
  });

  it('command --group signs one command per device of the group (from the inventory file)', async () => {
    const inv = join(dir, 'inventory.txt');
    writeFileSync(inv, `# id groups\n${mid[0]} lab\n${high[0]} lab,roof\n${mid[1]} field\n${low[1]}\n`);
    // The commands are the agent's own list (src/schemas/command.ts); anything else is refused before signing.
    const bad = await cli(['command', 'poweroff', '--group', 'lab', '--inventory', inv, '-k', key, '-b', broker.url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown command "poweroff" \(known: rollback, check, cancel/);
    const out = join(dir, 'group.jsonl');
    const dry = await cli(['command', 'cancel', '--group', 'lab', '--inventory', inv, '-k', key, '--out', out]);
    expect(dry.code, dry.stderr).toBe(0);
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { deviceId: string; envelope: { payload: string } });
    expect(lines.map((l) => l.deviceId)).toEqual([mid[0], high[0]]);
    expect(lines.map((l) => (JSON.parse(Buffer.from(l.envelope.payload, 'base64').toString()) as { deviceId: string }).deviceId)).toEqual([mid[0], high[0]]);

    const c = await cli(['command', 'cancel', '--group', 'lab', '--inventory', inv, '-k', key, '-b', broker.url]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout.trim().split('\n')).toEqual([`sent cancel to ${mid[0]}`, `sent cancel to ${high[0]}`]);
    for (const id of [mid[0], high[0]] as string[]) expect((await events.waitFor(() => result(id, ANN2), 10_000, `${id} cancelled`)).result).toBe('cancelled');
    await new Promise((r) => setTimeout(r, 300));
    for (const id of [low[1], mid[1], high[1]] as string[]) expect(events.states.get(id)?.state).toBe('deferred');
    const s = await watchOnce(ANN2);
    expect(s.announcement).toMatchObject({ id: ANN2, cancelled: 3, pending: 3, deferred: 3, committed: 0 });
  });

  it('command reboot --group releases installed updates waiting for their reboot window', async () => {
    // The three idle devices (the ones cancelled above) take 1.3.0, install it and wait for a closed reboot window.
    const ANN3 = `${compatible}-1.3.0`;
    const idle = [low[0], mid[0], high[0]] as string[];
    const img = makeImage('1.3.0');
    const hour = (new Date().getUTCHours() + 12) % 24;
    const pub = await cli(['publish', '-k', key, '-b', broker.url, '--compatible', compatible, '--version', '1.3.0', '--url', img.url, '--artifact', img.path, '--window-cron', `0 ${hour} * * *`, '--window-applies', 'reboot']);
    expect(pub.code, pub.stderr).toBe(0);
    for (const id of idle) await events.waitFor(() => events.eventsOf(id).find((x) => x.updateId === ANN3 && x.to === 'reboot-deferred'), 15_000, `${id} reboot-deferred`);
    const c = await cli(['command', 'reboot', '--group', 'lab', '--inventory', join(dir, 'inventory.txt'), '--update', ANN3, '-k', key, '-b', broker.url]);
    expect(c.code, c.stderr).toBe(0);
    for (const id of [mid[0], high[0]] as string[]) expect((await events.waitFor(() => result(id, ANN3), 15_000, `${id} committed`)).result).toBe('committed');
    expect(events.states.get(low[0] as string)?.state).toBe('reboot-deferred');
  });
});
