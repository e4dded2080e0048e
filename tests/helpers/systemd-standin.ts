// A STAND-IN for systemd-logind and systemd's manager (PID 1) on a test's private D-Bus: just the
// two reboot entry points the agent may use, nothing else of systemd. It is not systemd: no units,
// no jobs, no polkit; a "reboot" only records the call and runs the test's callback (which may, for
// example, call RaucTestbed.simulateBoot()).
//
//   org.freedesktop.login1   /org/freedesktop/login1    org.freedesktop.login1.Manager
//       Reboot(b interactive)
//   org.freedesktop.systemd1 /org/freedesktop/systemd1  org.freedesktop.systemd1.Manager
//       StartUnit(s name, s mode) -> o job     (only 'reboot.target'; any other unit fails with
//                                               org.freedesktop.systemd1.NoSuchUnit)
//
// Built with dbus-next's service API (Interface.configureMembers, not decorators). The connection
// does not survive RaucTestbed.restartBus(): call reconnect() (keeps `calls`) or start a new one.
import dbus, { type MessageBus } from 'dbus-next';

export type RebootVia = 'logind' | 'systemd';
export type RebootDetail = { interactive: boolean } | { unit: string; mode: string };
export interface RebootCall {
  via: RebootVia;
  detail: RebootDetail;
  /** Date.now() when the call arrived. */
  at: number;
}
export type OnReboot = (via: RebootVia, detail: RebootDetail) => void | Promise<void>;

const { Interface } = dbus.interface;

type Hit = (via: RebootVia, detail: RebootDetail) => void;

/** STAND-IN for org.freedesktop.login1.Manager. */
class Login1ManagerStandin extends Interface {
  constructor(private readonly hit: Hit) {
    super('org.freedesktop.login1.Manager');
  }

  Reboot(interactive: boolean): void {
    this.hit('logind', { interactive });
  }
}
Login1ManagerStandin.configureMembers({ methods: { Reboot: { inSignature: 'b', outSignature: '' } } });

/** STAND-IN for org.freedesktop.systemd1.Manager. */
class Systemd1ManagerStandin extends Interface {
  private jobs = 0;

  constructor(private readonly hit: Hit) {
    super('org.freedesktop.systemd1.Manager');
  }

  StartUnit(name: string, mode: string): string {
    if (name !== 'reboot.target') throw new dbus.DBusError('org.freedesktop.systemd1.NoSuchUnit', `Unit ${name} not found.`);
    this.hit('systemd', { unit: name, mode });
    return `/org/freedesktop/systemd1/job/${++this.jobs}`;
  }
}
Systemd1ManagerStandin.configureMembers({ methods: { StartUnit: { inSignature: 'ss', outSignature: 'o' } } });

export class SystemdStandin {
  /** Every accepted reboot request, in order of arrival. */
  readonly calls: RebootCall[] = [];
  /** Errors thrown (or rejected) by the onReboot callback. */
  readonly callbackErrors: unknown[] = [];
  private bus: MessageBus | null = null;
  private closed = false;

  private constructor(
    readonly busAddress: string,
    private readonly onReboot: OnReboot,
  ) {}

  /** Connects to the bus at `busAddress` ('unix:path=...'), owns both names, exports both objects. */
  static async start(busAddress: string, onReboot: OnReboot = () => undefined): Promise<SystemdStandin> {
    const s = new SystemdStandin(busAddress, onReboot);
    await s.connect();
    return s;
  }

  /** A new connection to the same address (after the bus daemon restarted); `calls` are kept. */
  async reconnect(): Promise<void> {
    if (this.closed) throw new Error('systemd stand-in is closed');
    this.bus?.disconnect();
    this.bus = null;
    await this.connect();
  }

  private async connect(): Promise<void> {
    const bus = dbus.sessionBus({ busAddress: this.busAddress });
    // A dead bus (restartBus, teardown) must not become an unhandled 'error' event.
    bus.on('error', () => undefined);
    try {
      const hit: Hit = (via, detail) => this.record(via, detail);
      bus.export('/org/freedesktop/login1', new Login1ManagerStandin(hit));
      bus.export('/org/freedesktop/systemd1', new Systemd1ManagerStandin(hit));
      for (const name of ['org.freedesktop.login1', 'org.freedesktop.systemd1']) {
        const reply = await bus.requestName(name, dbus.NameFlag.DO_NOT_QUEUE);
        if (reply !== dbus.RequestNameReply.PRIMARY_OWNER) throw new Error(`systemd stand-in could not own ${name} (RequestName reply ${reply})`);
      }
    } catch (e) {
      bus.disconnect();
      throw e;
    }
    this.bus = bus;
  }

  private record(via: RebootVia, detail: RebootDetail): void {
    this.calls.push({ via, detail, at: Date.now() });
    // Like the real thing, the caller gets its reply first; the "reboot" happens afterwards.
    setImmediate(() => {
      try {
        Promise.resolve(this.onReboot(via, detail)).catch((e: unknown) => this.callbackErrors.push(e));
      } catch (e) {
        this.callbackErrors.push(e);
      }
    });
  }

  /** Disconnects (which releases both names). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.bus?.disconnect();
    this.bus = null;
  }
}
