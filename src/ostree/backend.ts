// The plain OSTree backend (an OSTree-based Debian/Ubuntu retrofit, Yocto meta-updater, Torizon):
// the `ostree` CLI run with execFile argv arrays (never a shell), plus one small python3-gi helper
// for the only thing the 2022.7 CLI cannot do — make another existing deployment the default
// (src/ostree/helper-py.ts). A "slot" is a deployment's commit checksum. Reboots go through
// systemd like RAUC's. Every command can be prefixed (commandPrefix): the hook for running the
// calls inside a chroot, a mount namespace or a container that holds the booted system.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import * as z from 'zod';
import type { BootInfo, EffectContext, RebootOutcome, SlotInfo, UpdateBackend } from '../core/backend.js';
import type { Announcement } from '../schemas/announcement.js';
import { Version } from '../schemas/common.js';
import { requestReboot } from '../systemd/reboot.js';
import { DEFAULT_DEPLOYMENT_PY } from './helper-py.js';
import { parseAdminStatus, type OstreeDeployment } from './status.js';

export const OstreeOptions = z
  .object({
    type: z.literal('ostree'),
    sysroot: z.string().regex(/^\//, 'an absolute path').default('/').describe('the OSTree sysroot; "/" on a booted OSTree system'),
    osname: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_", "-"')
      .describe('the stateroot (`ostree admin os-init` name) the updates are deployed to'),
    gpgKeyFile: z
      .string()
      .regex(/^\//, 'an absolute path')
      .optional()
      .describe('ASCII-armoured public key(s) imported into the remote; commits must be signed by one of them'),
    allowUnsigned: z.boolean().default(false).describe('pull without GPG verification (the commit checksum from the signed announcement still pins the content); only when gpgKeyFile is not set'),
    bootIdFile: z.string().regex(/^\//).default('/proc/sys/kernel/random/boot_id').describe('changes on every boot; how the agent knows a reboot happened'),
    commandPrefix: z
      .array(z.string().min(1))
      .max(32)
      .default([])
      .describe('argv prefix for every ostree/python3 call (chroot, nsenter, a namespace wrapper); default none'),
    ostreeBinary: z.string().min(1).default('ostree'),
    python: z.string().min(1).default('/usr/bin/python3').describe('a python3 with python3-gi and gir1.2-ostree-1.0 (only used to make another deployment the default)'),
    stage: z.boolean().default(true).describe('`ostree admin deploy --stage` (finalised at shutdown by ostree-finalize-staged.service); false: a plain deploy written at once'),
    commandTimeoutMs: z.number().int().min(1000).max(24 * 3600_000).default(30 * 60_000),
    fallbackVersion: Version.default('0.0.0').describe('version of a deployment whose commit has no `version` metadata'),
    reboot: z
      .object({ method: z.enum(['logind', 'systemd']).default('logind'), busAddress: z.string().min(1).optional() })
      .strict()
      .default({ method: 'logind' }),
  })
  .strict()
  .refine((o) => (o.gpgKeyFile !== undefined) !== o.allowUnsigned, {
    message: 'set gpgKeyFile (commits must be GPG-signed), or explicitly allowUnsigned: true without a gpgKeyFile',
    path: ['gpgKeyFile'],
  });
export type OstreeOptions = z.infer<typeof OstreeOptions>;

export class OstreeCommandError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    readonly exitCode: number | string | null,
  ) {
    super(message);
  }
}

interface RunOptions {
  input?: string;
  signal?: AbortSignal;
}

export class OstreeBackend implements UpdateBackend {
  readonly name = 'ostree';
  readonly handles = 'ostree' as const;

  constructor(
    private readonly opts: OstreeOptions,
    private readonly log: { warn: (o: object, m: string) => void } = { warn: () => undefined },
  ) {}

  // ---- running commands ------------------------------------------------------------------------

  /** Runs argv (through commandPrefix) and returns stdout; errors carry the command's stderr. */
  private run(argv: string[], o: RunOptions = {}): Promise<string> {
    const full = [...this.opts.commandPrefix, ...argv];
    const [file, ...args] = full as [string, ...string[]];
    const shown = argv[0] === this.opts.python ? `${this.opts.python} -c <set-default helper> ${argv.slice(3).join(' ')}` : argv.join(' ');
    return new Promise((resolve, reject) => {
      const child = execFile(
        file,
        args,
        {
          env: { ...process.env, LC_ALL: 'C' },
          maxBuffer: 16 * 1024 * 1024,
          timeout: this.opts.commandTimeoutMs,
          ...(o.signal ? { signal: o.signal } : {}),
        },
        (err, stdout, stderr) => {
          if (!err) return resolve(stdout);
          const e = err as Error & { code?: number | string; killed?: boolean; signal?: string };
          if (e.code === 'ENOENT') {
            return reject(new OstreeCommandError(`${shown}: ${file} not found (install ostree; for the helper python3-gi and gir1.2-ostree-1.0)`, '', e.code));
          }
          const text = (stderr || stdout || e.message).trim().split('\n').slice(-6).join(' | ');
          reject(new OstreeCommandError(`${shown} failed (${e.killed ? `killed ${e.signal ?? ''}` : `exit ${String(e.code)}`}): ${text}`, stderr, e.code ?? null));
        },
      );
      if (o.input !== undefined) child.stdin?.end(o.input);
    });
  }

  private ostree(args: string[], o: RunOptions = {}): Promise<string> {
    return this.run([this.opts.ostreeBinary, ...args], o);
  }

  private repoArg(): string {
    return `--repo=${this.opts.sysroot.replace(/\/$/, '')}/ostree/repo`;
  }

  private async deployments(): Promise<OstreeDeployment[]> {
    const text = await this.ostree(['admin', 'status', `--sysroot=${this.opts.sysroot}`]);
    return parseAdminStatus(text).filter((d) => d.osname === this.opts.osname);
  }

  private async booted(): Promise<OstreeDeployment> {
    const all = await this.deployments();
    const b = all.find((d) => d.booted);
    if (!b) throw new Error(`no booted ${this.opts.osname} deployment in \`ostree admin status\` of ${this.opts.sysroot} (is this system booted from OSTree? ${all.length} deployment(s) found)`);
    return b;
  }

  /** Makes a deployment the default through the python3-gi helper. */
  private async makeDefault(cmd: 'rollback' | 'booted' | 'checksum', checksum?: string): Promise<void> {
    await this.run([this.opts.python, '-c', DEFAULT_DEPLOYMENT_PY, cmd, this.opts.sysroot, this.opts.osname, ...(checksum ? [checksum] : [])]);
  }

  // ---- UpdateBackend ---------------------------------------------------------------------------

  async bootInfo(): Promise<BootInfo> {
    const bootId = (await readFile(this.opts.bootIdFile, 'utf8')).trim();
    const b = await this.booted();
    return { bootId, bootedSlot: b.checksum, version: b.version ?? this.opts.fallbackVersion };
  }

  async slots(): Promise<SlotInfo[]> {
    const all = await this.deployments();
    // The list is in boot order: the first one (staged or not) is the next boot's choice.
    return all.map((d, i) => ({
      name: d.checksum,
      booted: d.booted,
      primary: i === 0,
      version: d.version ?? this.opts.fallbackVersion,
      ...(d.staged ? { bootStatus: 'staged' } : d.pending ? { bootStatus: 'pending' } : d.rollback ? { bootStatus: 'rollback' } : {}),
      details: { deployment: `${d.checksum}.${d.serial}`, ...(d.refspec ? { refspec: d.refspec } : {}), ...(d.pinned ? { pinned: true } : {}) },
    }));
  }

  async inspectArtifact(_path: string): Promise<{ compatible: string; version: string }> {
    throw new Error('offline install is not supported for ostree yet (a local file cannot carry an OSTree commit; use a signed announcement)');
  }

  private artifact(a: Announcement) {
    if (a.backend !== 'ostree') throw new Error('the ostree backend takes ostree announcements only');
    return a.artifact;
  }

  async download(a: Announcement, ctx: EffectContext): Promise<void> {
    const art = this.artifact(a);
    const repo = this.repoArg();
    const verify = !this.opts.allowUnsigned;
    // Refresh the remote every time: the announcement owns its name and URL.
    ctx.progress('downloading', 0);
    await this.ostree(
      ['remote', 'add', repo, '--force', `--set=gpg-verify=${verify ? 'true' : 'false'}`, art.remote.name, art.remote.url, art.ref],
      { signal: ctx.signal },
    );
    if (verify) {
      const key = await readFile(this.opts.gpgKeyFile as string, 'utf8').catch((e: unknown) => {
        throw new Error(`cannot read gpgKeyFile ${String(this.opts.gpgKeyFile)}: ${(e as Error).message}`, { cause: e });
      });
      // Over stdin: the key is read by the agent, so a commandPrefix (chroot) needs no path to it.
      await this.ostree(['remote', 'gpg-import', repo, '--stdin', art.remote.name], { input: key, signal: ctx.signal });
    }
    try {
      await this.ostree(['pull', repo, art.remote.name, `${art.ref}@${art.commit}`], { signal: ctx.signal });
    } catch (e) {
      const text = (e as OstreeCommandError).stderr ?? '';
      if (/GPG|signature/i.test(text)) {
        throw new Error(`refused commit ${art.commit} of ${art.remote.name}:${art.ref}: GPG verification failed: ${text.trim().split('\n').pop() ?? ''}`, { cause: e });
      }
      throw e;
    }
    const got = (await this.ostree(['rev-parse', repo, `${art.remote.name}:${art.ref}`], { signal: ctx.signal })).trim();
    if (got !== art.commit) throw new Error(`after the pull ${art.remote.name}:${art.ref} is ${got}, not the announced commit ${art.commit}`);
    ctx.progress('downloading', 100);
  }

  async install(a: Announcement, ctx: EffectContext): Promise<{ newSlot: string; oldSlot: string }> {
    const art = this.artifact(a);
    const before = await this.deployments();
    const booted = before.find((d) => d.booted);
    if (!booted) throw new Error(`no booted ${this.opts.osname} deployment: cannot deploy (is this system booted from OSTree?)`);
    // Idempotent: after a crash the deployment may already be there and the default.
    const first = before[0];
    if (first && first.checksum === art.commit && !first.booted) return { newSlot: art.commit, oldSlot: booted.checksum };
    ctx.progress('installing', 10);
    const rev = (await this.ostree(['rev-parse', this.repoArg(), `${art.remote.name}:${art.ref}`], { signal: ctx.signal })).trim();
    if (rev !== art.commit) throw new Error(`${art.remote.name}:${art.ref} is ${rev}, not the announced commit ${art.commit}: download again`);
    await this.ostree(
      ['admin', 'deploy', `--sysroot=${this.opts.sysroot}`, `--os=${this.opts.osname}`, ...(this.opts.stage ? ['--stage'] : []), `${art.remote.name}:${art.ref}`],
      { signal: ctx.signal },
    );
    const after = await this.deployments();
    const next = after[0];
    if (!next || next.checksum !== art.commit) {
      throw new Error(`ostree admin deploy succeeded but the default deployment is ${next ? `${next.checksum}.${next.serial}` : 'none'}, not ${art.commit}`);
    }
    ctx.progress('installing', 100);
    return { newSlot: art.commit, oldSlot: booted.checksum };
  }

  async reboot(_reason: string): Promise<RebootOutcome> {
    await requestReboot(this.opts.reboot.method, this.opts.reboot.busAddress);
    return { kind: 'requested' };
  }

  async markGood(): Promise<void> {
    const all = await this.deployments();
    const booted = all.find((d) => d.booted);
    if (!booted) throw new Error('no booted deployment to keep');
    if (all[0] !== booted) await this.makeDefault('booted');
    // The previous deployment stays as the rollback; unreferenced objects go.
    await this.ostree(['admin', 'cleanup', `--sysroot=${this.opts.sysroot}`]).catch((e: unknown) => {
      this.log.warn({ err: (e as Error).message }, 'ostree admin cleanup failed (the update itself is committed)');
    });
  }

  async revert(): Promise<void> {
    await this.makeDefault('rollback');
  }

  async rollbackTarget(): Promise<{ slot: string; version: string } | null> {
    const all = await this.deployments();
    const bootedAt = all.findIndex((d) => d.booted);
    const r = all.find((d) => d.rollback) ?? (bootedAt >= 0 ? all.slice(bootedAt + 1).find((d) => !d.staged) : undefined);
    return r ? { slot: r.checksum, version: r.version ?? this.opts.fallbackVersion } : null;
  }

  async activateRollback(): Promise<void> {
    await this.makeDefault('rollback');
  }

  async discardDownload(a: Announcement): Promise<void> {
    // Nothing big to remove: the objects belong to the repo and deployments share them; what no
    // deployment references is pruned by `ostree admin cleanup` (markGood) or the next deploy.
    // But a deployment is more than a download: if the update ended (this runs on every terminal
    // state) while its commit is still the next boot's choice and not what runs — a bootloader
    // fallback leaves it so, and unlike RAUC's bootloaders nothing marks an OSTree deployment
    // bad — the booted deployment becomes the default again, or the next reboot would retry it.
    if (a.backend !== 'ostree') return;
    const all = await this.deployments();
    const booted = all.find((d) => d.booted);
    const first = all[0];
    if (booted && first && first !== booted && first.checksum === a.artifact.commit && booted.checksum !== a.artifact.commit) {
      this.log.warn({ commit: a.artifact.commit, booted: booted.checksum }, 'the finished update is still the default deployment: making the booted one the default again');
      await this.makeDefault('booted');
    }
  }

  async keepBootedSlot(): Promise<void> {
    const all = await this.deployments();
    const booted = all.find((d) => d.booted);
    if (booted && all[0] !== booted) await this.makeDefault('booted');
  }

  async close(): Promise<void> {}
}
