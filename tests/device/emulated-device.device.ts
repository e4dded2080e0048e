// The whole chain on an emulated arm64 device (issue #9): the arm64 release of ota-agent installed
// in a Debian 12 arm64 image as a real systemd service, a real RAUC on the system bus, a real
// logind reboot, the host's mosquitto reached through QEMU's user network, announcements signed
// and published with the project's own `ota-fleet publish`. The bootloader is SIMULATED by this
// test (simulated-bootloader.ts): a reboot powers the VM off (-no-reboot) and the test boots it
// again with the slot the bootloader picks.
//
//   scenario 1: 1.0.0 (factory slot A) -> 1.1.0 installed into B -> reboot -> B boots, the health
//               check passes -> `committed`, RAUC marks B good.
//   scenario 2: 1.1.0 (B) -> 1.2.0 whose /health is broken, installed into A -> reboot -> A boots,
//               the check fails -> A marked bad, B active -> reboot -> B boots -> `reverted`.
//
// Not in the main suite: run with cross-build/device/run-scenarios.sh (builds the image first).
// Timings of every boot are printed; nothing asserts on them.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startArtifactServer, type ArtifactServer } from '../../src/demo/artifact-server.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { QemuDevice, readDeviceEnv, type Boot, type DeviceEnv } from './qemu-device.js';
import { SimulatedBootloader } from './simulated-bootloader.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DEVICE_ID = 'arm64-vm-1';
const FLEET_CLI = join(REPO, 'dist', 'cli', 'ota-fleet.js');
const BUILD_BUNDLE = join(REPO, 'rauc', 'scripts', 'build-bundle.sh');

interface DeviceEvent {
  seq: number;
  type: string;
  updateId?: string;
  version?: string;
  from?: string;
  to?: string;
  result?: string;
  reason?: string;
  message?: string;
  checks?: unknown;
}
interface DeviceState {
  runningVersion: string;
  bootedSlot?: string;
  state: string;
}

const timings: string[] = [];
function timing(what: string, seconds: number): void {
  const line = `${what}: ${seconds.toFixed(1)} s`;
  timings.push(line);
  console.log(`[device timing] ${line}`);
}

let env: DeviceEnv;
let runDir: string;
let broker: Mosquitto;
let server: ArtifactServer;
let device: QemuDevice;
let bootloader: SimulatedBootloader;
let watcher: mqtt.MqttClient;
const events: DeviceEvent[] = [];
let lastState: DeviceState | null = null;
const bundles: Record<string, string> = {};

function httpPort(s: ArtifactServer): number {
  return Number(new URL(s.url('x')).port);
}

/** Builds a signed plain bundle with the project's script; the slot image carries /health. */
function buildBundle(version: string, health: string): string {
  const out = join(runDir, 'bundles', `ota-vm-${version}.raucb`);
  execFileSync(BUILD_BUNDLE, [
    '--out', out, '--compatible', env.COMPATIBLE, '--version', version,
    '--cert', join(env.PKI_DIR, 'signer.pem'), '--key', join(env.PKI_DIR, 'signer.key'), '--keyring', join(env.PKI_DIR, 'ca.pem'),
    '--file', `health=${health}`, '--size-mib', '8',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  return out;
}

/** sha256 of rootfs.ext4 inside a plain bundle, and of the same number of bytes at the start of a slot disk. */
function imageAndSlotDigests(bundle: string, slotImage: string): { image: string; slot: string } {
  const image = execFileSync('unsquashfs', ['-cat', bundle, 'rootfs.ext4'], { maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
  const slot = readFileSync(slotImage).subarray(0, image.length);
  const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  return { image: h(image), slot: h(slot) };
}

/** Signs and publishes (retained) an announcement with `ota-fleet publish`, as a fleet owner would. */
function publish(version: string): void {
  const file = bundles[version] as string;
  const name = file.split('/').pop() as string;
  execFileSync('node', [
    FLEET_CLI, 'publish', '-k', env.FLEET_KEY, '-b', broker.url, '--compatible', env.COMPATIBLE, '--version', version,
    '--url', `http://10.0.2.100:8080/${name}`, '--artifact', file,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function describeEvents(): string {
  return events.map((e) => `#${e.seq} ${e.type} ${e.version ?? ''} ${e.from ?? ''}->${e.to ?? ''} ${e.result ?? ''} ${e.reason ?? ''} ${e.message ?? ''}`).join('\n');
}

/** Waits for an event; fails with the events so far and the console tail if the VM powers off or time runs out. */
async function waitForEvent(boot: Boot, what: string, pred: (e: DeviceEvent) => boolean, opts: { allowPowerOff?: boolean; timeoutS?: number } = {}): Promise<DeviceEvent> {
  const deadline = Date.now() + (opts.timeoutS ?? 480) * 1000;
  while (Date.now() < deadline) {
    const hit = events.find(pred);
    if (hit) return hit;
    if (!boot.running && !opts.allowPowerOff) {
      await sleep(500); // events published just before the power-off may still be in flight
      const late = events.find(pred);
      if (late) return late;
      throw new Error(`the VM powered off (boot ${boot.n}, slot ${boot.slot}) before ${what}\nevents:\n${describeEvents()}\nconsole:\n${boot.tail()}`);
    }
    await sleep(250);
  }
  throw new Error(`no ${what} within ${opts.timeoutS ?? 480} s (boot ${boot.n}, slot ${boot.slot})\nevents:\n${describeEvents()}\nconsole:\n${boot.tail()}`);
}

/** Waits for the guest's own reboot: with -no-reboot qemu exits 0 when the guest reboots. */
async function waitForPowerOff(boot: Boot, why: string): Promise<void> {
  const r = await boot.exited;
  if (r.code !== 0) throw new Error(`boot ${boot.n} (slot ${boot.slot}) ended with ${String(r.code ?? r.signal)} while waiting for ${why} (124 = the timeout)\nevents:\n${describeEvents()}\nconsole:\n${boot.tail()}`);
  timing(`boot ${boot.n} (slot ${boot.slot}) until power-off (${why})`, r.seconds);
}

const forUpdate = (version: string, to: string) => (e: DeviceEvent) => e.type === 'transition' && e.version === version && e.to === to;

describe('emulated arm64 device: ota-agent + RAUC + systemd, host broker', () => {
  beforeAll(async () => {
    const t = Date.now();
    env = readDeviceEnv(process.env.OTA_DEVICE_ENV ?? join(REPO, '.tmp', 'device', 'device.env'));
    runDir = join(env.DEVICE_DIR, 'run');
    rmSync(runDir, { recursive: true, force: true });
    mkdirSync(join(runDir, 'bundles'), { recursive: true });
    broker = await Mosquitto.start();
    server = await startArtifactServer(join(runDir, 'bundles'));
    device = new QemuDevice({ env, runDir, brokerPort: broker.port, httpPort: httpPort(server), bootTimeoutSeconds: 600 });
    device.prepareDisks();
    bootloader = new SimulatedBootloader(device.shareDir);
    bootloader.reset();
    bundles['1.1.0'] = buildBundle('1.1.0', 'ok');
    bundles['1.2.0'] = buildBundle('1.2.0', 'failing: the app does not start');

    watcher = await mqtt.connectAsync(broker.url, { clientId: 'device-test-watcher' });
    watcher.on('message', (topic, payload) => {
      const body = JSON.parse(payload.toString()) as DeviceEvent & DeviceState;
      if (topic.endsWith('/events')) events.push(body);
      else if (topic.endsWith('/state')) lastState = body;
    });
    await watcher.subscribeAsync([`ota/v1/devices/${DEVICE_ID}/events`, `ota/v1/devices/${DEVICE_ID}/state`], { qos: 1 });
    timing('setup (broker, bundle server, disks, 2 bundles)', (Date.now() - t) / 1000);
  });

  afterAll(async () => {
    await device?.close();
    await watcher?.endAsync().catch(() => undefined);
    await server?.close();
    await broker?.stop();
    // Agent crashes that systemd recovered from (Restart=always + the agent's resume) do not change
    // the outcome, but are reported loudly: seen 2 of 16 agent starts as SIGSEGV of the arm64 node
    // under TCG, cause not determined (cross-build/device/README.md).
    const crashes = (device?.bootLogs() ?? []).flatMap(({ name, text }) =>
      text.split('\n').filter((l) => /ota-agent\.service: Main process exited, code=(killed|dumped)/.test(l)).map((l) => `${name}: ${l.trim()}`),
    );
    if (crashes.length) console.warn(`[device] WARNING: the agent crashed and was restarted by systemd:\n  ${crashes.join('\n  ')}`);
    if (timings.length) {
      writeFileSync(join(runDir, 'timings.txt'), [...timings, ...crashes.map((c) => `agent crash: ${c}`)].join('\n') + '\n');
      console.log(`[device timing] summary:\n  ${timings.join('\n  ')}`);
    }
  });

  it('scenario 1: a signed announcement is installed into slot B, B boots, passes its check and is committed', async () => {
    // Power-on 1: the factory state, slot A (1.0.0).
    const slot1 = bootloader.choose();
    expect(slot1).toBe('A');
    const boot1 = device.boot(slot1);
    publish('1.1.0');
    const accepted = await waitForEvent(boot1, 'the 1.1.0 announcement being accepted', forUpdate('1.1.0', 'accepted'));
    expect(accepted.result).toBeUndefined();
    timing(`boot 1 (slot A): announcement accepted after`, boot1.elapsed());
    await waitForEvent(boot1, 'the reboot into the new slot', forUpdate('1.1.0', 'rebooting'), { allowPowerOff: true });
    await waitForPowerOff(boot1, 'the agent reboots into 1.1.0');
    // RAUC wrote B and made it the primary through the custom backend on the host share.
    expect(bootloader.calls()).toContain('set-primary B');
    expect(bootloader.primary()).toBe('B');
    expect(events.map((e) => e.to)).toEqual(expect.arrayContaining(['downloading', 'installing', 'rebooting']));
    // RAUC in the VM wrote the bundle's image, byte for byte, to the slot B disk.
    const written = imageAndSlotDigests(bundles['1.1.0'] as string, device.slotImage('B'));
    expect(written.slot).toBe(written.image);

    // Power-on 2: the bootloader picks B.
    const slot2 = bootloader.choose();
    expect(slot2).toBe('B');
    const callsBefore = bootloader.calls().length;
    const boot2 = device.boot(slot2);
    const committed = await waitForEvent(boot2, '`committed` for 1.1.0', forUpdate('1.1.0', 'committed'));
    timing('boot 2 (slot B): committed after', boot2.elapsed());
    expect(committed.result).toBe('committed');
    // The commit is RAUC's Mark("good", "booted"), which lands in the simulated bootloader.
    expect(bootloader.calls().slice(callsBefore)).toContain('set-state B good');
    expect(bootloader.state('B')).toBe('good');
    expect(bootloader.primary()).toBe('B');
    // The retained state the fleet sees.
    await sleep(1000);
    expect(lastState).toMatchObject({ runningVersion: '1.1.0', bootedSlot: 'B', state: 'idle' });
  });

  it('scenario 2: a bundle whose slot fails its health check is marked bad and the device reverts to the old slot', async () => {
    const boot2 = device.current as Boot;
    expect(boot2.running, 'scenario 2 continues on the boot where scenario 1 committed').toBe(true);
    publish('1.2.0');
    await waitForEvent(boot2, 'the reboot into 1.2.0', forUpdate('1.2.0', 'rebooting'), { allowPowerOff: true });
    await waitForPowerOff(boot2, 'the agent reboots into 1.2.0');
    expect(bootloader.primary()).toBe('A');

    // Power-on 3: A, the new slot with the broken /health.
    const slot3 = bootloader.choose();
    expect(slot3).toBe('A');
    const callsBefore = bootloader.calls().length;
    const boot3 = device.boot(slot3);
    const reverting = await waitForEvent(boot3, 'the failed health check', forUpdate('1.2.0', 'reverting'), { allowPowerOff: true });
    expect(JSON.stringify(reverting.checks ?? reverting.message ?? '')).toContain('slot-health');
    await waitForPowerOff(boot3, 'the agent reboots back to the old slot');
    // Mark("bad", "booted") and Mark("active", "other") reached the bootloader.
    const calls = bootloader.calls().slice(callsBefore);
    expect(calls).toContain('set-state A bad');
    expect(calls).toContain('set-primary B');
    expect(bootloader.state('A')).toBe('bad');

    // Power-on 4: back on B (1.1.0).
    const slot4 = bootloader.choose();
    expect(slot4).toBe('B');
    const boot4 = device.boot(slot4);
    const reverted = await waitForEvent(boot4, '`reverted` for 1.2.0', forUpdate('1.2.0', 'reverted'));
    timing('boot 4 (slot B): reverted after', boot4.elapsed());
    expect(reverted.result).toBe('reverted');
    await sleep(1000);
    expect(lastState).toMatchObject({ runningVersion: '1.1.0', bootedSlot: 'B' });
    expect(events.some(forUpdate('1.2.0', 'committed'))).toBe(false);
  });
});
