// A STAND-IN for systemd's manager (PID 1) on a test's private D-Bus, for the `systemd-unit` health
// check: just GetUnit and the ActiveState/SubState properties of the units it is told about. It is
// not systemd: no unit files, no jobs, no state changes of its own; the test sets each unit's state.
//
//   org.freedesktop.systemd1 /org/freedesktop/systemd1              org.freedesktop.systemd1.Manager
//       GetUnit(s name) -> o          (an unknown unit fails with org.freedesktop.systemd1.NoSuchUnit,
//                                      like systemd does for a unit that is not loaded)
//   org.freedesktop.systemd1 /org/freedesktop/systemd1/unit/<escaped>  org.freedesktop.systemd1.Unit
//       ActiveState (s, read), SubState (s, read)   — read via org.freedesktop.DBus.Properties.Get
//
// Built with dbus-next's service API (Interface.configureMembers, not decorators). PrivateBus
// starts the dbus-daemon it lives on, like tests/helpers/rauc-testbed.ts does; a missing
// dbus-daemon is a test failure naming the Debian package, never a skip.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import dbus, { type MessageBus } from 'dbus-next';
import { findBinary, socketAccepts } from './processes.js';

const { Interface } = dbus.interface;


/** Absolute path of dbus-daemon, or an Error with the install hint. */
export function requireDbusDaemon(): string {
  return findBinary('dbus-daemon', 'the systemd-unit health check tests', 'dbus', 'apt-get install -y dbus');
}


/** A private dbus-daemon (system-bus type, everything allowed) on a socket in a temp directory. */
export class PrivateBus {
  private output = '';
  private constructor(
    readonly dir: string,
    readonly address: string,
    private readonly proc: ChildProcess,
  ) {}

  static async start(): Promise<PrivateBus> {
    const bin = requireDbusDaemon();
    const dir = mkdtempSync(join(tmpdir(), 'ota-bus-'));
    const socket = join(dir, 'bus.sock');
    writeFileSync(
      join(dir, 'dbus.conf'),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`,
    );
    const proc = spawn(bin, [`--config-file=${join(dir, 'dbus.conf')}`, '--nofork', '--nopidfile', '--nosyslog'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const bus = new PrivateBus(dir, `unix:path=${socket}`, proc);
    proc.stdout?.on('data', (b: Buffer) => (bus.output += b.toString()));
    proc.stderr?.on('data', (b: Buffer) => (bus.output += b.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`dbus-daemon exited (${String(proc.exitCode ?? proc.signalCode)}): ${bus.output}`);
      if (await socketAccepts(socket)) return bus;
      await sleep(20);
    }
    await bus.stop();
    throw new Error(`dbus-daemon did not listen on ${socket} within 10 s: ${bus.output}`);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGTERM');
      await Promise.race([exited, sleep(5_000).then(() => p.kill('SIGKILL'))]);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** systemd's object path escaping (sd_bus_path_encode): every byte but [A-Za-z0-9] becomes _xx. */
export function unitObjectPath(unit: string): string {
  const escaped = [...Buffer.from(unit)].map((b) => (/[A-Za-z0-9]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `_${b.toString(16).padStart(2, '0')}`)).join('');
  return `/org/freedesktop/systemd1/unit/${escaped}`;
}

/** STAND-IN for org.freedesktop.systemd1.Unit: two read-only properties. */
class UnitStandin extends Interface {
  ActiveState = 'inactive';
  SubState = 'dead';

  constructor() {
    super('org.freedesktop.systemd1.Unit');
  }
}
UnitStandin.configureMembers({
  properties: {
    ActiveState: { signature: 's', access: 'read' },
    SubState: { signature: 's', access: 'read' },
  },
});

/** STAND-IN for org.freedesktop.systemd1.Manager: GetUnit only. */
class ManagerStandin extends Interface {
  constructor(private readonly owner: SystemdUnitStandin) {
    super('org.freedesktop.systemd1.Manager');
  }

  GetUnit(name: string): Promise<string> {
    return this.owner.getUnit(name);
  }
}
ManagerStandin.configureMembers({ methods: { GetUnit: { inSignature: 's', outSignature: 'o' } } });

export class SystemdUnitStandin {
  /** Every GetUnit call, in order. */
  readonly getUnitCalls: string[] = [];
  /** Delay before GetUnit answers, to make checks time out. */
  getUnitDelayMs = 0;
  private readonly units = new Map<string, UnitStandin>();

  private constructor(
    readonly busAddress: string,
    private readonly bus: MessageBus,
  ) {}

  /** Connects to `busAddress`, owns org.freedesktop.systemd1 and exports the manager. */
  static async start(busAddress: string): Promise<SystemdUnitStandin> {
    const bus = dbus.sessionBus({ busAddress });
    bus.on('error', () => undefined);
    const s = new SystemdUnitStandin(busAddress, bus);
    try {
      bus.export('/org/freedesktop/systemd1', new ManagerStandin(s));
      const reply = await bus.requestName('org.freedesktop.systemd1', dbus.NameFlag.DO_NOT_QUEUE);
      if (reply !== dbus.RequestNameReply.PRIMARY_OWNER) throw new Error(`systemd unit stand-in could not own org.freedesktop.systemd1 (reply ${reply})`);
    } catch (e) {
      bus.disconnect();
      throw e;
    }
    return s;
  }

  /** Creates the unit (exported at its object path) or updates its state. */
  setUnit(name: string, activeState: string, subState = activeState === 'active' ? 'running' : 'dead'): void {
    let unit = this.units.get(name);
    if (!unit) {
      unit = new UnitStandin();
      this.units.set(name, unit);
      this.bus.export(unitObjectPath(name), unit);
    }
    unit.ActiveState = activeState;
    unit.SubState = subState;
  }

  /** @internal the Manager's GetUnit. */
  async getUnit(name: string): Promise<string> {
    this.getUnitCalls.push(name);
    if (this.getUnitDelayMs > 0) await sleep(this.getUnitDelayMs);
    if (!this.units.has(name)) throw new dbus.DBusError('org.freedesktop.systemd1.NoSuchUnit', `Unit ${name} not loaded.`);
    return unitObjectPath(name);
  }

  close(): void {
    this.bus.disconnect();
  }
}
