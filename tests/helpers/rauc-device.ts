// A device made of real parts: the agent process (dist/) + a real `rauc service` on a private
// dbus-daemon (RaucTestbed) + the systemd STAND-IN for logind's Reboot, which carries out a
// simulated power cycle: stop the agent like systemd would, let the simulated bootloader pick the
// slot, start RAUC and the agent again.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfigInput } from '../../src/config/schema.js';
import { SimulatedDevice } from '../../src/simulated/supervisor.js';
import { RaucTestbed } from './rauc-testbed.js';
import type { SimLab } from './sim-lab.js';
import { SystemdStandin } from './systemd-standin.js';
import type { AnnouncementInput } from '../../src/schemas/announcement.js';

export interface RaucDeviceOptions {
  /** Seconds the health check sleeps before reading the rootfs (keeps the device in verifying). */
  healthDelaySeconds?: number;
  installAttempts?: number;
  passUrlToRauc?: boolean;
  rebootMethod?: 'logind' | 'systemd';
  /** What the systemd stand-in does with a reboot request (default: a clean simulated reboot). */
  onReboot?: (dev: RaucDevice) => Promise<void>;
}

export class RaucDevice {
  readonly id = `rauc-${randomBytes(4).toString('hex')}`;
  readonly logs: string[] = [];
  agent!: SimulatedDevice;
  systemd: SystemdStandin | undefined;
  configPath!: string;
  reboots = 0;

  private constructor(readonly lab: SimLab, readonly testbed: RaucTestbed, readonly dir: string) {}

  get compatible(): string {
    return this.testbed.compatible;
  }

  static async create(lab: SimLab, opts: RaucDeviceOptions = {}): Promise<RaucDevice> {
    const compatible = `rg-${randomBytes(3).toString('hex')}`;
    const testbed = await RaucTestbed.create({ compatible });
    const dir = join(lab.dir, `rauc-${randomBytes(3).toString('hex')}`);
    mkdirSync(dir, { recursive: true });
    const dev = new RaucDevice(lab, testbed, dir);
    const config: ConfigInput = {
      deviceId: dev.id,
      compatible,
      stateDir: join(dir, 'state'),
      mqtt: { url: lab.brokerUrl, protocolVersion: lab.protocolVersion, allowPlaintext: true, reconnectPeriodMs: 500 },
      trust: { keys: [{ publicKeyPem: lab.key.publicKeyPem }] },
      backend: {
        type: 'rauc',
        busAddress: testbed.busAddress,
        bootIdFile: testbed.bootIdFile,
        fallbackVersion: '1.0.0',
        installAttempts: opts.installAttempts ?? 3,
        retryDelayMs: 500,
        passUrlToRauc: opts.passUrlToRauc ?? false,
        reboot: { method: opts.rebootMethod ?? 'logind' },
      },
      healthChecks: [
        {
          kind: 'command',
          name: 'rootfs-health',
          argv: opts.healthDelaySeconds ? ['sh', '-c', `sleep ${opts.healthDelaySeconds}; exec "$1"`, 'sh', testbed.healthScript] : [testbed.healthScript],
          timeoutMs: 20_000,
        },
      ],
      artifacts: { allowedSchemes: ['http'] },
      log: { level: 'debug' },
    };
    dev.configPath = join(dir, 'agent.json');
    writeFileSync(dev.configPath, JSON.stringify(config, null, 2));
    dev.agent = new SimulatedDevice({ configPath: dev.configPath, onOutput: (l) => dev.logs.push(l) });
    dev.onReboot = opts.onReboot ?? ((d: RaucDevice) => d.cleanReboot());
    await dev.startSystemd();
    dev.agent.start();
    await dev.waitOnline();
    return dev;
  }

  private onReboot!: (dev: RaucDevice) => Promise<void>;

  /** (Re)starts the systemd stand-in on the testbed's bus, e.g. after the bus daemon restarted. */
  async startSystemd(): Promise<void> {
    this.systemd?.close();
    // Reply to the D-Bus call first, then "power cycle", as the real logind would.
    this.systemd = await SystemdStandin.start(this.testbed.busAddress, () => {
      this.reboots++;
      setTimeout(() => void this.onReboot(this).catch((e: unknown) => this.logs.push(`reboot failed: ${String(e)}`)), 50);
    });
  }

  async waitOnline(): Promise<void> {
    await this.lab.watcher
      .waitFor(() => this.lab.watcher.online.get(this.id) === true && this.lab.watcher.states.get(this.id), 30_000, `${this.id} online`)
      .catch((e: Error) => {
        throw new Error(`${e.message}; agent output:\n${this.logs.slice(-20).join('\n')}\nrauc:\n${this.testbed.raucStderr().slice(-2000)}`);
      });
  }

  /** systemd stops the agent, the machine reboots, the bootloader picks a slot, everything starts again. */
  async cleanReboot(): Promise<void> {
    await this.agent.stop();
    this.lab.watcher.online.set(this.id, false);
    await this.testbed.simulateBoot();
    this.agent.start();
  }

  /** Publishes a bundle as an announcement; returns the announcement. */
  async announce(bundlePath: string, version: string, patch: Partial<AnnouncementInput> = {}, artifactPatch: Record<string, unknown> = {}): Promise<AnnouncementInput> {
    const name = `${this.compatible}-${version}-${randomBytes(3).toString('hex')}.raucb`;
    copyFileSync(bundlePath, join(this.lab.dir, 'artifacts', name));
    const bytes = readFileSync(bundlePath);
    const now = Date.now();
    const a = {
      id: `${this.compatible}-${version}-${randomBytes(2).toString('hex')}`,
      sequence: this.lab.nextSequence(),
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 3600_000).toISOString(),
      compatible: this.compatible,
      channel: 'stable',
      version,
      backend: 'rauc',
      artifact: { url: this.lab.artifacts.url(name), sha256: createHash('sha256').update(bytes).digest('hex'), size: statSync(bundlePath).size, ...artifactPatch },
      rollout: { percent: 100 },
      ...patch,
    } as AnnouncementInput;
    await this.lab.publishRaw(this.lab.t.announce(this.compatible, 'stable'), this.lab.sign(a));
    return a;
  }

  state() {
    return this.lab.watcher.states.get(this.id);
  }

  async close(): Promise<void> {
    await this.agent.stop().catch(() => undefined);
    this.systemd?.close();
    await this.testbed.close();
  }
}
