// A typed client of rpm-ostree's daemon (org.projectatomic.rpmostree1 on the system bus): the
// Sysroot and OS objects' properties, and the transaction methods. Like the RAUC client, every
// operation opens its own bus connection (src/dbus/connection.ts): a restarted daemon or bus costs
// one failed call, never a stale proxy. A transaction keeps its connection until it has been
// started: rpm-ostree drops a transaction whose caller leaves the bus before Start().
import dbus from 'dbus-next';
import type { EventEmitter } from 'node:events';
import { connect, connectionLost, dbusErrorText, unwrapVariants, withBus, withTimeout, type MessageBus } from '../../dbus/connection.js';
import { OS_IFACE, RPMOSTREE_BUS_NAME, RPMOSTREE_INTROSPECTION, SYSROOT_IFACE, SYSROOT_PATH } from './interface.js';
import { followTransaction, type TransactionOutcome, type TransactionProgress } from './transaction.js';

/** A deployment dict (a{sv}) as rpm-ostree publishes it; the keys the driver uses. */
export interface RpmOstreeDeployment {
  id: string;
  osname: string;
  /** The OS commit: base-checksum when packages are layered on top (then `checksum` is the local layered commit), else checksum. */
  checksum: string;
  /** The deployed commit itself (differs from checksum only with layering). */
  deployedChecksum: string;
  serial: number;
  version?: string;
  origin?: string;
  booted: boolean;
  staged: boolean;
  finalizationLocked: boolean;
  pinned: boolean;
}

export type TransactionMethod = 'UpdateDeployment' | 'FinalizeDeployment' | 'Rollback' | 'Cleanup';

export interface ActiveTransaction {
  method: string;
  sender: string;
  path: string;
  address: string;
}

/** Method calls answer at once (the work happens in the transaction); longer means stuck. */
const CALL_TIMEOUT_MS = 30_000;
const CLIENT_ID = 'ota-agent';

interface PropsIface extends EventEmitter {
  Get(iface: string, name: string): Promise<dbus.Variant>;
  GetAll(iface: string): Promise<Record<string, dbus.Variant>>;
}
interface SysrootIface extends EventEmitter {
  RegisterClient(options: Record<string, dbus.Variant>): Promise<void>;
  UnregisterClient(options: Record<string, dbus.Variant>): Promise<void>;
  GetOS(name: string): Promise<string>;
}
type OsIface = EventEmitter & Record<TransactionMethod, (...args: unknown[]) => Promise<string>>;

export function parseDeployment(raw: Record<string, unknown>): RpmOstreeDeployment | null {
  const d = unwrapVariants(raw);
  if (typeof d.checksum !== 'string' || d.checksum === '') return null; // rpm-ostree's blank dict: "none"
  return {
    id: String(d.id ?? ''),
    osname: String(d.osname ?? ''),
    // The announcement names the OS commit; with layered packages that is the base.
    checksum: typeof d['base-checksum'] === 'string' && d['base-checksum'] !== '' ? d['base-checksum'] : d.checksum,
    deployedChecksum: d.checksum,
    serial: Number(d.serial ?? 0),
    ...(typeof d.version === 'string' ? { version: d.version } : {}),
    ...(typeof d.origin === 'string' ? { origin: d.origin } : {}),
    booted: d.booted === true,
    staged: d.staged === true,
    finalizationLocked: d['finalization-locked'] === true,
    pinned: d.pinned === true,
  };
}

/** Whether a D-Bus failure says rpm-ostree is busy with another transaction. */
export function isBusy(e: unknown): boolean {
  return /Transaction in progress/i.test(dbusErrorText(e));
}

export class RpmOstreeClient {
  private osPath: string | undefined;

  constructor(
    private readonly busAddress: string | undefined,
    private readonly osname: string,
  ) {}

  private async sysroot(bus: MessageBus): Promise<{ sysroot: SysrootIface; props: PropsIface }> {
    const obj = await bus.getProxyObject(RPMOSTREE_BUS_NAME, SYSROOT_PATH, RPMOSTREE_INTROSPECTION);
    return { sysroot: obj.getInterface(SYSROOT_IFACE) as unknown as SysrootIface, props: obj.getInterface('org.freedesktop.DBus.Properties') as unknown as PropsIface };
  }

  private async os(bus: MessageBus): Promise<{ os: OsIface; props: PropsIface }> {
    if (!this.osPath) {
      const { sysroot } = await this.sysroot(bus);
      this.osPath = await sysroot.GetOS(this.osname);
    }
    const obj = await bus.getProxyObject(RPMOSTREE_BUS_NAME, this.osPath, RPMOSTREE_INTROSPECTION);
    return { os: obj.getInterface(OS_IFACE) as unknown as OsIface, props: obj.getInterface('org.freedesktop.DBus.Properties') as unknown as PropsIface };
  }

  private async call<T>(what: string, fn: (bus: MessageBus) => Promise<T>): Promise<T> {
    try {
      return await withBus(this.busAddress, (bus) => withTimeout(fn(bus), CALL_TIMEOUT_MS, what));
    } catch (e) {
      throw new Error(`rpm-ostree ${what}: ${dbusErrorText(e)}`, { cause: e });
    }
  }

  /** Sysroot.Deployments (boot order: the first is the next boot's choice), this osname only. */
  async deployments(): Promise<RpmOstreeDeployment[]> {
    const raw = await this.call('Deployments', async (bus) => (await (await this.sysroot(bus)).props.Get(SYSROOT_IFACE, 'Deployments')).value as Array<Record<string, unknown>>);
    return raw.map(parseDeployment).filter((d): d is RpmOstreeDeployment => d !== null && d.osname === this.osname);
  }

  /** The OS object's BootedDeployment, DefaultDeployment and RollbackDeployment (null: none). */
  async osDeployments(): Promise<{ booted: RpmOstreeDeployment | null; default: RpmOstreeDeployment | null; rollback: RpmOstreeDeployment | null }> {
    const all = await this.call('OS properties', async (bus) => (await this.os(bus)).props.GetAll(OS_IFACE));
    const get = (k: string) => parseDeployment((all[k]?.value ?? {}) as Record<string, unknown>);
    return { booted: get('BootedDeployment'), default: get('DefaultDeployment'), rollback: get('RollbackDeployment') };
  }

  /** Sysroot.ActiveTransaction + ActiveTransactionPath, or null when none runs. */
  async activeTransaction(): Promise<ActiveTransaction | null> {
    return this.call('ActiveTransaction', async (bus) => {
      const { props } = await this.sysroot(bus);
      const [method, sender, path] = (await props.Get(SYSROOT_IFACE, 'ActiveTransaction')).value as [string, string, string];
      const address = (await props.Get(SYSROOT_IFACE, 'ActiveTransactionPath')).value as string;
      return address ? { method, sender, path, address } : null;
    });
  }

  /** Follows an existing transaction (e.g. one this agent started before it was restarted). */
  async attach(address: string, progress: TransactionProgress, o: { timeoutMs: number; signal?: AbortSignal }): Promise<TransactionOutcome> {
    return followTransaction(address, { ...progress, ...o });
  }

  /**
   * Calls a transaction method on the OS object and follows the transaction to its end. The bus
   * connection that made the call stays open until Finished: rpm-ostree watches the caller until
   * Start(), and RegisterClient keeps the daemon from exiting while the agent is interested.
   */
  async transact(method: TransactionMethod, args: unknown[], progress: TransactionProgress, o: { timeoutMs: number; signal?: AbortSignal }): Promise<TransactionOutcome> {
    const bus = connect(this.busAddress);
    try {
      const lost = connectionLost(bus);
      const address = await Promise.race([
        (async () => {
          const { sysroot } = await withTimeout(this.sysroot(bus), CALL_TIMEOUT_MS, 'rpm-ostree Sysroot');
          await withTimeout(sysroot.RegisterClient({ id: new dbus.Variant('s', CLIENT_ID) }), CALL_TIMEOUT_MS, 'RegisterClient');
          const { os } = await withTimeout(this.os(bus), CALL_TIMEOUT_MS, 'rpm-ostree OS');
          return withTimeout(os[method](...args), CALL_TIMEOUT_MS, method);
        })(),
        lost,
      ]).catch((e: unknown) => {
        throw new Error(`rpm-ostree ${method}: ${dbusErrorText(e)}`, { cause: e });
      });
      return await followTransaction(address, { ...progress, ...o });
    } finally {
      bus.disconnect();
    }
  }
}

/** A variant dict for rpm-ostree options; booleans as b, strings as s, string arrays as as. */
export function vardict(o: Record<string, string | boolean | string[]>): Record<string, dbus.Variant> {
  const out: Record<string, dbus.Variant> = {};
  for (const [k, v] of Object.entries(o)) out[k] = new dbus.Variant(typeof v === 'boolean' ? 'b' : Array.isArray(v) ? 'as' : 's', v);
  return out;
}
