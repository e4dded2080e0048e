// Proves the RAUC testbed itself against the real `rauc service` (not the agent's test): slots,
// installs over D-Bus, the simulated bootloader, health script, signature rejection, the systemd
// stand-in, and a bus restart. Needs the Debian packages rauc, dbus, squashfs-tools, e2fsprogs,
// openssl; a missing one fails the test.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import dbus, { type ClientInterface, type MessageBus } from 'dbus-next';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RaucTestbed } from '../helpers/rauc-testbed.js';
import { SystemdStandin, type RebootVia } from '../helpers/systemd-standin.js';

const execFileP = promisify(execFile);
const IFACE = 'de.pengutronix.rauc.Installer';

type SlotStatus = Array<[string, Record<string, dbus.Variant>]>;

/** Typed view of de.pengutronix.rauc.Installer as dbus-next proxies it. */
interface Installer extends ClientInterface {
  InstallBundle(source: string, args: Record<string, dbus.Variant>): Promise<void>;
  Info(bundle: string): Promise<[string, string]>;
  Mark(state: string, slot: string): Promise<[string, string]>;
  GetSlotStatus(): Promise<SlotStatus>;
  GetPrimary(): Promise<string>;
}
interface Properties extends ClientInterface {
  Get(iface: string, name: string): Promise<dbus.Variant>;
}
interface Login1Manager extends ClientInterface {
  Reboot(interactive: boolean): Promise<void>;
}
interface Systemd1Manager extends ClientInterface {
  StartUnit(name: string, mode: string): Promise<string>;
}

interface Rauc {
  bus: MessageBus;
  installer: Installer;
  props: Properties;
}

async function connectRauc(busAddress: string): Promise<Rauc> {
  const bus = dbus.sessionBus({ busAddress });
  bus.on('error', () => undefined); // the bus goes away in restartBus()
  const obj = await bus.getProxyObject('de.pengutronix.rauc', '/');
  return { bus, installer: obj.getInterface<Installer>(IFACE), props: obj.getInterface<Properties>('org.freedesktop.DBus.Properties') };
}

async function prop(r: Rauc, name: string): Promise<unknown> {
  return (await r.props.Get(IFACE, name)).value;
}

/** InstallBundle over D-Bus; resolves with Completed's result code (listener set before the call). */
async function install(r: Rauc, bundle: string, timeoutMs = 30_000): Promise<number> {
  let onCompleted: ((code: number) => void) | undefined;
  const completed = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no Completed within ${timeoutMs} ms`)), timeoutMs);
    onCompleted = (code: number) => {
      clearTimeout(timer);
      resolve(code);
    };
    r.installer.on('Completed', onCompleted);
  });
  try {
    await r.installer.InstallBundle(bundle, {});
    return await completed;
  } finally {
    if (onCompleted) r.installer.removeListener('Completed', onCompleted);
  }
}

async function waitIdle(r: Rauc): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await prop(r, 'Operation')) !== 'idle') {
    if (Date.now() > deadline) throw new Error('rauc did not return to idle');
    await new Promise((res) => setTimeout(res, 20));
  }
}

async function health(tb: RaucTestbed): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout } = await execFileP(tb.healthScript, []);
    return { ok: true, out: stdout };
  } catch (e) {
    return { ok: false, out: String((e as { stdout?: string }).stdout) };
  }
}

const timings: Record<string, number> = {};
async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timings[label] = Math.round(performance.now() - t0);
  }
}

describe('RAUC testbed (real rauc service on a private bus)', { timeout: 60_000 }, () => {
  let tb: RaucTestbed;
  let r: Rauc;
  const pids: number[] = [];

  beforeAll(async () => {
    tb = await timed('create', () => RaucTestbed.create());
    r = await connectRauc(tb.busAddress);
  }, 60_000);

  afterAll(async () => {
    r?.bus.disconnect();
    await tb?.close();
    console.log(`[rauc-testbed timings ms] ${JSON.stringify(timings)}`);
    // Nothing the testbed started may survive close().
    for (const pid of pids) expect(() => process.kill(pid, 0), `pid ${pid} still alive`).toThrow();
  }, 60_000);

  const reconnect = async () => {
    r.bus.disconnect();
    r = await connectRauc(tb.busAddress);
  };
  const rememberPids = () => {
    const p = tb.pids();
    for (const pid of [p.rauc, p.dbusDaemon]) if (pid !== null && !pids.includes(pid)) pids.push(pid);
  };

  it('starts with two slots, booted from A, A primary and good', async () => {
    rememberPids();
    const slots = await r.installer.GetSlotStatus();
    expect(slots.map(([name]) => name).sort()).toEqual(['rootfs.0', 'rootfs.1']);
    const byName = Object.fromEntries(slots.map(([name, s]) => [name, Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.value]))]));
    expect(byName['rootfs.0']).toMatchObject({ bootname: 'A', state: 'booted', 'boot-status': 'good', device: tb.slotPath('A') });
    expect(byName['rootfs.1']).toMatchObject({ bootname: 'B', state: 'inactive' });
    expect(await prop(r, 'BootSlot')).toBe('A');
    expect(await prop(r, 'Compatible')).toBe(tb.compatible);
    expect(await r.installer.GetPrimary()).toBe('rootfs.0');
    expect(tb.bootedSlot()).toBe('A');
    expect(tb.primary()).toBe('A');
    expect(tb.slotState('A')).toBe('good');
    expect((await health(tb)).ok).toBe(true);
    expect(readFileSync(tb.bootIdFile, 'utf8').trim()).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('installs a bundle into B over D-Bus, and the simulated boot lands on B', async () => {
    const bundle = await timed('buildBundle', () => tb.buildBundle('1.1.0'));
    expect(await r.installer.Info(bundle)).toEqual([tb.compatible, '1.1.0']);
    const code = await timed('install', () => install(r, bundle));
    expect(code, `LastError: ${String(await prop(r, 'LastError'))}\n${tb.raucStderr()}`).toBe(0);
    await waitIdle(r);

    const size = tb.imageSize(bundle);
    expect(size).toBe(8 * 1024 * 1024);
    expect(tb.slotSha256('B', size)).toBe(tb.imageSha256(bundle));
    expect(tb.primary()).toBe('B');
    expect(tb.slotState('B')).toBe('good');
    expect(tb.bootloaderCalls()).toEqual(expect.arrayContaining(['set-state B bad', 'set-primary B']));

    const bootIdBefore = readFileSync(tb.bootIdFile, 'utf8');
    const slot = await timed('simulateBoot', () => tb.simulateBoot());
    rememberPids();
    expect(slot).toBe('B');
    expect(tb.bootedSlot()).toBe('B');
    expect(readFileSync(tb.bootIdFile, 'utf8')).not.toBe(bootIdBefore);

    await reconnect();
    expect(await prop(r, 'BootSlot')).toBe('B');
    const slots = await r.installer.GetSlotStatus();
    const b = slots.find(([name]) => name === 'rootfs.1')?.[1];
    expect(b?.state?.value).toBe('booted');
    expect(b?.['bundle.version']?.value).toBe('1.1.0');
    const h = await health(tb);
    expect(h.ok, h.out).toBe(true);
    expect(h.out).toContain('ok');
    expect(await r.installer.Mark('good', 'booted')).toEqual(['rootfs.1', expect.any(String)]);
  });

  it('health script fails on an unhealthy image; Mark bad booted makes the bootloader fall back', async () => {
    const bundle = await tb.buildBundle('1.2.0', { files: { health: 'bad' } });
    expect(await install(r, bundle)).toBe(0);
    await waitIdle(r);
    expect(tb.primary()).toBe('A');
    expect(await tb.simulateBoot()).toBe('A');
    rememberPids();
    const h = await health(tb);
    expect(h.ok).toBe(false);
    expect(h.out).toContain('bad');

    await reconnect();
    expect(await r.installer.Mark('bad', 'booted')).toEqual(['rootfs.0', expect.any(String)]);
    expect(tb.slotState('A')).toBe('bad');
    expect(tb.primary()).toBe('A'); // RAUC only records the state; falling back is the bootloader's job
    expect(await tb.simulateBoot()).toBe('B');
    rememberPids();
    expect((await health(tb)).ok).toBe(true);
    await reconnect();
    expect(await prop(r, 'BootSlot')).toBe('B');
  });

  it('rejects a bundle signed by an untrusted CA with Completed(1)', async () => {
    const bundle = await tb.buildBundle('6.6.6', { signer: 'untrusted' });
    const slotA = tb.slotSha256('A');
    expect(await install(r, bundle)).toBe(1);
    expect(String(await prop(r, 'LastError'))).toContain('signature verification failed');
    await waitIdle(r);
    expect(tb.slotSha256('A')).toBe(slotA);
    expect(tb.primary()).toBe('A');
  });

  it('rejects a bundle for another compatible', async () => {
    const bundle = await tb.buildBundle('1.3.0', { compatible: 'other-board' });
    expect(await install(r, bundle)).toBe(1);
    expect(String(await prop(r, 'LastError'))).toContain('Compatible mismatch');
    await waitIdle(r);
  });

  it('systemd stand-in takes Reboot(false) from logind and StartUnit(reboot.target)', async () => {
    const seen: RebootVia[] = [];
    const standin = await SystemdStandin.start(tb.busAddress, (via) => {
      seen.push(via);
    });
    try {
      const login1 = (await r.bus.getProxyObject('org.freedesktop.login1', '/org/freedesktop/login1')).getInterface<Login1Manager>('org.freedesktop.login1.Manager');
      await login1.Reboot(false);
      expect(standin.calls).toEqual([{ via: 'logind', detail: { interactive: false }, at: expect.any(Number) }]);

      const systemd1 = (await r.bus.getProxyObject('org.freedesktop.systemd1', '/org/freedesktop/systemd1')).getInterface<Systemd1Manager>('org.freedesktop.systemd1.Manager');
      expect(await systemd1.StartUnit('reboot.target', 'replace-irreversibly')).toMatch(/^\/org\/freedesktop\/systemd1\/job\/\d+$/);
      await expect(systemd1.StartUnit('nginx.service', 'replace')).rejects.toMatchObject({ type: 'org.freedesktop.systemd1.NoSuchUnit' });
      expect(standin.calls.map((c) => c.via)).toEqual(['logind', 'systemd']);
      expect(standin.calls[1]?.detail).toEqual({ unit: 'reboot.target', mode: 'replace-irreversibly' });
      await new Promise((res) => setImmediate(res));
      expect(seen).toEqual(['logind', 'systemd']);
      expect(standin.callbackErrors).toEqual([]);
    } finally {
      standin.close();
    }
  });

  it('restartBus brings back the bus and rauc on the booted slot', async () => {
    const standin = await SystemdStandin.start(tb.busAddress);
    try {
      const before = tb.pids();
      await timed('restartBus', () => tb.restartBus());
      rememberPids();
      const after = tb.pids();
      expect(after.dbusDaemon).not.toBe(before.dbusDaemon);
      expect(after.rauc).not.toBe(before.rauc);
      expect(tb.raucStderr()).toContain('Lost connection to the system bus');

      await reconnect();
      expect(await prop(r, 'BootSlot')).toBe('B');
      expect((await r.installer.GetSlotStatus()).length).toBe(2);

      // The stand-in lost its bus too; reconnect() brings it back.
      await standin.reconnect();
      const login1 = (await r.bus.getProxyObject('org.freedesktop.login1', '/org/freedesktop/login1')).getInterface<Login1Manager>('org.freedesktop.login1.Manager');
      await login1.Reboot(true);
      expect(standin.calls).toEqual([{ via: 'logind', detail: { interactive: true }, at: expect.any(Number) }]);
    } finally {
      standin.close();
    }
  });

  it('survives rauc being SIGKILLed while it writes the slot', async () => {
    const bundle = await tb.buildBundle('1.4.0', { sizeMiB: 30 });
    const callsBefore = tb.bootloaderCalls().length;
    await r.installer.InstallBundle(bundle, {});
    // RAUC marks the target bad right before it starts writing: kill it then.
    const deadline = Date.now() + 10_000;
    while (!tb.bootloaderCalls().slice(callsBefore).includes('set-state A bad')) {
      if (Date.now() > deadline) throw new Error(`rauc never marked A bad:\n${tb.raucStderr()}`);
      await new Promise((res) => setTimeout(res, 2));
    }
    await tb.killRauc();
    // A is still primary from the 1.2.0 install, but bad: the bootloader skips it.
    expect(tb.slotState('A')).toBe('bad');
    expect(tb.primary()).toBe('A');
    expect(await tb.simulateBoot()).toBe('B'); // also unmounts the bundle the dead rauc left mounted
    rememberPids();
    await reconnect();
    expect(await prop(r, 'Operation')).toBe('idle');
    expect(await install(r, bundle)).toBe(0);
    expect(tb.slotSha256('A', 30 * 1024 * 1024)).toBe(tb.imageSha256(bundle));
    expect(tb.primary()).toBe('A');
  });
});
