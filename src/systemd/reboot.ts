// Reboots through systemd over D-Bus — logind's Reboot or starting reboot.target — never a raw
// reboot(2): units stop in order, filesystems are synced, inhibitors are honoured.
import type { EventEmitter } from 'node:events';
import { dbusErrorText, withBus, withTimeout } from '../dbus/connection.js';

export type RebootMethod = 'logind' | 'systemd';

interface LogindManager extends EventEmitter {
  Reboot(interactive: boolean): Promise<void>;
}
interface SystemdManager extends EventEmitter {
  StartUnit(name: string, mode: string): Promise<string>;
}

export async function requestReboot(method: RebootMethod, busAddress?: string): Promise<void> {
  try {
    await withBus(busAddress, async (bus) => {
      if (method === 'logind') {
        const obj = await withTimeout(bus.getProxyObject('org.freedesktop.login1', '/org/freedesktop/login1'), 10_000, 'logind');
        const mgr = obj.getInterface('org.freedesktop.login1.Manager') as unknown as LogindManager;
        await withTimeout(mgr.Reboot(false), 10_000, 'logind Reboot');
      } else {
        const obj = await withTimeout(bus.getProxyObject('org.freedesktop.systemd1', '/org/freedesktop/systemd1'), 10_000, 'systemd');
        const mgr = obj.getInterface('org.freedesktop.systemd1.Manager') as unknown as SystemdManager;
        await withTimeout(mgr.StartUnit('reboot.target', 'replace-irreversibly'), 10_000, 'StartUnit reboot.target');
      }
    });
  } catch (e) {
    throw new Error(`reboot via ${method === 'logind' ? 'logind' : 'systemd reboot.target'} failed: ${dbusErrorText(e)}`, { cause: e });
  }
}
