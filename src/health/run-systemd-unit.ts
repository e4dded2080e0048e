// One attempt of a `systemd-unit` check: asks systemd's manager over D-Bus, the way `systemctl
// is-active` does. Two plain method calls, no introspection:
//   org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager.GetUnit(s) -> o
//   org.freedesktop.systemd1 <o> org.freedesktop.DBus.Properties.Get("org.freedesktop.systemd1.Unit", "ActiveState") -> v
// GetUnit only knows loaded units: a unit nobody pulled in fails with org.freedesktop.systemd1.NoSuchUnit,
// which for a health check is the right answer (it is not running). Both calls are allowed to any
// local user by systemd's stock bus policy, so the unprivileged agent needs no extra policy.
import dbus from 'dbus-next';
import { connect, connectionLost, dbusErrorText, type MessageBus } from '../dbus/connection.js';
import { startDeadline } from './deadline.js';
import { failed, type AttemptOutcome } from './outcome.js';
import type { SystemdUnitCheckSpec } from './schema.js';

const SYSTEMD = 'org.freedesktop.systemd1';
const UNIT_IFACE = 'org.freedesktop.systemd1.Unit';

export async function runSystemdUnitAttempt(spec: SystemdUnitCheckSpec, signal?: AbortSignal): Promise<AttemptOutcome> {
  const deadline = startDeadline(spec.timeoutMs, signal);
  if (deadline.signal.aborted) {
    deadline.dispose();
    return failed(deadline.reason());
  }
  let bus: MessageBus | null = null;
  const aborted = new Promise<never>((_, reject) => {
    deadline.signal.addEventListener('abort', () => reject(new Error(deadline.reason())), { once: true });
  });
  aborted.catch(() => undefined);
  try {
    bus = connect(spec.busAddress);
    const b = bus;
    const work = async (): Promise<AttemptOutcome> => {
      const unitPath = await call(b, '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager', 'GetUnit', 's', [spec.unit]);
      if (typeof unitPath !== 'string') return failed(`GetUnit(${spec.unit}) returned no object path`);
      const active = await property(b, unitPath, 'ActiveState');
      const where = `${spec.unit}: ActiveState=${active}`;
      if (active === 'active') return { passed: true, outputTail: where };
      // SubState says more ("failed", "auto-restart", "dead"); best effort, the verdict is ActiveState.
      const sub = await property(b, unitPath, 'SubState').catch(() => undefined);
      const detail = sub === undefined ? where : `${where} SubState=${sub}`;
      return failed(`unit ${spec.unit} is ${active}, expected active`, detail);
    };
    return await Promise.race([work(), connectionLost(b), aborted]);
  } catch (e) {
    if (deadline.signal.aborted) return failed(deadline.reason());
    const text = dbusErrorText(e);
    // A socket-level failure says nothing about which bus; name it.
    return failed(text.startsWith('D-Bus connection') ? `${text} (bus ${spec.busAddress ?? `system bus, ${systemBusAddress()}`})` : text);
  } finally {
    deadline.dispose();
    bus?.disconnect();
  }
}

async function call(bus: MessageBus, path: string, iface: string, member: string, signature: string, body: unknown[]): Promise<unknown> {
  const reply = await bus.call(new dbus.Message({ destination: SYSTEMD, path, interface: iface, member, signature, body }));
  return reply?.body[0];
}

async function property(bus: MessageBus, unitPath: string, name: string): Promise<string> {
  const v = await call(bus, unitPath, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [UNIT_IFACE, name]);
  const value = v instanceof dbus.Variant ? (v.value as unknown) : v;
  if (typeof value !== 'string') throw new Error(`${name} of ${unitPath} is not a string`);
  return value;
}

function systemBusAddress(): string {
  return process.env.DBUS_SYSTEM_BUS_ADDRESS ?? 'unix:path=/var/run/dbus/system_bus_socket';
}
