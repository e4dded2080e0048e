// A typed client for RAUC's D-Bus installer. Every method opens its own connection (see
// src/dbus/connection.ts) and has a timeout; an install is followed through the Completed signal,
// the Progress property and the bus itself, so a RAUC that dies or a bus that restarts ends the
// wait with an error instead of a hang.
import type dbus from 'dbus-next';
import type { EventEmitter } from 'node:events';
import { connect, connectionLost, dbusErrorText, unwrapVariants, withBus, withTimeout, type MessageBus } from '../dbus/connection.js';
import { RAUC_BUS_NAME, RAUC_INTERFACE, RAUC_INTROSPECTION, RAUC_PATH } from './interface-xml.js';

export interface RaucSlot {
  name: string; // rootfs.0
  class?: string;
  bootname?: string; // A
  state?: string; // booted | inactive | active
  bootStatus?: string; // good | bad
  version?: string; // bundle.version
  installedAt?: string;
  raw: Record<string, string | number | boolean>;
}

export class RaucError extends Error {
  constructor(
    message: string,
    /** Worth trying again later: busy, not on the bus, the service went away. */
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** RAUC answers method calls in milliseconds; a call that takes longer is stuck (e.g. a bus restarting). */
const CALL_TIMEOUT_MS = 10_000;

interface InstallerIface extends EventEmitter {
  InstallBundle(source: string, args: Record<string, dbus.Variant>): Promise<void>;
  GetSlotStatus(): Promise<Array<[string, Record<string, unknown>]>>;
  GetPrimary(): Promise<string>;
  Info(bundle: string): Promise<[string, string]>;
  Mark(state: string, slot: string): Promise<[string, string]>;
}
interface PropertiesIface extends EventEmitter {
  Get(iface: string, name: string): Promise<dbus.Variant>;
}
interface Installer {
  iface: InstallerIface;
  props: PropertiesIface;
}

async function installer(bus: MessageBus): Promise<Installer> {
  const obj = await bus.getProxyObject(RAUC_BUS_NAME, RAUC_PATH, RAUC_INTROSPECTION);
  return {
    iface: obj.getInterface(RAUC_INTERFACE) as unknown as InstallerIface,
    props: obj.getInterface('org.freedesktop.DBus.Properties') as unknown as PropertiesIface,
  };
}

/** Maps a D-Bus failure to a RaucError that says whether retrying makes sense. */
export function classify(e: unknown, what: string): RaucError {
  const text = dbusErrorText(e);
  const retryable =
    /Already processing/i.test(text) ||
    /ServiceUnknown|NameHasNoOwner|not provided by any \.service|was not provided/i.test(text) ||
    /ECONNREFUSED|ENOENT|EPIPE|ECONNRESET|EBADF|disconnect|no answer within|connection closed|connection failed|closed stream/i.test(text);
  return new RaucError(`${what}: ${text}`, retryable, { cause: e });
}

export class RaucClient {
  constructor(private readonly busAddress?: string) {}

  private async call<T>(what: string, fn: (i: Installer) => Promise<T>): Promise<T> {
    try {
      return await withBus(this.busAddress, async (bus) => withTimeout(installer(bus).then(fn), CALL_TIMEOUT_MS, what));
    } catch (e) {
      throw e instanceof RaucError ? e : classify(e, what);
    }
  }

  async property(name: 'Operation' | 'LastError' | 'BootSlot' | 'Compatible'): Promise<string> {
    return this.call(`reading RAUC ${name}`, async ({ props }) => (await props.Get(RAUC_INTERFACE, name)).value as string);
  }

  async slotStatus(): Promise<RaucSlot[]> {
    const raw = await this.call('GetSlotStatus', ({ iface }) => iface.GetSlotStatus());
    return raw.map(([name, dict]) => {
      const d = unwrapVariants(dict);
      const s = (k: string) => (d[k] === undefined ? undefined : String(d[k]));
      const slot: RaucSlot = { name, raw: d };
      for (const [key, field] of [['class', 'class'], ['bootname', 'bootname'], ['state', 'state'], ['boot-status', 'bootStatus'], ['bundle.version', 'version'], ['installed.timestamp', 'installedAt']] as const) {
        const v = s(key);
        if (v !== undefined) slot[field] = v;
      }
      return slot;
    });
  }

  /** Compatible and version of a bundle; RAUC checks its signature first. */
  async info(bundle: string): Promise<{ compatible: string; version: string }> {
    const [compatible, version] = await this.call(`Info ${bundle}`, ({ iface }) => iface.Info(bundle));
    return { compatible, version };
  }

  async primary(): Promise<string> {
    return this.call('GetPrimary', ({ iface }) => iface.GetPrimary());
  }

  async mark(state: 'good' | 'bad' | 'active', slot: string): Promise<string> {
    const [name, message] = await this.call(`Mark ${state} ${slot}`, ({ iface }) => iface.Mark(state, slot));
    return `${name}: ${message}`;
  }

  /**
   * Installs a bundle and resolves when RAUC reports success. Rejects with RAUC's LastError on
   * Completed(1), and with a retryable error when RAUC leaves the bus or the bus goes away.
   */
  async install(source: string, opts: { signal: AbortSignal; timeoutMs: number; onProgress: (percent: number, message: string) => void }): Promise<void> {
    const bus = connect(this.busAddress);
    try {
      const { iface, props } = await withTimeout(installer(bus), CALL_TIMEOUT_MS, 'connecting to RAUC');
      const operation = (await withTimeout(props.Get(RAUC_INTERFACE, 'Operation'), CALL_TIMEOUT_MS, 'reading Operation')).value as string;
      if (operation !== 'idle') throw new RaucError(`RAUC is busy (Operation=${operation})`, true);

      const done = new Promise<void>((resolve, reject) => {
        const fail = (e: Error) => reject(e);
        iface.on('Completed', (result: number) => {
          if (result === 0) {
            resolve();
            return;
          }
          props
            .Get(RAUC_INTERFACE, 'LastError')
            .then((v) => fail(new RaucError((v.value as string) || `RAUC install failed (result ${result})`, false)))
            .catch((e: unknown) => fail(classify(e, 'reading LastError')));
        });
        props.on('PropertiesChanged', (_i: string, changed: Record<string, dbus.Variant>) => {
          const p = changed.Progress?.value as [number, string, number] | undefined;
          if (p) opts.onProgress(p[0], p[1]);
        });
        // RAUC leaving the bus (crash, kill) or the bus itself going away ends the wait.
        watchOwner(bus, () => fail(new RaucError('the RAUC service left the bus during the install', true))).catch(fail);
        connectionLost(bus).catch((e: unknown) => fail(classify(e, 'during the install')));
        const timer = setTimeout(() => fail(new RaucError(`the install did not complete within ${opts.timeoutMs} ms`, false)), opts.timeoutMs);
        timer.unref();
        opts.signal.addEventListener('abort', () => fail(new RaucError('install aborted: the agent is stopping', true)), { once: true });
      });
      // Observed even if InstallBundle itself fails first, so a late rejection is never unhandled.
      done.catch(() => undefined);
      try {
        await withTimeout(iface.InstallBundle(source, {}), CALL_TIMEOUT_MS, 'InstallBundle');
      } catch (e) {
        throw classify(e, 'InstallBundle');
      }
      await done;
    } finally {
      bus.disconnect();
    }
  }
}

/** Calls `onGone` when de.pengutronix.rauc loses its owner. */
async function watchOwner(bus: MessageBus, onGone: () => void): Promise<void> {
  const obj = await bus.getProxyObject('org.freedesktop.DBus', '/org/freedesktop/DBus');
  const dbusIface = obj.getInterface('org.freedesktop.DBus') as unknown as EventEmitter;
  dbusIface.on('NameOwnerChanged', (name: string, _old: string, newOwner: string) => {
    if (name === RAUC_BUS_NAME && newOwner === '') onGone();
  });
}
