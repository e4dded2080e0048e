// The demo: a fleet key, one simulated device running the real agent as its own process, and three
// signed announcements — a good one (committed), one whose new slot fails its health check
// (reverted), and a tampered one (rejected) — printed as a timeline. Exit 0 only if all three end
// as they should.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { Command } from 'commander';
import { encodeSimImage } from '../simulated/image.js';
import { SimulatedDevice } from '../simulated/supervisor.js';
import { generateKeyPair, signAnnouncement } from '../fleet/sign.js';
import { topics } from '../mqtt/topics.js';
import { publishOnce } from '../fleet/broker.js';
import type { AnnouncementInput } from '../schemas/announcement.js';
import type { DeviceEvent } from '../schemas/device-messages.js';
import { startArtifactServer } from './artifact-server.js';
import { simulatedDeviceConfig } from './device-config.js';
import { startEmbeddedBroker } from './embedded-broker.js';
import { FleetWatcher } from './watcher.js';
import { createHash } from 'node:crypto';

const program = new Command('ota-demo')
  .option('--broker <url>', 'use this MQTT broker instead of the embedded one')
  .option('--mqtt-version <n>', 'protocol for --broker: 5 or 4', '5')
  .option('--keep', 'keep the work directory')
  .parse();
const opts = program.opts<{ broker?: string; mqttVersion: string; keep?: boolean }>();

const t0 = Date.now();
const stamp = () => `+${((Date.now() - t0) / 1000).toFixed(2).padStart(6)}s`;
const say = (s: string) => process.stdout.write(`${stamp()}  ${s}\n`);

function describe(e: DeviceEvent): string {
  if (e.type === 'rejected') return `REJECTED ${e.updateId ?? ''} [${e.reason}] ${e.message ?? ''}`;
  if (e.type === 'transition') {
    const head = `${(e.from ?? '').padEnd(12)} -> ${(e.to ?? '').padEnd(12)} ${e.version ?? ''}`;
    if (e.result) {
      const failed = e.checks?.results.filter((r) => !r.passed).map((r) => `${r.name}: ${r.error ?? 'failed'}`).join('; ');
      return `${head}  ${e.result.toUpperCase()}${e.reason ? ` [${e.reason}]` : ''} ${e.message ?? ''}${failed ? ` (${failed})` : ''}`;
    }
    return e.to === 'deferred' ? `${head}  until ${e.deferredUntil}` : head;
  }
  return `${e.type} ${e.message ?? ''}`;
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'ota-demo-'));
  const embedded = opts.broker ? null : await startEmbeddedBroker();
  const brokerUrl = opts.broker ?? embedded!.url;
  const protocolVersion = embedded ? 4 : Number(opts.mqttVersion) === 4 ? 4 : 5;
  say(`broker ${brokerUrl} (${embedded ? 'embedded, MQTT 3.1.1' : `MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}`}); work dir ${dir}`);

  const key = generateKeyPair();
  say(`fleet key ${key.keyid.slice(0, 16)}… (Ed25519); the device trusts only this key`);
  const signer = createPrivateKey(key.privateKeyPem);
  const artifacts = await startArtifactServer(join(dir, 'artifacts'));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'artifacts'), { recursive: true });

  const deviceId = 'demo-device-1';
  const configPath = join(dir, 'agent.json');
  writeFileSync(configPath, JSON.stringify(simulatedDeviceConfig({ dir, deviceId, brokerUrl, protocolVersion, publicKeyPem: key.publicKeyPem, installDelayMs: 600, logLevel: 'warn' }), null, 2));

  const watcher = await FleetWatcher.connect(brokerUrl, 'ota/v1', protocolVersion, (e) => say(`${e.deviceId}  ${describe(e)}`));
  const device = new SimulatedDevice({
    configPath,
    onBoot: (n) => say(`${deviceId}  ${n === 1 ? 'power on' : `boot #${n} (simulated reboot: the bootloader picks the slot)`}`),
    onOutput: (line, stream) => {
      if (stream === 'stderr') process.stderr.write(`  agent: ${line}\n`);
    },
  });
  device.start();
  await watcher.waitFor(() => watcher.states.get(deviceId), 15_000, 'the device state');
  say(`${deviceId}  online, running ${watcher.states.get(deviceId)?.runningVersion}`);

  const t = topics('ota/v1');
  let seq = Date.now();
  const announce = async (version: string, health: string, tamper = false) => {
    const name = `acme-gw-${version}.img`;
    const bytes = encodeSimImage({ format: 'ota-sim-image/1', compatible: 'acme-gw', version, files: { health } });
    writeFileSync(join(dir, 'artifacts', name), bytes);
    const now = Date.now();
    const input: AnnouncementInput = {
      id: `acme-gw-${version}`,
      sequence: ++seq,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 3600_000).toISOString(),
      compatible: 'acme-gw',
      channel: 'stable',
      version,
      backend: 'rauc',
      artifact: { url: artifacts.url(name), sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length },
      rollout: { percent: 100 },
    };
    const { envelope } = signAnnouncement(input, [signer]);
    if (tamper) {
      // An attacker on the broker points the signed announcement at another artifact.
      const p = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as AnnouncementInput;
      (p.artifact as { url: string }).url = artifacts.url('evil.img');
      envelope.payload = Buffer.from(JSON.stringify(p)).toString('base64');
    }
    say(`fleet  publish ${input.id} (${version}${health === 'ok' ? '' : `, its self-test will report "${health}"`}${tamper ? ', TAMPERED after signing' : ''})`);
    await publishOnce(brokerUrl, t.announce('acme-gw', 'stable'), JSON.stringify(envelope), { retain: true, protocolVersion });
    return input.id;
  };

  const outcomes: Array<{ case: string; expected: string; got: string; reason: string }> = [];
  const run = async (label: string, expected: string, version: string, health: string, tamper = false) => {
    const before = watcher.eventsOf(deviceId).length;
    const id = await announce(version, health, tamper);
    // A tampered envelope is refused before its payload is trusted, so its refusal names no update id.
    const e = await watcher.waitFor(
      () => watcher.eventsOf(deviceId).slice(before).find((x) => x.result !== undefined && (x.updateId === id || x.type === 'rejected')),
      60_000,
      `the outcome of ${id}`,
    );
    outcomes.push({ case: label, expected, got: e.result ?? '?', reason: e.reason ?? '' });
  };

  try {
    await run('good update', 'committed', '1.1.0', 'ok');
    await run('new slot fails its health check', 'reverted', '1.2.0', 'degraded');
    await run('tampered announcement', 'rejected', '1.3.0', 'ok', true);
    await watcher.waitFor(() => watcher.states.get(deviceId)?.state === 'idle' && watcher.states.get(deviceId), 10_000, 'idle');
  } finally {
    await device.stop();
    await watcher.close();
    await artifacts.close();
    await embedded?.close();
  }
  const final = watcher.states.get(deviceId);
  process.stdout.write(`\nSummary (device now runs ${final?.runningVersion} on slot ${final?.bootedSlot})\n`);
  let ok = true;
  for (const o of outcomes) {
    const pass = o.got === o.expected;
    ok &&= pass;
    process.stdout.write(`  ${pass ? 'ok  ' : 'FAIL'} ${o.case.padEnd(34)} expected ${o.expected.padEnd(9)} got ${o.got}${o.reason ? ` [${o.reason}]` : ''}\n`);
  }
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  return ok && final?.runningVersion === '1.1.0' ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`demo failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
