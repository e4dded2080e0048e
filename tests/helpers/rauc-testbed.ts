// A real RAUC for tests, no hardware: `rauc service` (Debian's rauc 1.8) on a private
// dbus-daemon, with two file-backed rootfs slots (slot-a.img / slot-b.img), a file-backed custom
// bootloader backend, and a simulated bootloader that picks the slot at every simulated power cycle
// and tells RAUC about it with --override-boot-slot. Recipe: docs in the project's research notes
// (rauc-testbed.md). Daemons are children of the test process and are ended by PID; a missing
// binary is a test failure naming the Debian package, never a skip.
//
// Layout of `dir`:
//   pki/                make-test-pki.sh output (ca.pem is the keyring; untrusted-* is not trusted)
//   slot-a.img slot-b.img   32 MiB slot "devices"; A starts with an ext4 holding /health "ok" and
//                           /etc/os-release VERSION_ID=1.0.0
//   system.conf dbus.conf bus.sock data/ mnt/ tmp/ bundles/
//   boot/backend.sh     custom bootloader backend: boot/primary, boot/state.A, boot/state.B,
//                       every call appended to boot/calls.log
//   boot/booted         the slot the simulated bootloader booted last (read by health-check.sh)
//   boot-id             plays /proc/sys/kernel/random/boot_id
//   health-check.sh     exit 0 iff /health in the booted slot's image contains "ok"
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CHILD_PATH, findBinary, runTool, shq, socketAccepts } from './processes.js';
import dbus, { type MessageBus } from 'dbus-next';


export type SlotName = 'A' | 'B';

export interface BundleOptions {
  /** Manifest compatible; default: the testbed's (a different one makes a wrong-compatible bundle). */
  compatible?: string;
  /** Files in the rootfs image (relative path -> content); merged over the default { health: 'ok' }. */
  files?: Record<string, string>;
  /** 'untrusted' signs with a CA that is not in the device's keyring. Default 'trusted'. */
  signer?: 'trusted' | 'untrusted';
  /** Size of the ext4 image in MiB (default 8; the slots are 32 MiB). */
  sizeMiB?: number;
}

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MAKE_TEST_PKI = join(REPO_ROOT, 'rauc', 'scripts', 'make-test-pki.sh');
export const BUILD_BUNDLE = join(REPO_ROOT, 'rauc', 'scripts', 'build-bundle.sh');

const APT_HINT = 'apt-get install -y rauc rauc-service squashfs-tools dbus openssl e2fsprogs';
const PACKAGE_OF: Record<string, string> = {
  rauc: 'rauc',
  'dbus-daemon': 'dbus (dbus-daemon)',
  'mkfs.ext4': 'e2fsprogs',
  debugfs: 'e2fsprogs',
  unsquashfs: 'squashfs-tools',
  mksquashfs: 'squashfs-tools',
  openssl: 'openssl',
  truncate: 'coreutils',
  umount: 'mount',
};
/** Absolute path of a required binary, or an Error naming the Debian package to install. */
export function requireBinary(name: string): string {
  return findBinary(name, 'the RAUC testbed', PACKAGE_OF[name] ?? name, APT_HINT);
}

// Every daemon a testbed starts, so that a crashing test run still kills them on exit.
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(p: ChildProcess): void {
  liveChildren.add(p);
  p.once('exit', () => liveChildren.delete(p));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of liveChildren) {
        try {
          c.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
}

function alive(p: ChildProcess | null): boolean {
  return p !== null && p.exitCode === null && p.signalCode === null;
}

/** Sends `signal`, waits for the exit; escalates to SIGKILL after `graceMs`. */
async function endProcess(p: ChildProcess | null, signal: NodeJS.Signals, graceMs = 5_000): Promise<void> {
  if (!p || !alive(p)) return;
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill(signal);
  const timer = sleep(graceMs).then(() => 'timeout' as const);
  if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'timeout') {
    p.kill('SIGKILL');
    await exited;
  }
}


const BUS_NAME = 'de.pengutronix.rauc';

export class RaucTestbed {
  readonly busAddress: string;
  readonly bootIdFile: string;
  readonly healthScript: string;
  private readonly busSocket: string;
  private readonly bin: { rauc: string; dbusDaemon: string; unsquashfs: string };
  private bus: ChildProcess | null = null;
  private rauc: ChildProcess | null = null;
  private booted: SlotName = 'A';
  private raucLog = '';
  private busLog = '';
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly compatible: string,
  ) {
    this.busSocket = join(dir, 'bus.sock');
    this.busAddress = `unix:path=${this.busSocket}`;
    this.bootIdFile = join(dir, 'boot-id');
    this.healthScript = join(dir, 'health-check.sh');
    this.bin = { rauc: requireBinary('rauc'), dbusDaemon: requireBinary('dbus-daemon'), unsquashfs: requireBinary('unsquashfs') };
  }

  /** Builds the whole testbed and starts dbus-daemon and `rauc service` booted on slot A. */
  static async create(opts: { compatible?: string } = {}): Promise<RaucTestbed> {
    // Fail loudly up front, before anything is started.
    for (const b of ['rauc', 'dbus-daemon', 'mkfs.ext4', 'debugfs', 'unsquashfs', 'mksquashfs', 'openssl', 'truncate']) requireBinary(b);
    const dir = mkdtempSync(join(tmpdir(), 'ota-rauc-'));
    const tb = new RaucTestbed(dir, opts.compatible ?? 'acme-gw');
    try {
      await tb.setUp();
      return tb;
    } catch (e) {
      await tb.close().catch(() => undefined);
      throw e;
    }
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, PATH: CHILD_PATH, DBUS_SYSTEM_BUS_ADDRESS: this.busAddress, TMPDIR: join(this.dir, 'tmp'), LC_ALL: 'C' };
  }

  private async setUp(): Promise<void> {
    const d = this.dir;
    for (const sub of ['pki', 'data', 'mnt', 'tmp', 'boot', 'bundles', 'seed/etc']) mkdirSync(join(d, sub), { recursive: true });
    const env = this.env();
    await runTool(MAKE_TEST_PKI, [join(d, 'pki')], env);

    // Slots: 32 MiB files; A holds the factory image (1.0.0, healthy), B is empty.
    const slotA = join(d, 'slot-a.img');
    const slotB = join(d, 'slot-b.img');
    await runTool(requireBinary('truncate'), ['-s', '32M', slotA, slotB], env);
    writeFileSync(join(d, 'seed', 'health'), 'ok');
    writeFileSync(join(d, 'seed', 'etc', 'os-release'), 'NAME="ota-agent test image"\nID=ota-test\nVERSION_ID=1.0.0\nVERSION="1.0.0"\n');
    await runTool(requireBinary('mkfs.ext4'), ['-q', '-F', '-L', 'rootfs', '-E', 'root_owner=0:0', '-d', join(d, 'seed'), slotA], env);

    writeFileSync(
      join(d, 'system.conf'),
      [
        '[system]',
        `compatible=${this.compatible}`,
        'bootloader=custom',
        `mountprefix=${join(d, 'mnt')}`,
        `data-directory=${join(d, 'data')}`,
        '# plain only is installable here (verity needs device-mapper); listed like on a device',
        'bundle-formats=plain verity',
        'max-bundle-download-size=134217728',
        '',
        '[handlers]',
        `bootloader-custom-backend=${join(d, 'boot', 'backend.sh')}`,
        '',
        '[keyring]',
        `path=${join(d, 'pki', 'ca.pem')}`,
        '',
        '[slot.rootfs.0]',
        `device=${slotA}`,
        'type=ext4',
        'bootname=A',
        '',
        '[slot.rootfs.1]',
        `device=${slotB}`,
        'type=ext4',
        'bootname=B',
        '',
      ].join('\n'),
    );

    // The bootloader's persistent state: like a fresh U-Boot env (BOOT_ORDER="A B", both LEFT=3).
    const boot = join(d, 'boot');
    writeFileSync(join(boot, 'primary'), 'A\n');
    writeFileSync(join(boot, 'state.A'), 'good\n');
    writeFileSync(join(boot, 'state.B'), 'good\n');
    writeFileSync(join(boot, 'booted'), 'A\n');
    writeFileSync(join(boot, 'calls.log'), '');
    const backend = join(boot, 'backend.sh');
    writeFileSync(
      backend,
      `#!/bin/sh
# RAUC custom bootloader backend for tests, backed by files (written by tests/helpers/rauc-testbed.ts).
# Called as: get-primary | set-primary <bootname> | get-state <bootname> | set-state <bootname> good|bad
set -eu
B=${shq(boot)}
printf '%s\\n' "$*" >>"$B/calls.log"
put() { printf '%s\\n' "$2" >"$B/$1.tmp" && mv -f "$B/$1.tmp" "$B/$1"; }
slot() { case "\${1:-}" in A|B) ;; *) echo "backend: unknown bootname '\${1:-}'" >&2; exit 1 ;; esac; }
case "\${1:-}" in
  get-primary) cat "$B/primary" ;;
  # RAUC marks the target bad before writing it and afterwards only calls set-primary, so a new
  # primary is also a good slot (what U-Boot's BOOT_x_LEFT=3 / GRUB's x_OK=1 mean).
  set-primary) slot "\${2:-}"; put primary "$2"; put "state.$2" good ;;
  get-state) slot "\${2:-}"; cat "$B/state.$2" ;;
  set-state)
    slot "\${2:-}"
    case "\${3:-}" in good|bad) put "state.$2" "$3" ;; *) echo "backend: bad state '\${3:-}'" >&2; exit 1 ;; esac ;;
  *) echo "backend: unsupported call: $*" >&2; exit 1 ;;
esac
`,
    );
    chmodSync(backend, 0o755);

    writeFileSync(
      this.healthScript,
      `#!/bin/sh
# Test health check (written by tests/helpers/rauc-testbed.ts): exit 0 iff /health in the image of
# the slot the simulated bootloader booted contains "ok". Reads the ext4 with debugfs, no mounting.
D=${shq(d)}
booted=$(cat "$D/boot/booted")
case "$booted" in
  A) img="$D/slot-a.img" ;;
  B) img="$D/slot-b.img" ;;
  *) echo "health: unknown booted slot '$booted'" >&2; exit 2 ;;
esac
content=$(${shq(requireBinary('debugfs'))} -R 'cat /health' "$img" 2>/dev/null) || content=''
printf 'slot %s /health: %s\\n' "$booted" "\${content:-<missing>}"
case "$content" in
  *ok*) exit 0 ;;
  *) exit 1 ;;
esac
`,
    );
    chmodSync(this.healthScript, 0o755);
    this.writeBootId();

    writeFileSync(
      join(d, 'dbus.conf'),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${this.busSocket}</listen>
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
    await this.startBus();
    await this.startRauc('A');
  }

  private writeBootId(): void {
    writeFileSync(this.bootIdFile, `${randomUUID()}\n`);
  }

  // ---- bus -------------------------------------------------------------------------------------

  private async startBus(): Promise<void> {
    if (alive(this.bus)) return;
    if (existsSync(this.busSocket)) unlinkSync(this.busSocket); // left behind by a SIGKILLed daemon
    const p = spawn(this.bin.dbusDaemon, [`--config-file=${join(this.dir, 'dbus.conf')}`, '--nofork', '--nopidfile', '--nosyslog'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.env(),
    });
    track(p);
    this.bus = p;
    p.once('error', (e) => (this.busLog += `[testbed] spawning dbus-daemon failed: ${e.message}\n`));
    p.stdout?.on('data', (b: Buffer) => (this.busLog += b.toString()));
    p.stderr?.on('data', (b: Buffer) => (this.busLog += b.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (!alive(p) || p.pid === undefined) throw new Error(`dbus-daemon exited (${String(p.exitCode ?? p.signalCode)}): ${this.busLog}`);
      if (await socketAccepts(this.busSocket)) return;
      await sleep(20);
    }
    throw new Error(`dbus-daemon did not listen on ${this.busSocket} within 10 s: ${this.busLog}`);
  }

  private async stopBus(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await endProcess(this.bus, signal);
    this.bus = null;
  }

  /** Kills dbus-daemon (SIGKILL, like a crash) and starts a new one on the same socket; rauc dies
   *  with its bus and is restarted on the current booted slot. Every client connection (dbus-next
   *  buses, the systemd stand-in) is gone afterwards and must reconnect. */
  async restartBus(): Promise<void> {
    const rauc = this.rauc;
    const raucExited = rauc && alive(rauc) ? new Promise<void>((r) => rauc.once('exit', () => r())) : Promise.resolve();
    await this.stopBus('SIGKILL');
    // rauc quits by itself on "Lost connection to the system bus"; don't wait forever for it.
    const quit = await Promise.race([raucExited.then(() => true), sleep(5_000).then(() => false)]);
    if (!quit) {
      this.raucLog += '\n[testbed] rauc did not exit after its bus died; SIGKILL\n';
      await endProcess(this.rauc, 'SIGKILL');
    }
    this.rauc = null;
    await this.startBus();
    await this.startRauc(this.booted);
  }

  // ---- rauc ------------------------------------------------------------------------------------

  /** Starts `rauc service --override-boot-slot=<bootSlot>`; resolves once rauc owns its bus name. */
  async startRauc(bootSlot: SlotName): Promise<void> {
    if (this.closed) throw new Error('testbed is closed');
    if (this.rauc && alive(this.rauc)) throw new Error(`rauc is already running (pid ${String(this.rauc.pid)}); stopRauc() or simulateBoot() first`);
    if (!alive(this.bus)) throw new Error('the private dbus-daemon is not running');
    await this.releaseStaleMounts();
    this.booted = bootSlot;
    writeFileSync(join(this.dir, 'boot', 'booted'), `${bootSlot}\n`);
    const logStart = this.raucLog.length;
    this.raucLog += `\n[testbed] ${new Date().toISOString()} starting rauc service booted on ${bootSlot}\n`;
    const p = spawn(this.bin.rauc, [`--conf=${join(this.dir, 'system.conf')}`, `--mount=${join(this.dir, 'mnt')}`, 'service', `--override-boot-slot=${bootSlot}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.env(),
      cwd: this.dir,
    });
    track(p);
    this.rauc = p;
    p.stdout?.on('data', (b: Buffer) => (this.raucLog += b.toString()));
    p.stderr?.on('data', (b: Buffer) => (this.raucLog += b.toString()));
    p.once('exit', (code, sig) => (this.raucLog += `[testbed] rauc (pid ${String(p.pid)}) exited: ${String(code ?? sig)}\n`));
    const spawnError = new Promise<Error>((resolve) => p.once('error', resolve));

    // Ready = the bus name is owned by THIS process (a dying previous instance may still hold it).
    const client = dbus.sessionBus({ busAddress: this.busAddress });
    client.on('error', () => undefined);
    try {
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        if (!alive(p) || p.pid === undefined) {
          // Let the pipes drain so that the error carries rauc's last words.
          await Promise.race([new Promise((r) => p.once('close', r)), sleep(1_000)]);
          const err = await Promise.race([spawnError, sleep(0).then(() => null)]);
          throw new Error(`rauc service exited before it was ready (${String(p.exitCode ?? p.signalCode)})${err ? `: ${err.message}` : ''}; output:\n${this.raucLog.slice(logStart)}`);
        }
        if ((await ownerPid(client, BUS_NAME)) === p.pid) return;
        await sleep(20);
      }
      throw new Error(`rauc service did not own ${BUS_NAME} within 15 s; output:\n${this.raucLog.slice(logStart)}`);
    } finally {
      client.disconnect();
    }
  }

  /** SIGTERM (rauc quits its main loop), wait for the exit; SIGKILL after 5 s. */
  async stopRauc(): Promise<void> {
    await endProcess(this.rauc, 'SIGTERM');
    this.rauc = null;
  }

  /** SIGKILL, wait for the exit: a crash, e.g. in the middle of an install. */
  async killRauc(): Promise<void> {
    await endProcess(this.rauc, 'SIGKILL');
    this.rauc = null;
  }

  /** rauc mounts a plain bundle (loop device) under mountprefix; a killed rauc leaves it mounted. */
  private async releaseStaleMounts(): Promise<void> {
    const prefix = join(this.dir, 'mnt') + '/';
    let mountinfo: string;
    try {
      mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
    } catch {
      return;
    }
    const points = mountinfo
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => !!m)
      .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
      .filter((m) => m.startsWith(prefix))
      .sort((a, b) => b.length - a.length);
    for (const m of points) {
      this.raucLog += `[testbed] unmounting stale ${m}\n`;
      await runTool(requireBinary('umount'), ['-l', m], this.env()).catch((e: Error) => (this.raucLog += `[testbed] ${e.message}\n`));
    }
  }

  /** The simulated power cycle: stop rauc, pick the slot like a bootloader (the primary if its
   *  state is good, else the other one), write a fresh boot id, start rauc booted on that slot. */
  async simulateBoot(): Promise<SlotName> {
    await this.stopRauc();
    const primary = this.primary();
    const chosen: SlotName = this.slotState(primary) === 'good' ? primary : other(primary);
    this.writeBootId();
    if (!alive(this.bus)) await this.startBus();
    await this.startRauc(chosen);
    return chosen;
  }

  // ---- state -----------------------------------------------------------------------------------

  bootedSlot(): SlotName {
    return this.booted;
  }

  /** The bootloader's primary slot (custom backend's file). */
  primary(): SlotName {
    return asSlot(readFileSync(join(this.dir, 'boot', 'primary'), 'utf8').trim(), 'boot/primary');
  }

  slotState(slot: SlotName): 'good' | 'bad' {
    const s = readFileSync(join(this.dir, 'boot', `state.${slot}`), 'utf8').trim();
    if (s !== 'good' && s !== 'bad') throw new Error(`boot/state.${slot} holds '${s}'`);
    return s;
  }

  /** Arguments of every backend call so far (`set-state B bad`, `set-primary B`, ...). */
  bootloaderCalls(): string[] {
    return readFileSync(join(this.dir, 'boot', 'calls.log'), 'utf8').split('\n').filter(Boolean);
  }

  slotPath(slot: SlotName): string {
    return join(this.dir, slot === 'A' ? 'slot-a.img' : 'slot-b.img');
  }

  /** sha256 (hex) of the first `bytes` bytes of a slot file; the whole 32 MiB file without `bytes`. */
  slotSha256(slot: SlotName, bytes?: number): string {
    const data = readFileSync(this.slotPath(slot));
    return createHash('sha256')
      .update(bytes === undefined ? data : data.subarray(0, bytes))
      .digest('hex');
  }

  private rootfsImage(bundlePath: string): Buffer {
    try {
      return execFileSync(this.bin.unsquashfs, ['-cat', bundlePath, 'rootfs.ext4'], { maxBuffer: 1024 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as Error & { stderr?: Buffer };
      throw new Error(`unsquashfs -cat ${bundlePath} rootfs.ext4 failed: ${err.stderr?.toString() || err.message}`, { cause: e });
    }
  }

  /** sha256 (hex) of rootfs.ext4 inside a plain bundle (what RAUC writes to the slot). */
  imageSha256(bundlePath: string): string {
    return createHash('sha256').update(this.rootfsImage(bundlePath)).digest('hex');
  }

  /** Byte length of rootfs.ext4 inside a plain bundle. */
  imageSize(bundlePath: string): number {
    return this.rootfsImage(bundlePath).length;
  }

  /** Builds a signed plain bundle with rauc/scripts/build-bundle.sh; returns its absolute path. */
  async buildBundle(version: string, opts: BundleOptions = {}): Promise<string> {
    const compatible = opts.compatible ?? this.compatible;
    const untrusted = opts.signer === 'untrusted';
    const pki = join(this.dir, 'pki');
    const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');
    const out = join(this.dir, 'bundles', `${safe(compatible)}-${safe(version)}-${randomBytes(3).toString('hex')}.raucb`);
    const args = [
      '--out', out,
      '--compatible', compatible,
      '--version', version,
      '--cert', join(pki, untrusted ? 'untrusted-signer.pem' : 'signer.pem'),
      '--key', join(pki, untrusted ? 'untrusted-signer.key' : 'signer.key'),
      '--keyring', join(pki, untrusted ? 'untrusted-ca.pem' : 'ca.pem'),
    ];
    for (const [name, content] of Object.entries({ health: 'ok', ...opts.files })) args.push('--file', `${name}=${content}`);
    if (opts.sizeMiB !== undefined) args.push('--size-mib', String(opts.sizeMiB));
    const printed = (await runTool(BUILD_BUNDLE, args, this.env())).trim().split('\n').pop() ?? '';
    if (printed !== out) throw new Error(`build-bundle.sh printed '${printed}', expected '${out}'`);
    return out;
  }

  /** Everything rauc wrote (stdout and stderr, all runs, with a [testbed] line per start/exit). */
  raucStderr(): string {
    return this.raucLog;
  }

  /** PIDs of the daemons currently running (for leak checks). */
  pids(): { rauc: number | null; dbusDaemon: number | null } {
    return { rauc: this.rauc && alive(this.rauc) ? (this.rauc.pid ?? null) : null, dbusDaemon: this.bus && alive(this.bus) ? (this.bus.pid ?? null) : null };
  }

  /** Stops rauc and dbus-daemon (SIGKILL if they linger) and removes the directory
   *  (kept when OTA_KEEP_TESTBED=1, for post-mortems). */
  async close(): Promise<void> {
    this.closed = true;
    await this.stopRauc();
    await this.stopBus();
    await this.releaseStaleMounts();
    if (process.env.OTA_KEEP_TESTBED === '1') {
      writeFileSync(join(this.dir, 'rauc-output.log'), this.raucLog);
      writeFileSync(join(this.dir, 'dbus-daemon-output.log'), this.busLog);
      return;
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // best effort (e.g. a mount that would not go away)
    }
  }
}

function other(s: SlotName): SlotName {
  return s === 'A' ? 'B' : 'A';
}

function asSlot(s: string, what: string): SlotName {
  if (s !== 'A' && s !== 'B') throw new Error(`${what} holds '${s}', expected A or B`);
  return s;
}

/** PID of the connection owning `name`, or null if nobody owns it. */
async function ownerPid(bus: MessageBus, name: string): Promise<number | null> {
  const call = (member: string, arg: string) =>
    bus.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member, signature: 's', body: [arg] }));
  try {
    const owner = await call('GetNameOwner', name);
    const unique = owner?.body[0] as string | undefined;
    if (!unique) return null;
    const pid = await call('GetConnectionUnixProcessID', unique);
    return (pid?.body[0] as number | undefined) ?? null;
  } catch {
    return null; // org.freedesktop.DBus.Error.NameHasNoOwner, or the owner just left
  }
}
