// Simulated devices IN ONE PROCESS: each runs the real Agent (src/agent/agent.ts) with its own
// SQLite AgentStore, its own SimulatedBackend directory and its own MQTT connection (MqttLink), as
// `ota-agent run` wires them (src/agent/run.ts). A simulated reboot (the backend's exit-process
// outcome) stops that device's agent and link and closes its store, then "boots" it: the backend
// is opened again on the same directory (the simulated bootloader picks the slot) and a new Agent
// and MqttLink start. Nothing is shared between devices except the trust policy (read-only).
//
// Faults, per device:
//   failHealth  the device's health check (HTTP against the fleet's loopback health server) fails
//   fallback    after the install, the new slot is made unbootable before the reboot: the
//               simulated bootloader falls back to the old slot
//   drop        the MQTT connection is cut mid-update (through a FaultProxy); the client reconnects
//   dup         the announcement is delivered twice on the wire (QoS 1 redelivery)
//   reorder     an older, validly signed announcement is delivered right after the newer one
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Agent } from '../agent/agent.js';
import { parseConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { trustPolicy } from '../config/trust.js';
import type { TrustPolicy } from '../core/signed-message.js';
import type { RebootOutcome } from '../core/backend.js';
import { runHealthChecks } from '../health/runner.js';
import { MqttLink } from '../mqtt/link.js';
import { topics } from '../mqtt/topics.js';
import type { DeviceState } from '../schemas/device-messages.js';
import { SimulatedBackend, SimulatedOptions } from '../simulated/backend.js';
import { writeFileDurable } from '../simulated/bootloader.js';
import { AgentStore } from '../store/agent-store.js';
import { silentLogger, type Logger } from '../util/log.js';
import { AGENT_VERSION } from '../version.js';
import { FaultProxy } from './fault-proxy.js';

export interface SimDeviceSpec {
  id: string;
  groups?: string[];
  failHealth?: boolean;
  fallback?: boolean;
  drop?: boolean;
  dup?: boolean;
  reorder?: boolean;
}

export interface SimFleetOptions {
  brokerUrl: string;
  protocolVersion?: 4 | 5;
  prefix?: string;
  compatible: string;
  channel?: string;
  /** Work directory: one sub-directory per device. */
  dir: string;
  publicKeyPem: string;
  initialVersion?: string;
  reconnectPeriodMs?: number;
  /** For `reorder` devices: the older envelope delivered after the first announcement. */
  staleEnvelope?: Buffer | null;
  /** Devices started at once (opening stores and backends is synchronous I/O). */
  concurrency?: number;
  log?: Logger;
}

export interface SimFleetStats {
  boots: number;
  reboots: number;
  fallbacksArmed: number;
  drops: number;
  duplicated: number;
  staleInjected: number;
  reconnects: number;
}

export async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

/** The loopback health endpoint every simulated device checks: 200, or 503 for failing devices. */
async function startHealthServer(failing: ReadonlySet<string>): Promise<{ url: (id: string) => string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const id = decodeURIComponent((req.url ?? '').replace(/^\/health\//, ''));
    if (failing.has(id)) res.writeHead(503, { 'content-type': 'text/plain' }).end('simulated failure: the new version does not come up\n');
    else res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (id) => `http://127.0.0.1:${port}/health/${encodeURIComponent(id)}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export class SimDevice {
  agent!: Agent;
  link!: MqttLink;
  store!: AgentStore;
  backend!: SimulatedBackend;
  boots = 0;
  private stopped = false;
  private dropped = false;
  private transition: Promise<void> = Promise.resolve();

  constructor(
    readonly spec: SimDeviceSpec,
    readonly config: Config,
    private readonly fleet: SimFleet,
    readonly proxy: FaultProxy | null,
  ) {}

  get id(): string {
    return this.spec.id;
  }

  get simDir(): string {
    return String(this.config.backend.dir);
  }

  /** Powers the device on (first boot) or boots it after a simulated reboot. */
  async boot(): Promise<void> {
    const { config } = this;
    const opts = SimulatedOptions.parse(config.backend);
    this.backend = await SimulatedBackend.open(opts, config.compatible, join(config.stateDir, 'downloads'));
    this.store = new AgentStore(join(config.stateDir, 'agent.db'));
    const agent = new Agent({
      config,
      store: this.store,
      backend: this.backend,
      trust: this.fleet.trust,
      log: this.fleet.log,
      agentVersion: AGENT_VERSION,
      runChecks: (specs, signal) => runHealthChecks(specs, { signal }),
    });
    const link = new MqttLink(config, agent.topics, this.store, {
      onAnnouncement: (topic, payload) => agent.handleAnnouncement(topic, payload),
      onCommand: (topic, payload) => {
        void agent.handleCommand(topic, payload).catch(() => undefined);
      },
    }, this.fleet.log);
    this.agent = agent;
    this.link = link;
    agent.on('outbox', () => link.pump());
    agent.on('state', (s) => {
      link.publishState(s);
      this.onState(s);
    });
    agent.on('reboot', (outcome) => {
      this.transition = this.transition.then(() => this.reboot(agent, outcome));
    });
    this.boots++;
    this.fleet.stats.boots++;
    await agent.start();
    link.publishState(agent.state());
    link.start();
  }

  private onState(s: DeviceState): void {
    // A connection lost mid-update: the update goes on, events wait in the outbox.
    if (this.spec.drop && !this.dropped && this.proxy && (s.state === 'downloading' || s.state === 'installing')) {
      this.dropped = true;
      setImmediate(() => this.proxy?.drop());
    }
  }

  /** What run.ts does on a simulated reboot, then the next boot. */
  private async reboot(agent: Agent, outcome: RebootOutcome): Promise<void> {
    if (outcome.kind !== 'exit-process' || agent !== this.agent || this.stopped) return;
    const rec = this.store.current();
    await this.shutdown();
    if (this.spec.fallback && rec?.state === 'rebooting' && rec.newSlot && this.markUnbootable(rec.newSlot)) this.fleet.stats.fallbacksArmed++;
    this.fleet.stats.reboots++;
    if (this.stopped) return;
    await this.boot();
  }

  /** The new slot's image will not start: the simulated bootloader falls back at the next boot. */
  private markUnbootable(slot: string): boolean {
    const path = join(this.simDir, `slot-${slot}.img`);
    try {
      const img = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      writeFileDurable(path, JSON.stringify({ ...img, bootable: false }, null, 2) + '\n');
      return true;
    } catch {
      return false;
    }
  }

  private async shutdown(): Promise<void> {
    await this.link.flush(2000);
    await this.agent.stop();
    await this.link.stop();
    await this.backend.close();
    this.store.close();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.transition;
    await this.shutdown().catch(() => undefined);
    await this.proxy?.close();
  }
}

export class SimFleet {
  readonly devices: SimDevice[] = [];
  readonly stats: SimFleetStats = { boots: 0, reboots: 0, fallbacksArmed: 0, drops: 0, duplicated: 0, staleInjected: 0, reconnects: 0 };
  readonly log: Logger;
  /** Devices whose health check fails; may be changed while running. */
  readonly failing: Set<string>;
  trust!: TrustPolicy;
  private health!: Awaited<ReturnType<typeof startHealthServer>>;
  private readonly byId = new Map<string, SimDevice>();

  private constructor(readonly opts: SimFleetOptions, specs: readonly SimDeviceSpec[]) {
    this.log = opts.log ?? silentLogger();
    this.failing = new Set(specs.filter((s) => s.failHealth).map((s) => s.id));
  }

  static async start(opts: SimFleetOptions, specs: readonly SimDeviceSpec[]): Promise<SimFleet> {
    const fleet = new SimFleet(opts, specs);
    fleet.health = await startHealthServer(fleet.failing);
    try {
      await pool(specs, opts.concurrency ?? 25, (spec) => fleet.add(spec));
    } catch (e) {
      await fleet.stop();
      throw e;
    }
    return fleet;
  }

  private async add(spec: SimDeviceSpec): Promise<void> {
    const o = this.opts;
    const prefix = o.prefix ?? 'ota/v1';
    const channel = o.channel ?? 'stable';
    const protocolVersion = o.protocolVersion ?? 5;
    const wire = spec.drop || spec.dup || spec.reorder;
    let proxy: FaultProxy | null = null;
    if (wire) {
      const u = new URL(o.brokerUrl);
      proxy = await FaultProxy.start({
        broker: { host: u.hostname, port: Number(u.port || 1883) },
        announceTopic: topics(prefix).announce(o.compatible, channel),
        protocolVersion,
        duplicate: spec.dup ?? false,
        stale: spec.reorder ? (o.staleEnvelope ?? null) : null,
      });
    }
    const dir = join(o.dir, spec.id);
    mkdirSync(dir, { recursive: true });
    const config = parseConfig(
      {
        deviceId: spec.id,
        compatible: o.compatible,
        channels: [channel],
        groups: spec.groups ?? [],
        stateDir: join(dir, 'state'),
        topicPrefix: prefix,
        mqtt: { url: proxy ? proxy.url : o.brokerUrl, protocolVersion, allowPlaintext: true, reconnectPeriodMs: o.reconnectPeriodMs ?? 300, keepaliveSeconds: 60 },
        trust: { keys: [{ publicKeyPem: o.publicKeyPem }] },
        backend: { type: 'simulated', dir: join(dir, 'device'), initialVersion: o.initialVersion ?? '1.0.0' },
        healthChecks: [{ kind: 'http', name: 'app', url: this.health.url(spec.id), timeoutMs: 5000 }],
        artifacts: { allowedSchemes: ['http', 'https'] },
        log: { level: 'silent' },
      },
      `simulated device ${spec.id}`,
    );
    this.trust ??= trustPolicy(config);
    const dev = new SimDevice(spec, config, this, proxy);
    this.devices.push(dev);
    this.byId.set(spec.id, dev);
    await dev.boot();
  }

  device(id: string): SimDevice {
    const d = this.byId.get(id);
    if (!d) throw new Error(`no simulated device ${id}`);
    return d;
  }

  /** Devices whose MQTT link is connected right now (local view, not the broker's). */
  connectedCount(): number {
    return this.devices.filter((d) => d.link.connected).length;
  }

  /** Counters, with the wire faults collected from the proxies. */
  snapshot(): SimFleetStats {
    const s = { ...this.stats, drops: 0, duplicated: 0, staleInjected: 0, reconnects: 0 };
    for (const d of this.devices) {
      if (!d.proxy) continue;
      s.drops += d.proxy.stats.drops;
      s.duplicated += d.proxy.stats.duplicated;
      s.staleInjected += d.proxy.stats.staleInjected;
      s.reconnects += Math.max(0, d.proxy.stats.connections - d.boots);
    }
    return s;
  }

  async stop(): Promise<void> {
    await pool(this.devices, 50, (d) => d.stop());
    await this.health?.close();
  }
}
