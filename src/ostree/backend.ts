// The plain OSTree backend (an OSTree-based Debian/Ubuntu retrofit, Yocto meta-updater, Torizon):
// the `ostree` CLI run with execFile argv arrays (never a shell), plus one small python3-gi helper
// for the only thing the 2022.7 CLI cannot do — make another existing deployment the default
// (src/ostree/helper-py.ts). A "slot" is a deployment's commit checksum. Reboots go through
// systemd like RAUC's. Every command can be prefixed (commandPrefix): the hook for running the
// calls inside a chroot, a mount namespace or a container that holds the booted system.
import { readFile } from 'node:fs/promises';
import type { BootInfo, EffectContext, RebootOutcome, SlotInfo, UpdateBackend } from '../core/backend.js';
import type { Announcement } from '../schemas/announcement.js';
import { requestReboot } from '../systemd/reboot.js';
import { OstreeCli, type OstreeCommandError, type RunOptions } from './cli.js';
import { DEFAULT_DEPLOYMENT_PY } from './helper-py.js';
import type { OstreeOptions } from './options.js';
import { isSignatureFailure, prepareRemote } from './remote.js';
import { parseAdminStatus, staleDefault, type OstreeDeployment } from './status.js';

export { OstreeOptions } from './options.js';
export { OstreeCommandError } from './cli.js';

export class OstreeBackend implements UpdateBackend {
  readonly name = 'ostree';
  readonly handles = 'ostree' as const;
  readonly driver = 'ostree' as const;
  private readonly cli: OstreeCli;

  constructor(
    private readonly opts: OstreeOptions,
    private readonly log: { warn: (o: object, m: string) => void } = { warn: () => undefined },
  ) {
    this.cli = new OstreeCli(opts);
  }

  private run(argv: string[], o: RunOptions = {}): Promise<string> {
    return this.cli.run(argv, o);
  }

  private ostree(args: string[], o: RunOptions = {}): Promise<string> {
    return this.cli.ostree(args, o);
  }

  private repoArg(): string {
    return this.cli.repoArg();
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
    ctx.progress('downloading', 0);
    await prepareRemote(this.cli, this.opts, art, ctx.signal);
    try {
      await this.ostree(['pull', repo, art.remote.name, `${art.ref}@${art.commit}`], { signal: ctx.signal });
    } catch (e) {
      const text = (e as OstreeCommandError).stderr ?? '';
      if (isSignatureFailure(text)) {
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
    // state) while its commit is still the next boot's choice, the booted one becomes the default.
    if (a.backend !== 'ostree') return;
    const booted = staleDefault(await this.deployments(), a.artifact.commit);
    if (booted) {
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
