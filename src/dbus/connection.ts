// D-Bus connections for the adapters. One short-lived connection per operation: a restarted bus
// daemon or service then costs one failed call, never a stale proxy the agent cannot recover from.
import { createRequire } from 'node:module';
import type dbus from 'dbus-next';
export { withTimeout } from '../util/timeout.js';

// dbus-next is loaded on the first D-Bus call, not at import: an agent whose backend and health
// checks never touch D-Bus (the simulated backend, HTTP or command checks) then never pays for it
// in idle memory (dbus-next with its XML parser and Long/JSBI is about 4 MiB of heap and code).
let loaded: typeof dbus | undefined;
function dbusNext(): typeof dbus {
  loaded ??= createRequire(import.meta.url)('dbus-next') as typeof dbus;
  return loaded;
}

export type MessageBus = dbus.MessageBus;

/** `busAddress` (e.g. unix:path=/run/dbus/system_bus_socket) or the system bus, which honours DBUS_SYSTEM_BUS_ADDRESS. */
export function connect(busAddress?: string): MessageBus {
  const d = dbusNext();
  const bus = busAddress ? d.sessionBus({ busAddress }) : d.systemBus();
  // Errors surface through the calls that fail; an unhandled 'error' event would crash the agent.
  bus.on('error', () => undefined);
  return bus;
}

/**
 * Rejects when the connection to the bus ends or fails. dbus-next leaves calls in flight pending
 * forever when the bus daemon goes away; racing them against this turns that into an error at once.
 */
export function connectionLost(bus: MessageBus): Promise<never> {
  const p = new Promise<never>((_, reject) => {
    bus.on('error', (e: unknown) => reject(new Error(`D-Bus connection failed: ${dbusErrorText(e)}`)));
    // Not part of dbus-next's typed API, but stable in 0.10.x: the stream's end is only seen here.
    const conn = (bus as unknown as { _connection?: { on(ev: 'end', f: () => void): void } })._connection;
    conn?.on('end', () => reject(new Error('D-Bus connection closed (the bus daemon went away)')));
  });
  p.catch(() => undefined);
  return p;
}

export async function withBus<T>(busAddress: string | undefined, fn: (bus: MessageBus) => Promise<T>): Promise<T> {
  const bus = connect(busAddress);
  try {
    return await Promise.race([fn(bus), connectionLost(bus)]);
  } finally {
    bus.disconnect();
  }
}

/** A readable message for a D-Bus error: its name and text, or the socket error. */
export function dbusErrorText(e: unknown): string {
  if (e && typeof e === 'object' && 'type' in e && 'text' in e) {
    const d = e as { type: string; text: string };
    return `${d.text} (${d.type})`;
  }
  return e instanceof Error ? e.message : String(e);
}

export function unwrapVariants(dict: Record<string, unknown>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(dict)) {
    const value = v instanceof dbusNext().Variant ? (v.value as unknown) : v;
    out[k] = typeof value === 'bigint' ? Number(value) : (value as string | number | boolean);
  }
  return out;
}
