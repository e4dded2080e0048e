// The OSTree backend's rpm-ostree driver (Fedora IoT, Fedora CoreOS, RHEL for Edge): the same
// lifecycle as the plain driver (src/ostree/backend.ts), carried out by rpm-ostree's daemon over
// D-Bus instead of the ostree tool. A "slot" is a deployment's commit checksum.
//
//   download   UpdateDeployment({set-refspec: REMOTE:REF, set-revision: COMMIT}, {download-only})
//              — rpm-ostree pulls the exact commit; the remote's gpg-verify (set with the ostree
//              tool, prepareRemote: rpm-ostree has no D-Bus call for remotes) makes it check the
//              signature. PercentProgress is the agent's download progress.
//   install    the same with {cache-only, lock-finalization}: a staged deployment that is NOT
//              finalised at an unplanned shutdown; it must be COMMIT, else it is removed and refused.
//   reboot     FinalizeDeployment({checksum}): rpm-ostree unlocks it and reboots the machine itself.
//   commit     Cleanup(pending-deploy) if anything else became the default meanwhile, Cleanup(base);
//              the previous deployment stays as the rollback.
//   revert     Rollback({}) then a reboot through systemd.
// Every transaction is followed over its peer-to-peer socket (transaction.ts). Before starting
// one, a transaction still running in the daemon — e.g. the one this agent started before it was
// killed — is re-attached through Sysroot.ActiveTransactionPath and followed to its end first.
import { readFile } from 'node:fs/promises';
import type { BootInfo, EffectContext, RebootOutcome, SlotInfo, UpdateBackend } from '../../core/backend.js';
import type { Announcement } from '../../schemas/announcement.js';
import { requestReboot } from '../../systemd/reboot.js';
import { OstreeCli } from '../cli.js';
import type { OstreeOptions } from '../options.js';
import { isSignatureFailure, prepareRemote } from '../remote.js';
import { staleDefault } from '../status.js';
import { isBusy, RpmOstreeClient, vardict, type RpmOstreeDeployment, type TransactionMethod } from './client.js';
import type { TransactionOutcome, TransactionProgress } from './transaction.js';

type Log = { warn: (o: object, m: string) => void; info?: (o: object, m: string) => void };

export class RpmOstreeBackend implements UpdateBackend {
  readonly name = 'ostree';
  readonly handles = 'ostree' as const;
  readonly driver = 'rpm-ostree' as const;
  private readonly cli: OstreeCli;
  /** The commit install() staged in this process (FinalizeDeployment must name it). */
  private staged: string | undefined;

  constructor(
    private readonly opts: OstreeOptions,
    private readonly log: Log = { warn: () => undefined },
    private readonly client = new RpmOstreeClient(opts.busAddress, opts.osname),
  ) {
    this.cli = new OstreeCli(opts);
  }

  // ---- transactions ------------------------------------------------------------------------------

  /** Follows a transaction that is already running (ours from before a restart, or anyone's) to its end. */
  private async settleActive(ctx: { signal?: AbortSignal }, progress: TransactionProgress = {}): Promise<void> {
    const active = await this.client.activeTransaction();
    if (!active) return;
    const r = await this.client.attach(active.address, progress, { timeoutMs: this.opts.commandTimeoutMs, ...(ctx.signal ? { signal: ctx.signal } : {}) });
    this.log.info?.({ method: active.method, success: r.success, error: r.error, startedByUs: r.started }, 're-attached to a running rpm-ostree transaction and followed it to its end');
  }

  private async transact(method: TransactionMethod, args: unknown[], ctx: { signal?: AbortSignal }, progress: TransactionProgress = {}): Promise<TransactionOutcome> {
    const o = { timeoutMs: this.opts.commandTimeoutMs, ...(ctx.signal ? { signal: ctx.signal } : {}) };
    await this.settleActive(ctx, progress);
    try {
      return await this.client.transact(method, args, progress, o);
    } catch (e) {
      // Someone started a transaction between our look and our call: wait for it, then once more.
      if (!isBusy(e)) throw e;
      await this.settleActive(ctx, progress);
      return this.client.transact(method, args, progress, o);
    }
  }

  /** Runs a transaction and throws with rpm-ostree's error (and its last messages) when it fails. */
  private async mustSucceed(what: string, method: TransactionMethod, args: unknown[], ctx: { signal?: AbortSignal } = {}, progress: TransactionProgress = {}): Promise<void> {
    const r = await this.transact(method, args, ctx, progress);
    if (!r.success) throw new Error(`${what}: rpm-ostree ${method} failed: ${r.error || r.messages.slice(-3).join(' | ') || 'no error message'}`);
  }

  private async deployments(): Promise<RpmOstreeDeployment[]> {
    return this.client.deployments();
  }

  // ---- UpdateBackend -----------------------------------------------------------------------------

  async bootInfo(): Promise<BootInfo> {
    const bootId = (await readFile(this.opts.bootIdFile, 'utf8')).trim();
    const { booted } = await this.client.osDeployments();
    if (!booted) throw new Error(`rpm-ostree reports no booted ${this.opts.osname} deployment (BootedDeployment is empty)`);
    return { bootId, bootedSlot: booted.checksum, version: booted.version ?? this.opts.fallbackVersion };
  }

  async slots(): Promise<SlotInfo[]> {
    const all = await this.deployments();
    const bootedAt = all.findIndex((d) => d.booted);
    return all.map((d, i) => ({
      name: d.checksum,
      booted: d.booted,
      primary: i === 0,
      version: d.version ?? this.opts.fallbackVersion,
      // libostree's terms: before the booted one = pending (staged if not yet written), after it = rollback.
      ...(d.staged ? { bootStatus: d.finalizationLocked ? 'staged (finalization locked)' : 'staged' } : bootedAt >= 0 && i < bootedAt ? { bootStatus: 'pending' } : bootedAt >= 0 && i === bootedAt + 1 ? { bootStatus: 'rollback' } : {}),
      details: { deployment: d.id, ...(d.origin ? { origin: d.origin } : {}), ...(d.pinned ? { pinned: true } : {}) },
    }));
  }

  async inspectArtifact(_path: string): Promise<{ compatible: string; version: string }> {
    throw new Error('offline install is not supported for ostree yet (a local file cannot carry an OSTree commit; use a signed announcement)');
  }

  private artifact(a: Announcement) {
    if (a.backend !== 'ostree') throw new Error('the ostree backend takes ostree announcements only');
    return a.artifact;
  }

  private modifiers(a: Announcement) {
    const art = this.artifact(a);
    return vardict({ 'set-refspec': `${art.remote.name}:${art.ref}`, 'set-revision': art.commit });
  }

  private refusal(art: ReturnType<RpmOstreeBackend['artifact']>, step: string, e: unknown): Error {
    const text = e instanceof Error ? e.message : String(e);
    if (isSignatureFailure(text)) return new Error(`refused commit ${art.commit} of ${art.remote.name}:${art.ref}: GPG verification failed: ${text}`, { cause: e });
    return new Error(`${step} of ${art.commit} failed: ${text}`, { cause: e });
  }

  async download(a: Announcement, ctx: EffectContext): Promise<void> {
    const art = this.artifact(a);
    ctx.progress('downloading', 0);
    const progress: TransactionProgress = { onPercent: (_t, pct) => ctx.progress('downloading', Math.min(99, pct)) };
    // A pull still running (started by this agent before a restart) ends before the remote is touched.
    await this.settleActive(ctx, progress);
    await prepareRemote(this.cli, this.opts, art, ctx.signal);
    try {
      await this.mustSucceed('download', 'UpdateDeployment', [this.modifiers(a), vardict({ 'download-only': true })], ctx, progress);
    } catch (e) {
      throw this.refusal(art, 'download', e);
    }
    ctx.progress('downloading', 100);
  }

  async install(a: Announcement, ctx: EffectContext): Promise<{ newSlot: string; oldSlot: string }> {
    const art = this.artifact(a);
    await this.settleActive(ctx);
    const before = await this.deployments();
    const booted = before.find((d) => d.booted);
    if (!booted) throw new Error(`rpm-ostree reports no booted ${this.opts.osname} deployment: cannot deploy`);
    // Idempotent: after a crash the locked staged deployment may already be there.
    const first = before[0];
    if (first && first.checksum === art.commit && !first.booted && first.staged) {
      this.staged = art.commit;
      return { newSlot: art.commit, oldSlot: booted.checksum };
    }
    ctx.progress('installing', 10);
    try {
      await this.mustSucceed('install', 'UpdateDeployment', [this.modifiers(a), vardict({ 'cache-only': true, 'lock-finalization': true })], ctx);
    } catch (e) {
      throw this.refusal(art, 'staging', e);
    }
    const after = (await this.client.osDeployments()).default;
    if (!after || after.checksum !== art.commit || !after.staged) {
      // Whatever rpm-ostree staged is not what the signed announcement names: it must not boot.
      await this.mustSucceed('removing the wrong staged deployment', 'Cleanup', [['pending-deploy']]).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'could not remove the staged deployment'));
      throw new Error(
        `refused: rpm-ostree staged ${after ? `${after.checksum} (${after.staged ? 'staged' : 'not staged'})` : 'nothing'}, not the announced commit ${art.commit}; the staged deployment was removed`,
      );
    }
    this.staged = art.commit;
    ctx.progress('installing', 100);
    return { newSlot: art.commit, oldSlot: booted.checksum };
  }

  async reboot(_reason: string): Promise<RebootOutcome> {
    const d = (await this.client.osDeployments()).default;
    if (d && d.staged && d.finalizationLocked) {
      if (this.staged && d.checksum !== this.staged) throw new Error(`the staged deployment is ${d.checksum}, not ${this.staged} which was installed: not finalising it`);
      // rpm-ostree checks the (base) checksum again, unlocks the deployment and reboots the machine.
      await this.mustSucceed('finalising the staged deployment', 'FinalizeDeployment', [vardict({ checksum: d.checksum })]);
      return { kind: 'requested' };
    }
    await requestReboot(this.opts.reboot.method, this.opts.reboot.busAddress);
    return { kind: 'requested' };
  }

  async markGood(): Promise<void> {
    const all = await this.deployments();
    const booted = all.find((d) => d.booted);
    if (!booted) throw new Error('no booted deployment to keep');
    // Anything before the booted one (staged or pending) would replace it at the next boot.
    if (all[0] !== booted) await this.mustSucceed('commit', 'Cleanup', [['pending-deploy']]);
    // Temporary files and unreferenced objects; the previous deployment stays as the rollback.
    await this.mustSucceed('cleanup', 'Cleanup', [['base']]).catch((e: unknown) => {
      this.log.warn({ err: (e as Error).message }, 'rpm-ostree cleanup failed (the update itself is committed)');
    });
  }

  async revert(): Promise<void> {
    await this.mustSucceed('revert', 'Rollback', [vardict({ reboot: false })]);
  }

  async rollbackTarget(): Promise<{ slot: string; version: string } | null> {
    const { rollback } = await this.client.osDeployments();
    return rollback ? { slot: rollback.checksum, version: rollback.version ?? this.opts.fallbackVersion } : null;
  }

  async activateRollback(): Promise<void> {
    await this.mustSucceed('rollback', 'Rollback', [vardict({ reboot: false })]);
  }

  async discardDownload(a: Announcement): Promise<void> {
    // As in the plain driver: after a bootloader fallback (or any end) the announced commit must
    // not stay the next boot's choice while something else runs; nothing marks it bad otherwise.
    if (a.backend !== 'ostree') return;
    const booted = staleDefault(await this.deployments(), a.artifact.commit);
    if (booted) {
      this.log.warn({ commit: a.artifact.commit, booted: booted.checksum }, 'the finished update is still the default deployment: removing it (rpm-ostree cleanup pending-deploy)');
      await this.mustSucceed('clean-up', 'Cleanup', [['pending-deploy']]);
    }
  }

  async keepBootedSlot(): Promise<void> {
    const all = await this.deployments();
    const booted = all.find((d) => d.booted);
    if (booted && all[0] !== booted) await this.mustSucceed('keeping the booted deployment', 'Cleanup', [['pending-deploy']]);
    this.staged = undefined;
  }

  async close(): Promise<void> {}
}
