// The two executables as a user runs them: ota-fleet keygen/publish/command against a real
// mosquitto, and ota-agent status/history/plan on the device's state — plan changing nothing.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab, type LabDevice } from '../helpers/sim-lab.js';

const run = promisify(execFile);
const AGENT = join(process.cwd(), 'dist/cli/ota-agent.js');
const FLEET = join(process.cwd(), 'dist/cli/ota-fleet.js');

async function cli(bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [bin, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

let broker: Mosquitto;
let lab: SimLab;
let dev: LabDevice;
let keyDir: string;

beforeAll(async () => {
  broker = await Mosquitto.start();
  lab = await SimLab.create(broker.url, 5);
  keyDir = join(lab.dir, 'keys');
  // The device trusts a key made by the fleet CLI, not the lab's.
  const kg = await cli(FLEET, ['keygen', '-o', keyDir]);
  expect(kg.code).toBe(0);
  expect(kg.stdout).toMatch(/keyid [0-9a-f]{64}/);
  expect(statSync(join(keyDir, 'fleet.key')).mode & 0o777).toBe(0o600);
  const pub = readFileSync(join(keyDir, 'fleet.pub'), 'utf8');
  dev = await lab.device({ configOverride: (c) => ({ ...c, trust: { keys: [{ publicKeyPem: pub }] } }) });
});
afterAll(async () => {
  await lab?.close();
  await broker?.stop();
});

const dbDigest = () => createHash('sha256').update(readFileSync(join(dev.dir, 'state', 'agent.db'))).digest('hex');

describe('ota-fleet and ota-agent', () => {
  let envelopeFile: string;
  let imagePath: string;

  it('publish --out writes a signed envelope that plan judges, changing nothing', async () => {
    const img = lab.image('1.1.0', { compatible: dev.compatible });
    imagePath = join(lab.dir, 'artifacts', img.name);
    envelopeFile = join(lab.dir, 'ann.json');
    const pub = await cli(FLEET, ['publish', '-k', join(keyDir, 'fleet.key'), '--compatible', dev.compatible, '--version', '1.1.0', '--url', img.url, '--artifact', imagePath, '--out', envelopeFile, '--dry-run', '--device', dev.id]);
    expect(pub.code).toBe(0);
    expect(pub.stdout).toContain(`${dev.id}: takes part`);
    const before = { db: dbDigest(), slots: dev.slotsDigest() };
    const plan = await cli(AGENT, ['-c', dev.configPath, 'plan', envelopeFile]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/^WOULD INSTALL: accepted 1\.1\.0/);
    expect(plan.stdout).toContain('download');
    const json = JSON.parse((await cli(AGENT, ['-c', dev.configPath, 'plan', '--json', envelopeFile])).stdout) as { decision: string; context: { runningVersion: string } };
    expect(json).toMatchObject({ decision: 'accept', context: { runningVersion: '1.0.0' } });
    expect({ db: dbDigest(), slots: dev.slotsDigest() }).toEqual(before);
  });

  it('publish with only --url hashes what the URL serves', async () => {
    const img = lab.image('1.1.5', { compatible: dev.compatible });
    const pub = await cli(FLEET, ['publish', '-k', join(keyDir, 'fleet.key'), '--compatible', dev.compatible, '--version', '1.1.5', '--url', img.url, '--dry-run']);
    expect(pub.code).toBe(0);
    expect(pub.stderr).toContain(`${img.size} bytes, sha256 ${img.sha256}`);
    expect(pub.stdout).toContain(`"sha256": "${img.sha256}"`);
    const missing = await cli(FLEET, ['publish', '-k', join(keyDir, 'fleet.key'), '--compatible', dev.compatible, '--version', '1.1.5', '--url', lab.artifacts.url('nope.img'), '--dry-run']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot compute sha256 and size .*HTTP 404/);
  });

  it('plan explains a refusal and exits non-zero', async () => {
    const tampered = JSON.parse(readFileSync(envelopeFile, 'utf8')) as { signatures: Array<{ sig: string }> };
    tampered.signatures[0]!.sig = Buffer.alloc(64, 1).toString('base64');
    const f = join(lab.dir, 'tampered.json');
    writeFileSync(f, JSON.stringify(tampered));
    const plan = await cli(AGENT, ['-c', dev.configPath, 'plan', f]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toMatch(/^WOULD REFUSE \(BAD_SIGNATURE\)/);
  });

  it('publish over the broker updates the device; status and history show it', async () => {
    const img = lab.image('1.2.0', { compatible: dev.compatible });
    const pub = await cli(FLEET, ['publish', '-k', join(keyDir, 'fleet.key'), '-b', broker.url, '--compatible', dev.compatible, '--version', '1.2.0', '--url', img.url, '--artifact', join(lab.dir, 'artifacts', img.name)]);
    expect(pub.code).toBe(0);
    const id = `${dev.compatible}-1.2.0`;
    expect((await lab.watcher.waitForResult(dev.id, id)).result).toBe('committed');
    await lab.watcher.waitFor(() => lab.watcher.states.get(dev.id)?.state === 'idle', 5000, 'idle');

    const status = JSON.parse((await cli(AGENT, ['-c', dev.configPath, 'status', '--json'])).stdout) as { runningVersion: string; bootedSlot: string; state: string; lastResult: { result: string; updateId: string } };
    expect(status).toMatchObject({ runningVersion: '1.2.0', bootedSlot: 'B', state: 'idle', lastResult: { result: 'committed', updateId: id } });
    const text = (await cli(AGENT, ['-c', dev.configPath, 'status'])).stdout;
    expect(text).toContain('running     1.2.0 on slot B');

    const history = JSON.parse((await cli(AGENT, ['-c', dev.configPath, 'history', '--json'])).stdout) as { updates: Array<{ updateId: string; result: string; transitions: Array<{ to: string }> }> };
    expect(history.updates[0]).toMatchObject({ updateId: id, result: 'committed' });
    expect(history.updates[0]?.transitions.map((t) => t.to)).toEqual(['accepted', 'downloading', 'installing', 'rebooting', 'verifying', 'committing', 'committed', 'idle']);
  });

  it('command sends a signed check to one device', async () => {
    const n = lab.watcher.eventsOf(dev.id).length;
    const r = await cli(FLEET, ['command', dev.id, 'check', '-k', join(keyDir, 'fleet.key'), '-b', broker.url]);
    expect(r.code).toBe(0);
    const e = await lab.nextEvent(dev, n, (x) => x.type === 'check');
    expect(e.checks?.passed).toBe(true);
  });

  it('install FILE runs an offline update through the same lifecycle, reported upstream', async () => {
    const img = lab.image('1.3.0', { compatible: dev.compatible });
    const r = await cli(AGENT, ['-c', dev.configPath, 'install', join(lab.dir, 'artifacts', img.name)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const id = /as (local-\d+)/.exec(r.stdout)?.[1] ?? '';
    expect(id).not.toBe('');
    const result = await lab.watcher.waitForResult(dev.id, id);
    expect(result).toMatchObject({ result: 'committed', version: '1.3.0' });
    await lab.watcher.waitFor(() => lab.watcher.states.get(dev.id)?.runningVersion === '1.3.0' && lab.watcher.states.get(dev.id)?.state === 'idle', 5000, 'running 1.3.0');
  });

  it('install refuses what it must, with the reason, changing nothing', async () => {
    const before = dev.slotsDigest();
    const older = lab.image('1.0.5', { compatible: dev.compatible });
    const notNewer = await cli(AGENT, ['-c', dev.configPath, 'install', join(lab.dir, 'artifacts', older.name)]);
    expect(notNewer.code).toBe(1);
    expect(notNewer.stderr).toMatch(/refused \(NOT_NEWER\)/);
    const junk = join(lab.dir, 'junk.img');
    writeFileSync(junk, 'not an image');
    const invalid = await cli(AGENT, ['-c', dev.configPath, 'install', junk]);
    expect(invalid.stderr).toMatch(/refused \(ARTIFACT_INVALID\)/);
    const other = lab.image('2.0.0', { compatible: 'another-board' });
    const incompatible = await cli(AGENT, ['-c', dev.configPath, 'install', join(lab.dir, 'artifacts', other.name)]);
    expect(incompatible.stderr).toMatch(/refused \(INCOMPATIBLE\)/);
    const wrongDigest = await cli(AGENT, ['-c', dev.configPath, 'install', '--sha256', 'a'.repeat(64), join(lab.dir, 'artifacts', other.name)]);
    expect(wrongDigest.stderr).toMatch(/refused \(ARTIFACT_INVALID\): sha256 mismatch/);
    expect(dev.slotsDigest()).toBe(before);
    // The refusals went upstream as events too.
    await lab.watcher.waitFor(() => lab.watcher.eventsOf(dev.id).filter((e) => e.type === 'rejected').length >= 4, 5000, 'four rejections');
  });

  it('bad input to the CLIs is a clear error', async () => {
    const noKey = await cli(FLEET, ['publish', '--compatible', 'x', '--version', '1.0.0', '--url', 'https://a/b', '--sha256', 'a'.repeat(64), '--size', '1', '--dry-run']);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('--key is required');
    const badVersion = await cli(FLEET, ['publish', '-k', join(keyDir, 'fleet.key'), '--compatible', 'x', '--version', 'one', '--url', 'https://a/b', '--sha256', 'a'.repeat(64), '--size', '1', '--dry-run']);
    expect(badVersion.code).toBe(2);
    expect(badVersion.stderr).toMatch(/invalid announcement: version/);
    const badConfig = join(lab.dir, 'bad.json');
    writeFileSync(badConfig, JSON.stringify({ deviceId: 'a/b' }));
    const st = await cli(AGENT, ['-c', badConfig, 'status']);
    expect(st.code).toBe(2);
    expect(st.stderr).toMatch(/deviceId/);
  });
});
