// A real OSTree for tests, no hardware (recipe: the project's research note ostree-testbed.md,
// verified with Debian 12's ostree 2022.7):
//   - a real sysroot in a temp dir (`ostree admin init-fs --modern`, `os-init`), factory commit
//     1.0.0 deployed from the remote "origin";
//   - a loopback HTTP server serving an archive repo of commits signed with a throwaway GPG key;
//   - a "boot" = choosing a deployment the way the bootloader would (the BLS entry with the highest
//     version, or the next one for a simulated fallback) and running every later ostree/python
//     call of the agent inside it: enter.sh (the agent's commandPrefix) makes a private mount+pid
//     namespace (unshare), bind-mounts the deployment as / (with /sysroot, /boot, /var, the host's
//     /usr for the tools, /run = this boot's run dir holding /run/ostree-booted) and chroots. So
//     libostree sees a booted system: `admin status` marks it, `deploy --stage` works, and the
//     staged deployment is finalised at the simulated shutdown (`ostree admin finalize-staged`,
//     what ostree-finalize-staged.service does);
//   - a private dbus-daemon for the systemd stand-in (tests/helpers/systemd-standin.ts).
// Everything runs as root (mount namespaces). A missing tool is a test failure naming the Debian
// package, never a skip.
//
// Layout of `dir`: sysroot/ srv/ (archive repo) trees/ gnupg/ trusted.asc untrusted.asc
//   enter.sh booted (deployment dir of this boot) run/ (this boot's /run) boot-id health-check.sh
//   dbus.conf bus.sock
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, normalize, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigInput } from '../../src/config/schema.js';
import type { AnnouncementInput } from '../../src/schemas/announcement.js';
import { SimulatedDevice } from '../../src/simulated/supervisor.js';
import { parseAdminStatus, type OstreeDeployment } from '../../src/ostree/status.js';
import type { SimLab } from './sim-lab.js';
import { SystemdStandin } from './systemd-standin.js';
import { RpmOstreeStandin } from './rpmostree-standin.js';
import { findBinary, runTool, shq, socketAccepts } from './processes.js';


const APT_HINT = 'apt-get install -y ostree gir1.2-ostree-1.0 python3-gi gnupg dbus util-linux e2fsprogs';
const PACKAGE_OF: Record<string, string> = {
  ostree: 'ostree',
  gpg: 'gnupg',
  gpgconf: 'gnupg',
  unshare: 'util-linux',
  chroot: 'coreutils',
  mount: 'mount',
  chattr: 'e2fsprogs',
  'dbus-daemon': 'dbus',
};
export const SYSTEM_PYTHON = '/usr/bin/python3';

export function requireBinary(name: string): string {
  return findBinary(name, 'the OSTree testbed', PACKAGE_OF[name] ?? name, APT_HINT);
}

/** Tools run with LC_ALL=C: the testbed parses their output. */
function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return runTool(file, args, { ...env, LC_ALL: 'C' });
}

export interface CommitOptions {
  /** Content of /usr/share/ota-test/health (the health check wants "ok"). */
  health?: string;
  /** trusted (the device's key), untrusted (another key), none (unsigned). */
  signer?: 'trusted' | 'untrusted' | 'none';
}

export class OstreeTestbed {
  readonly osname = 'testos';
  readonly ref = 'testos/stable';
  readonly sysroot: string;
  readonly bootIdFile: string;
  readonly healthScript: string;
  readonly enterScript: string;
  readonly trustedKeyFile: string;
  readonly busAddress: string;
  private readonly gnupg: string;
  private fpr: Record<'trusted' | 'untrusted', string> = { trusted: '', untrusted: '' };
  private http: Server | null = null;
  private port = 0;
  private bus: ChildProcess | null = null;
  private busLog = '';
  private trees = 0;
  /** Paths the HTTP server was asked for. */
  readonly requests: string[] = [];
  /** While set, every HTTP answer waits for it (holdRemote): a pull stays in flight for as long as a test needs. */
  private gate: Promise<void> | null = null;
  readonly commits = new Map<string, { version: string; health: string; signer: string }>();

  private constructor(readonly dir: string) {
    this.sysroot = join(dir, 'sysroot');
    this.bootIdFile = join(dir, 'boot-id');
    this.healthScript = join(dir, 'health-check.sh');
    this.enterScript = join(dir, 'enter.sh');
    this.trustedKeyFile = join(dir, 'trusted.asc');
    this.busAddress = `unix:path=${join(dir, 'bus.sock')}`;
    this.gnupg = join(dir, 'gnupg');
  }

  static async create(): Promise<OstreeTestbed> {
    for (const b of ['ostree', 'gpg', 'gpgconf', 'unshare', 'chroot', 'mount', 'chattr', 'dbus-daemon']) requireBinary(b);
    try {
      await run(SYSTEM_PYTHON, ['-c', "import gi; gi.require_version('OSTree', '1.0'); from gi.repository import OSTree"]);
    } catch (e) {
      throw new Error(`${SYSTEM_PYTHON} cannot load the OSTree typelib through python3-gi (needed for rollback): \`${APT_HINT}\`: ${(e as Error).message}`, { cause: e });
    }
    if (process.getuid?.() !== 0) throw new Error('the OSTree testbed needs root (mount namespaces for the simulated boots); CI runs as root');
    const tb = new OstreeTestbed(mkdtempSync(join(tmpdir(), 'ota-ostree-')));
    try {
      await tb.setUp();
      return tb;
    } catch (e) {
      await tb.close().catch(() => undefined);
      throw e;
    }
  }

  private gpgEnv(): NodeJS.ProcessEnv {
    return { ...process.env, GNUPGHOME: this.gnupg };
  }

  get remoteUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private async setUp(): Promise<void> {
    const d = this.dir;
    mkdirSync(this.gnupg, { mode: 0o700 });
    for (const which of ['trusted', 'untrusted'] as const) {
      await run('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', `ota ${which} <${which}@ota.test>`, 'ed25519', 'sign', 'never'], this.gpgEnv());
      const listing = await run('gpg', ['--batch', '--with-colons', '--list-keys', `${which}@ota.test`], this.gpgEnv());
      const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(listing)?.[1];
      if (!fpr) throw new Error(`no fingerprint for the ${which} test key:\n${listing}`);
      this.fpr[which] = fpr;
      writeFileSync(join(d, `${which}.asc`), await run('gpg', ['--batch', '--armor', '--export', fpr], this.gpgEnv()));
    }

    await run('ostree', [`--repo=${join(d, 'srv')}`, 'init', '--mode=archive']);
    await this.startHttp();
    const factory = await this.commit('1.0.0');

    mkdirSync(this.sysroot);
    await run('ostree', ['admin', 'init-fs', '--modern', this.sysroot]);
    await run('ostree', ['admin', 'os-init', `--sysroot=${this.sysroot}`, this.osname]);
    const repo = `--repo=${join(this.sysroot, 'ostree', 'repo')}`;
    await run('ostree', ['remote', 'add', repo, `--gpg-import=${this.trustedKeyFile}`, 'origin', this.remoteUrl, this.ref]);
    await run('ostree', ['pull', repo, 'origin', this.ref]);
    await run('ostree', ['admin', 'deploy', `--sysroot=${this.sysroot}`, `--os=${this.osname}`, '--karg=root=LABEL=fake', `origin:${this.ref}`]);
    if (this.defaultChecksum() !== factory) throw new Error('factory deployment missing');

    writeFileSync(
      this.enterScript,
      `#!/bin/sh
# Runs "$@" inside the deployment booted by the OSTree testbed (tests/helpers/ostree-testbed.ts):
# a private mount+pid namespace with the deployment as /, like the initramfs's ostree-prepare-root.
set -eu
T=${shq(d)}
DEP=$(cat "$T/booted")
exec ${shq(requireBinary('unshare'))} --mount --pid --fork --propagation private /bin/sh -c '
set -eu
S=$1; DEP=$2; RUN=$3; OS=$4; shift 4
mount --bind "$DEP" "$DEP"
mount --bind "$S" "$DEP/sysroot"
mount --bind "$S/boot" "$DEP/boot"
mount --bind /usr "$DEP/usr"
mount --bind "$S/ostree/deploy/$OS/var" "$DEP/var"
mount --bind "$RUN" "$DEP/run"
mount -t proc proc "$DEP/proc"
mount --rbind /dev "$DEP/dev"
mount -t tmpfs tmpfs "$DEP/tmp"
touch "$DEP/run/ostree-booted"
cd "$DEP"
exec chroot "$DEP" "$@"
' sh "$T/sysroot" "$DEP" "$T/run" ${shq(this.osname)} "$@"
`,
    );
    chmodSync(this.enterScript, 0o755);
    writeFileSync(
      this.healthScript,
      `#!/bin/sh
# Test health check (tests/helpers/ostree-testbed.ts): exit 0 iff /usr/share/ota-test/health of the
# booted deployment contains "ok".
DEP=$(cat ${shq(join(d, 'booted'))})
content=$(cat "$DEP/usr/share/ota-test/health" 2>/dev/null) || content=''
printf 'deployment %s /health: %s\\n' "$(basename "$DEP")" "\${content:-<missing>}"
case "$content" in *ok*) exit 0 ;; *) exit 1 ;; esac
`,
    );
    chmodSync(this.healthScript, 0o755);
    await this.simulateBoot();
    await this.startBus();
  }

  // ---- the remote --------------------------------------------------------------------------------

  private async startHttp(): Promise<void> {
    const root = join(this.dir, 'srv');
    this.http = createServer((req, res) => {
      const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
      this.requests.push(path);
      if (this.gate) {
        void this.gate.then(() => serve(path, res));
        return;
      }
      serve(path, res);
    });
    const serve = (path: string, res: import('node:http').ServerResponse) => {
      const file = normalize(join(root, path));
      if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200, { 'content-length': String(statSync(file).size) });
      createReadStream(file).pipe(res);
    };
    await new Promise<void>((resolve) => this.http?.listen(0, '127.0.0.1', resolve));
    this.port = (this.http.address() as AddressInfo).port;
  }

  /** Holds every HTTP answer until the returned function is called (a pull that cannot finish yet). */
  holdRemote(): () => void {
    let release!: () => void;
    this.gate = new Promise<void>((r) => (release = r));
    return () => {
      this.gate = null;
      release();
    };
  }

  /** Commits a root filesystem with `version` to the served repo on `ref`; returns the checksum. */
  async commit(version: string, o: CommitOptions = {}): Promise<string> {
    const tree = join(this.dir, 'trees', String(++this.trees));
    for (const sub of ['usr/lib/modules/6.1.0', 'usr/etc', 'usr/share/ota-test', 'usr/bin', 'usr/lib64', 'usr/sbin', 'sysroot', 'boot', 'proc', 'dev', 'run', 'var', 'tmp', 'home', 'root', 'mnt']) {
      mkdirSync(join(tree, sub), { recursive: true });
    }
    symlinkSync('sysroot/ostree', join(tree, 'ostree'));
    for (const l of ['bin', 'lib', 'lib64', 'sbin']) symlinkSync(`usr/${l}`, join(tree, l));
    writeFileSync(join(tree, 'usr/lib/modules/6.1.0/vmlinuz'), `not a kernel ${version}\n`);
    const osRelease = `ID=otatest\nPRETTY_NAME="OTA test ${version}"\nVERSION_ID=${version}\n`;
    writeFileSync(join(tree, 'usr/lib/os-release'), osRelease);
    writeFileSync(join(tree, 'usr/etc/os-release'), osRelease);
    const health = o.health ?? 'ok';
    writeFileSync(join(tree, 'usr/share/ota-test/health'), `${health}\n`);
    const signer = o.signer ?? 'trusted';
    const repo = `--repo=${join(this.dir, 'srv')}`;
    const sign = signer === 'none' ? [] : [`--gpg-sign=${this.fpr[signer]}`, `--gpg-homedir=${this.gnupg}`];
    const csum = (
      await run('ostree', [repo, 'commit', `--branch=${this.ref}`, `--subject=${version}`, `--add-metadata-string=version=${version}`, `--tree=dir=${tree}`, ...sign], this.gpgEnv())
    ).trim();
    await run('ostree', [repo, 'summary', '-u', `--gpg-sign=${this.fpr.trusted}`, `--gpg-homedir=${this.gnupg}`], this.gpgEnv());
    this.commits.set(csum, { version, health, signer });
    return csum;
  }

  // ---- the machine -------------------------------------------------------------------------------

  /** Deployments as seen from outside (the host: nothing marked booted), in boot order. */
  deployments(): OstreeDeployment[] {
    const out = execFileSyncText('ostree', ['admin', 'status', `--sysroot=${this.sysroot}`]);
    return parseAdminStatus(out).filter((x) => x.osname === this.osname);
  }

  /** `ostree admin status` from inside the booted system. */
  async statusInside(): Promise<string> {
    return run(this.enterScript, ['ostree', 'admin', 'status']);
  }

  defaultChecksum(): string | undefined {
    return this.deployments()[0]?.checksum;
  }

  /** Checksum of the deployment booted last. */
  bootedChecksum(): string {
    return basename(readFileSync(join(this.dir, 'booted'), 'utf8').trim()).split('.')[0] as string;
  }

  /** The BLS entries, best first: what a bootloader offers (highest `version` = default). */
  private bootEntries(): string[] {
    const dir = join(this.sysroot, 'boot', 'loader', 'entries');
    const entries = readdirSync(dir)
      .filter((f) => f.endsWith('.conf'))
      .map((f) => {
        const text = readFileSync(join(dir, f), 'utf8');
        return { version: Number(/^version\s+(\d+)/m.exec(text)?.[1] ?? 0), ostree: /^options\s.*\bostree=(\S+)/m.exec(text)?.[1] };
      })
      .sort((a, b) => b.version - a.version);
    return entries.map((e) => {
      if (!e.ostree) throw new Error('a BLS entry without ostree= karg');
      return realpathSync(join(this.sysroot, e.ostree));
    });
  }

  /**
   * A power cycle, after the agent stopped: shutdown finalises a staged deployment (what
   * ostree-finalize-staged.service does), then the "bootloader" boots entry `entry` (0 = the
   * default; 1 = the previous one, e.g. a fallback after failed boot attempts), with a fresh /run
   * and a new boot id.
   */
  async simulateBoot(opts: { entry?: number } = {}): Promise<void> {
    const runDir = join(this.dir, 'run');
    if (existsSync(join(runDir, 'ostree', 'staged-deployment'))) await run(this.enterScript, ['ostree', 'admin', 'finalize-staged']);
    rmSync(runDir, { recursive: true, force: true });
    mkdirSync(runDir);
    const entries = this.bootEntries();
    const dep = entries[opts.entry ?? 0];
    if (!dep) throw new Error(`no boot entry ${opts.entry ?? 0} (have ${entries.length})`);
    writeFileSync(join(this.dir, 'booted'), `${dep}\n`);
    writeFileSync(this.bootIdFile, `${randomUUID()}\n`);
  }

  // ---- the bus for the systemd stand-in ------------------------------------------------------------

  private async startBus(): Promise<void> {
    const sock = join(this.dir, 'bus.sock');
    writeFileSync(
      join(this.dir, 'dbus.conf'),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
`,
    );
    const p = spawn(requireBinary('dbus-daemon'), [`--config-file=${join(this.dir, 'dbus.conf')}`, '--nofork', '--nopidfile', '--nosyslog'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.bus = p;
    p.stdout?.on('data', (b: Buffer) => (this.busLog += b.toString()));
    p.stderr?.on('data', (b: Buffer) => (this.busLog += b.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (p.exitCode !== null) throw new Error(`dbus-daemon exited: ${this.busLog}`);
      if (await socketAccepts(sock)) return;
      await sleep(20);
    }
    throw new Error(`dbus-daemon did not listen within 10 s: ${this.busLog}`);
  }

  async close(): Promise<void> {
    const bus = this.bus;
    if (bus && bus.exitCode === null && bus.signalCode === null) {
      const exited = new Promise((r) => bus.once('exit', r));
      bus.kill('SIGTERM');
      await exited;
    }
    this.bus = null;
    await new Promise<void>((r) => (this.http ? this.http.close(() => r()) : r()));
    this.http?.closeAllConnections();
    await run('gpgconf', ['--kill', 'gpg-agent'], this.gpgEnv()).catch(() => undefined);
    if (process.env.OTA_KEEP_TESTBED === '1') return;
    // Deployment directories carry the immutable bit.
    await run('chattr', ['-R', '-i', this.dir]).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Synchronous on purpose: used in expectations. */
function execFileSyncText(file: string, args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
}

// ---- a device: agent process + testbed + systemd stand-in ------------------------------------------

export interface OstreeDeviceOptions {
  /** What the systemd stand-in does with a reboot request (default: a clean reboot into the default). */
  onReboot?: (dev: OstreeDevice) => Promise<void>;
  /**
   * Run the rpm-ostree STAND-IN (tests/helpers/rpmostree-standin.py) on the device's bus, one
   * process per boot like rpm-ostreed. The agent's config says driver "auto" either way: it has to
   * find rpm-ostree on the bus (or not) by itself.
   */
  rpmOstree?: boolean;
}

export class OstreeDevice {
  readonly id = `ostree-${randomBytes(4).toString('hex')}`;
  readonly compatible = `og-${randomBytes(3).toString('hex')}`;
  readonly logs: string[] = [];
  agent!: SimulatedDevice;
  systemd: SystemdStandin | undefined;
  rpmOstree: RpmOstreeStandin | undefined;
  configPath!: string;
  reboots = 0;
  private onReboot!: (dev: OstreeDevice) => Promise<void>;

  private constructor(readonly lab: SimLab, readonly testbed: OstreeTestbed) {}

  static async create(lab: SimLab, opts: OstreeDeviceOptions = {}): Promise<OstreeDevice> {
    const testbed = await OstreeTestbed.create();
    const dev = new OstreeDevice(lab, testbed);
    try {
      const config: ConfigInput = {
        deviceId: dev.id,
        compatible: dev.compatible,
        stateDir: join(testbed.dir, 'agent-state'),
        mqtt: { url: lab.brokerUrl, protocolVersion: lab.protocolVersion, allowPlaintext: true, reconnectPeriodMs: 500 },
        trust: { keys: [{ publicKeyPem: lab.key.publicKeyPem }] },
        backend: {
          type: 'ostree',
          osname: testbed.osname,
          gpgKeyFile: testbed.trustedKeyFile,
          bootIdFile: testbed.bootIdFile,
          commandPrefix: [testbed.enterScript],
          driver: 'auto',
          busAddress: testbed.busAddress,
          python: SYSTEM_PYTHON,
          fallbackVersion: '0.0.0',
          reboot: { method: 'logind', busAddress: testbed.busAddress },
        },
        healthChecks: [{ kind: 'command', name: 'rootfs-health', argv: [testbed.healthScript], timeoutMs: 20_000 }],
        artifacts: { allowedSchemes: ['http'] },
        log: { level: 'debug' },
      };
      dev.configPath = join(testbed.dir, 'agent.json');
      writeFileSync(dev.configPath, JSON.stringify(config, null, 2));
      dev.agent = new SimulatedDevice({ configPath: dev.configPath, onOutput: (l) => dev.logs.push(l) });
      dev.onReboot = opts.onReboot ?? ((d) => d.cleanReboot());
      dev.systemd = await SystemdStandin.start(testbed.busAddress, () => {
        dev.reboots++;
        setTimeout(() => void dev.onReboot(dev).catch((e: unknown) => dev.logs.push(`reboot failed: ${String(e)}`)), 50);
      });
      if (opts.rpmOstree) {
        dev.rpmOstree = new RpmOstreeStandin(testbed);
        await dev.rpmOstree.start();
      }
      dev.agent.start();
      await dev.waitOnline();
      return dev;
    } catch (e) {
      await dev.close();
      throw e;
    }
  }

  async waitOnline(): Promise<void> {
    await this.lab.watcher
      .waitFor(() => this.lab.watcher.online.get(this.id) === true && this.lab.watcher.states.get(this.id), 30_000, `${this.id} online`)
      .catch((e: Error) => {
        throw new Error(`${e.message}; agent output:\n${this.logs.slice(-20).join('\n')}`);
      });
  }

  /** systemd stops the agent, the machine reboots into `entry` (0 = default), the agent starts again. */
  async cleanReboot(entry = 0): Promise<void> {
    await this.agent.stop();
    this.lab.watcher.online.set(this.id, false);
    // rpm-ostreed lives for one boot, like everything else.
    await this.rpmOstree?.stop();
    await this.testbed.simulateBoot({ entry });
    await this.rpmOstree?.start();
    this.agent.start();
  }

  /** Publishes a signed announcement of `commit` (on the testbed's remote and ref). */
  async announce(commit: string, version: string, patch: Partial<AnnouncementInput> = {}): Promise<AnnouncementInput> {
    const now = Date.now();
    const a = {
      id: `${this.compatible}-${version}-${randomBytes(2).toString('hex')}`,
      sequence: this.lab.nextSequence(),
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 3600_000).toISOString(),
      compatible: this.compatible,
      channel: 'stable',
      version,
      backend: 'ostree',
      artifact: { remote: { name: 'updates', url: this.testbed.remoteUrl }, ref: this.testbed.ref, commit },
      rollout: { percent: 100 },
      ...patch,
    } as AnnouncementInput;
    await this.lab.publishRaw(this.lab.t.announce(this.compatible, 'stable'), this.lab.sign(a));
    return a;
  }

  state() {
    return this.lab.watcher.states.get(this.id);
  }

  /** The agent's "OSTree driver chosen" log record (driver and why), from its JSON log lines. */
  chosenDriver(): { driver?: string; why?: string } | undefined {
    for (const l of this.logs) {
      try {
        const o = JSON.parse(l) as { msg?: string; driver?: string; why?: string };
        if (o.msg === 'OSTree driver chosen') return o;
      } catch {
        // not a log record
      }
    }
    return undefined;
  }

  async close(): Promise<void> {
    await this.agent?.stop().catch(() => undefined);
    await this.rpmOstree?.stop().catch(() => undefined);
    this.systemd?.close();
    await this.testbed.close();
  }
}
