// The in-process agent for the bad-input and fuzz tests, wired like src/agent/run.ts (parseConfig,
// trustPolicy, a real AgentStore in a temp dir, the SimulatedBackend, the real health-check runner,
// a silent logger), minus MQTT: the tests call handleAnnouncement/handleCommand directly.
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config, ConfigInput } from '../../src/config/schema.js';
import { trustPolicy } from '../../src/config/trust.js';
import { signEnvelope } from '../../src/crypto/dsse.js';
import { generateKeyPair } from '../../src/fleet/sign.js';
import { runHealthChecks } from '../../src/health/runner.js';
import { topics } from '../../src/mqtt/topics.js';
import type { AnnouncementInput } from '../../src/schemas/announcement.js';
import type { Command } from '../../src/schemas/command.js';
import type { DeviceEvent } from '../../src/schemas/device-messages.js';
import { ANNOUNCEMENT_TYPE, COMMAND_TYPE } from '../../src/schemas/envelope.js';
import { SimulatedBackend, SimulatedOptions } from '../../src/simulated/backend.js';
import { AgentStore } from '../../src/store/agent-store.js';
import { silentLogger } from '../../src/util/log.js';
import { AGENT_VERSION } from '../../src/version.js';
import type * as z from 'zod';

export interface TestKey {
  keyid: string;
  pem: string;
  priv: KeyObject;
  pub: KeyObject;
}

export function makeKey(): TestKey {
  const k = generateKeyPair();
  return { keyid: k.keyid, pem: k.publicKeyPem, priv: createPrivateKey(k.privateKeyPem), pub: createPublicKey(k.publicKeyPem) };
}

/** Trusted. */
export const fleetKey = makeKey();
/** Trusted: the second signer of two-signature channels. */
export const secondKey = makeKey();
/** Configured, but on trust.revokedKeyIds. */
export const revokedKey = makeKey();
/** Not configured at all. */
export const outsiderKey = makeKey();

export const DEVICE_ID = 'dev-0001';
export const COMPATIBLE = 'acme-gw';
export const RUNNING_VERSION = '2.0.0';
export const ARTIFACT_HOST = 'updates.example.com';
export const MAX_ARTIFACT_BYTES = 1024 ** 3;
/** The device's clock: fixed, so validity windows are exact. */
export const NOW = new Date('2026-06-01T12:00:00.000Z');
export const T = topics('ota/v1');
export const STABLE = T.announce(COMPATIBLE, 'stable');
/** channelThresholds: { critical: 2 }. */
export const CRITICAL = T.announce(COMPATIBLE, 'critical');
export const COMMANDS = T.commands(DEVICE_ID);

/** tmpfs when there is one: SQLite runs synchronous=FULL, and thousands of fsyncs on a shared disk are slow. */
const SCRATCH = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

export function baseConfig(dir: string): ConfigInput {
  return {
    deviceId: DEVICE_ID,
    compatible: COMPATIBLE,
    channels: ['stable', 'critical'],
    groups: [],
    stateDir: join(dir, 'state'),
    mqtt: { url: 'mqtts://broker.invalid:8883' },
    trust: {
      keys: [fleetKey, secondKey, revokedKey].map((k) => ({ publicKeyPem: k.pem })),
      revokedKeyIds: [revokedKey.keyid],
      channelThresholds: { critical: 2 },
      // Commands would need 2 by default (the device follows "critical"); the command cases below
      // test the other checks with one signature, and the threshold cases override this.
      commandThreshold: 1,
    },
    backend: { type: 'simulated', dir: join(dir, 'device'), initialVersion: RUNNING_VERSION },
    healthChecks: [],
    artifacts: { allowedSchemes: ['https'], allowedHosts: [ARTIFACT_HOST], maxBytes: MAX_ARTIFACT_BYTES },
    log: { level: 'silent' },
  };
}

export interface Harness {
  dir: string;
  config: Config;
  store: AgentStore;
  backend: SimulatedBackend;
  agent: Agent;
  /** SHA-256 over every file (name and content) under the simulated device's directory. */
  slotsDigest(): string;
  /** Files under stateDir/downloads (must stay empty: nothing was fetched). */
  downloads(): string[];
  /** Every event in the outbox, oldest first. */
  outbox(): DeviceEvent[];
  close(): Promise<void>;
}

export async function harness(override?: (c: ConfigInput) => ConfigInput): Promise<Harness> {
  const dir = mkdtempSync(join(SCRATCH, 'ota-sec-'));
  const input = baseConfig(dir);
  const config = parseConfig(override ? override(input) : input);
  const store = new AgentStore(join(config.stateDir, 'agent.db'));
  const downloadDir = join(config.stateDir, 'downloads');
  const simOptions = SimulatedOptions.parse(config.backend);
  const backend = await SimulatedBackend.open(simOptions, config.compatible, downloadDir);
  const log = silentLogger();
  const agent = new Agent({
    config,
    store,
    backend,
    trust: trustPolicy(config),
    log,
    agentVersion: AGENT_VERSION,
    runChecks: (specs, signal) => runHealthChecks(specs, { signal }),
    now: () => NOW,
  });
  await agent.start();
  const simDir = simOptions.dir;
  return {
    dir,
    config,
    store,
    backend,
    agent,
    slotsDigest: () => treeDigest(simDir),
    downloads: () => (existsSync(downloadDir) ? readdirSync(downloadDir) : []),
    outbox: () => store.outboxPeek(1_000_000).map((r) => JSON.parse(r.payload) as DeviceEvent),
    close: async () => {
      await agent.stop();
      await backend.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function treeDigest(root: string): string {
  const h = createHash('sha256');
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const r = `${rel}/${name}`;
      if (statSync(p).isDirectory()) walk(p, r);
      else h.update(`${r}\0`).update(readFileSync(p)).update('\0');
    }
  };
  walk(root, '');
  return h.digest('hex');
}

// ---- building messages --------------------------------------------------------------------------

/** A valid announcement for this device (accepted as is): 2.0.0 -> 2.1.0 on stable. */
export function announcement(over: Record<string, unknown> = {}): AnnouncementInput {
  return {
    id: 'acme-gw-2.1.0',
    sequence: 1000,
    issuedAt: new Date(NOW.getTime() - 3600_000).toISOString(),
    expiresAt: new Date(NOW.getTime() + 7 * 86400_000).toISOString(),
    compatible: COMPATIBLE,
    channel: 'stable',
    version: '2.1.0',
    backend: 'rauc',
    artifact: { url: `https://${ARTIFACT_HOST}/acme-gw/acme-gw-2.1.0.raucb`, sha256: 'ab'.repeat(32), size: 187_654_144 },
    rollout: { percent: 100 },
    ...over,
  } as AnnouncementInput;
}

/** A valid command for this device. */
export function command(over: Record<string, unknown> = {}): z.input<typeof Command> {
  return {
    id: 'check-1000',
    deviceId: DEVICE_ID,
    sequence: 1000,
    issuedAt: new Date(NOW.getTime() - 60_000).toISOString(),
    expiresAt: new Date(NOW.getTime() + 3600_000).toISOString(),
    command: 'check',
    ...over,
  } as z.input<typeof Command>;
}

export const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
export const json = (v: unknown): Buffer => utf8(JSON.stringify(v));

/** A DSSE envelope (as bytes) over exactly `payload`, signed by `keys`. */
export function envelopeBytes(payload: Buffer | string, keys: TestKey[] = [fleetKey], type = ANNOUNCEMENT_TYPE): Buffer {
  return json(signEnvelope(type, typeof payload === 'string' ? utf8(payload) : payload, keys.map((k) => k.priv)));
}

export function signedAnnouncement(a: unknown, keys: TestKey[] = [fleetKey]): Buffer {
  return envelopeBytes(json(a), keys, ANNOUNCEMENT_TYPE);
}

export function signedCommand(c: unknown, keys: TestKey[] = [fleetKey]): Buffer {
  return envelopeBytes(json(c), keys, COMMAND_TYPE);
}

export { ANNOUNCEMENT_TYPE, COMMAND_TYPE };
