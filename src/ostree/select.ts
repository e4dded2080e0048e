// Which OSTree driver runs: rpm-ostree (over D-Bus) where its daemon exists, the ostree tool
// elsewhere. On Fedora IoT/CoreOS and RHEL for Edge rpm-ostree owns the deployments (its daemon
// holds the sysroot lock during transactions and tracks its own state), so the agent must go
// through it; on a plain OSTree system there is no such daemon. `driver` in the config forces one.
import type { EventEmitter } from 'node:events';
import { dbusErrorText, withBus, withTimeout } from '../dbus/connection.js';
import type { UpdateBackend } from '../core/backend.js';
import { OstreeBackend } from './backend.js';
import type { OstreeOptions } from './options.js';
import { RpmOstreeBackend } from './rpmostree/backend.js';
import { RPMOSTREE_BUS_NAME } from './rpmostree/interface.js';

export type OstreeDriver = 'ostree' | 'rpm-ostree';

/** What the bus says about rpm-ostree: owned now, or startable by bus activation; or why it could not be asked. */
export type RpmOstreeProbe = { owned: boolean; activatable: boolean } | { error: string };

export interface DriverChoice {
  driver: OstreeDriver;
  why: string;
}

/** The decision, without I/O. */
export function chooseDriver(configured: OstreeOptions['driver'], probe: RpmOstreeProbe | null): DriverChoice {
  if (configured !== 'auto') return { driver: configured, why: `driver "${configured}" set in the config` };
  if (!probe) return { driver: 'ostree', why: 'rpm-ostree was not looked for' };
  if ('error' in probe) return { driver: 'ostree', why: `the bus could not be asked about ${RPMOSTREE_BUS_NAME} (${probe.error}): using the ostree tool` };
  if (probe.owned) return { driver: 'rpm-ostree', why: `${RPMOSTREE_BUS_NAME} is on the bus` };
  if (probe.activatable) return { driver: 'rpm-ostree', why: `${RPMOSTREE_BUS_NAME} is activatable on the bus` };
  return { driver: 'ostree', why: `${RPMOSTREE_BUS_NAME} is neither on the bus nor activatable: using the ostree tool` };
}

interface BusDaemon extends EventEmitter {
  NameHasOwner(name: string): Promise<boolean>;
  ListActivatableNames(): Promise<string[]>;
}

/** Asks the bus daemon (never rpm-ostree itself, which would start it) whether rpm-ostree is there. */
export async function probeRpmOstree(busAddress?: string, timeoutMs = 5000): Promise<RpmOstreeProbe> {
  try {
    return await withBus(busAddress, async (bus) => {
      const obj = await withTimeout(bus.getProxyObject('org.freedesktop.DBus', '/org/freedesktop/DBus', BUS_DAEMON_XML), timeoutMs, 'the bus daemon');
      const d = obj.getInterface('org.freedesktop.DBus') as unknown as BusDaemon;
      const owned = await withTimeout(d.NameHasOwner(RPMOSTREE_BUS_NAME), timeoutMs, 'NameHasOwner');
      const activatable = owned || (await withTimeout(d.ListActivatableNames(), timeoutMs, 'ListActivatableNames')).includes(RPMOSTREE_BUS_NAME);
      return { owned, activatable };
    });
  } catch (e) {
    return { error: dbusErrorText(e) };
  }
}

const BUS_DAEMON_XML = `<node><interface name="org.freedesktop.DBus">
  <method name="NameHasOwner"><arg direction="in" type="s"/><arg direction="out" type="b"/></method>
  <method name="ListActivatableNames"><arg direction="out" type="as"/></method>
</interface></node>`;

type Log = { warn: (o: object, m: string) => void; info: (o: object, m: string) => void };

/** Builds the OSTree backend with the driver the config and the bus call for. */
export async function openOstreeBackend(opts: OstreeOptions, log: Log, probe: (busAddress?: string) => Promise<RpmOstreeProbe> = probeRpmOstree): Promise<UpdateBackend & { driver: OstreeDriver }> {
  const choice = chooseDriver(opts.driver, opts.driver === 'auto' ? await probe(opts.busAddress) : null);
  log.info({ driver: choice.driver, why: choice.why }, 'OSTree driver chosen');
  return choice.driver === 'rpm-ostree' ? new RpmOstreeBackend(opts, log) : new OstreeBackend(opts, log);
}
