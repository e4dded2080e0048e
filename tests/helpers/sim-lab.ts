// A fleet in a box for end-to-end tests: a real broker (given), a fleet key, a loopback artifact
// server, a watcher on the devices' topics, and simulated devices running the real agent binary
// (dist/) as child processes.
import { createHash, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigInput } from '../../src/config/schema.js';
import { startArtifactServer, type ArtifactServer } from '../../src/demo/artifact-server.js';
import { simulatedDeviceConfig, type SimDeviceOptions } from '../../src/demo/device-config.js';
import { FleetWatcher } from '../../src/demo/watcher.js';
import { publishOnce } from '../../src/fleet/broker.js';
import { generateKeyPair, signAnnouncement, signCommand } from '../../src/fleet/sign.js';
import { topics } from '../../src/mqtt/topics.js';
import type { AnnouncementInput } from '../../src/schemas/announcement.js';
import type { Command } from '../../src/schemas/command.js';
import { encodeSimImage } from '../../src/simulated/image.js';
import { SimulatedDevice } from '../../src/simulated/supervisor.js';
import { AgentStore, type DecisionRow } from '../../src/store/agent-store.js';
import type * as z from 'zod';

export interface LabDevice {
  id: string;
  dir: string;
  configPath: string;
  compatible: string;
  sim: SimulatedDevice;
  logs: string[];
  /** Hash over the simulated slots and bootloader state: equal before/after = nothing touched. */
  slotsDigest(): string;
}

export class SimLab {
  readonly key = generateKeyPair();
  readonly signer: KeyObject = createPrivateKey(this.key.privateKeyPem);
  readonly t = topics('ota/v1');
  private seq = Date.now();
  private devices: LabDevice[] = [];

  private constructor(
    readonly brokerUrl: string,
    readonly protocolVersion: 4 | 5,
    readonly dir: string,
    readonly artifacts: ArtifactServer,
    readonly watcher: FleetWatcher,
  ) {}

  static async create(brokerUrl: string, protocolVersion: 4 | 5 = 5, opts: { persistentWatcher?: boolean } = {}): Promise<SimLab> {
    const dir = mkdtempSync(join(tmpdir(), 'ota-lab-'));
    mkdirSync(join(dir, 'artifacts'));
    const artifacts = await startArtifactServer(join(dir, 'artifacts'));
    const watcher = await FleetWatcher.connect(brokerUrl, 'ota/v1', protocolVersion, undefined, opts.persistentWatcher ? `watcher-${randomBytes(4).toString('hex')}` : undefined);
    return new SimLab(brokerUrl, protocolVersion, dir, artifacts, watcher);
  }

  nextSequence(): number {
    return ++this.seq;
  }

  async device(opts: Partial<SimDeviceOptions> & { configOverride?: (c: ConfigInput) => ConfigInput; entry?: string; env?: NodeJS.ProcessEnv } = {}): Promise<LabDevice> {
    const id = opts.deviceId ?? `dev-${randomBytes(4).toString('hex')}`;
    const compatible = opts.compatible ?? `gw-${randomBytes(3).toString('hex')}`;
    const dir = join(this.dir, id);
    mkdirSync(dir, { recursive: true });
    let config = simulatedDeviceConfig({ dir, deviceId: id, brokerUrl: this.brokerUrl, protocolVersion: this.protocolVersion, publicKeyPem: this.key.publicKeyPem, compatible, logLevel: 'info', ...opts });
    if (opts.configOverride) config = opts.configOverride(config);
    const configPath = join(dir, 'agent.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    const logs: string[] = [];
    const sim = new SimulatedDevice({ configPath, onOutput: (l) => logs.push(l), ...(opts.entry === undefined ? {} : { entry: opts.entry }), ...(opts.env === undefined ? {} : { env: opts.env }) });
    const device: LabDevice = {
      id,
      dir,
      configPath,
      compatible,
      sim,
      logs,
      slotsDigest: () => {
        const h = createHash('sha256');
        for (const f of ['bootloader.json', 'slot-A.img', 'slot-B.img']) {
          const p = join(dir, 'device', f);
          h.update(f).update(existsSync(p) ? readFileSync(p) : Buffer.from('absent'));
        }
        return h.digest('hex');
      },
    };
    this.devices.push(device);
    sim.start();
    await this.watcher.waitFor(() => this.watcher.online.get(id) === true && this.watcher.states.get(id), 20_000, `${id} online`).catch((e: Error) => {
      throw new Error(`${e.message}; agent output:\n${logs.slice(-20).join('\n')}`);
    });
    return device;
  }

  /** Writes a simulated image and returns its artifact fields. */
  image(version: string, o: { compatible: string; health?: string; bootable?: boolean; padBytes?: number }): { url: string; sha256: string; size: number; name: string } {
    const name = `${o.compatible}-${version}-${randomBytes(3).toString('hex')}.img`;
    const files: Record<string, string> = { health: o.health ?? 'ok' };
    if (o.padBytes) files.padding = 'x'.repeat(o.padBytes);
    const bytes = encodeSimImage({ format: 'ota-sim-image/1', compatible: o.compatible, version, bootable: o.bootable ?? true, files });
    writeFileSync(join(this.dir, 'artifacts', name), bytes);
    return { url: this.artifacts.url(name), sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, name };
  }

  announcement(dev: LabDevice, version: string, o: { health?: string; bootable?: boolean; padBytes?: number; patch?: Partial<AnnouncementInput> } = {}): AnnouncementInput {
    const img = this.image(version, { compatible: dev.compatible, health: o.health ?? 'ok', bootable: o.bootable ?? true, ...(o.padBytes ? { padBytes: o.padBytes } : {}) });
    const now = Date.now();
    return {
      id: `${dev.compatible}-${version}-${randomBytes(2).toString('hex')}`,
      sequence: this.nextSequence(),
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 3600_000).toISOString(),
      compatible: dev.compatible,
      channel: 'stable',
      version,
      backend: 'rauc',
      artifact: { url: img.url, sha256: img.sha256, size: img.size },
      rollout: { percent: 100 },
      ...o.patch,
    } as AnnouncementInput;
  }

  sign(input: AnnouncementInput, keys: KeyObject[] = [this.signer]): string {
    return JSON.stringify(signAnnouncement(input, keys).envelope);
  }

  async publishRaw(topic: string, payload: string | Buffer, retain = true): Promise<void> {
    await publishOnce(this.brokerUrl, topic, payload as string, { retain, protocolVersion: this.protocolVersion });
  }

  async announce(dev: LabDevice, input: AnnouncementInput): Promise<void> {
    await this.publishRaw(this.t.announce(dev.compatible, 'stable'), this.sign(input));
  }

  commandEnvelope(deviceId: string, command: Command['command'], extra: Partial<z.input<typeof import('../../src/schemas/command.js').Command>> = {}, keys: KeyObject[] = [this.signer]): string {
    const now = Date.now();
    return JSON.stringify(
      signCommand({ id: `${command}-${this.nextSequence()}`, deviceId, sequence: this.nextSequence(), issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 600_000).toISOString(), command, ...extra }, keys).envelope,
    );
  }

  async command(dev: LabDevice, command: Command['command'], extra: Partial<z.input<typeof import('../../src/schemas/command.js').Command>> = {}): Promise<void> {
    await this.publishRaw(this.t.commands(dev.id), this.commandEnvelope(dev.id, command, extra), false);
  }

  /** The device's recent decisions on incoming messages, read from its SQLite (read-only, WAL). */
  decisions(dev: LabDevice): DecisionRow[] {
    const store = new AgentStore(join(dev.dir, 'state', 'agent.db'), { readonly: true });
    try {
      return store.decisions(50);
    } finally {
      store.close();
    }
  }

  async waitForDecision(dev: LabDevice, pick: (d: DecisionRow) => boolean, timeoutMs = 10_000): Promise<DecisionRow> {
    const deadline = Date.now() + timeoutMs * (Number(process.env.OTA_WAIT_SCALE) || 1); // see FleetWatcher.waitFor
    while (Date.now() < deadline) {
      const d = this.decisions(dev).find(pick);
      if (d) return d;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no matching decision on ${dev.id} within ${timeoutMs} ms`);
  }

  /** The next event from `dev` after index `from` that satisfies `pick`. */
  async nextEvent(dev: LabDevice, from: number, pick: (e: ReturnType<FleetWatcher['eventsOf']>[number]) => boolean, timeoutMs = 30_000, what = 'an event') {
    return this.watcher.waitFor(() => this.watcher.eventsOf(dev.id).slice(from).find(pick), timeoutMs, `${what} from ${dev.id}`);
  }

  async close(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.sim.stop()));
    await this.watcher.close();
    await this.artifacts.close();
  }
}
