// The RAUC backend: A/B slot installs through RAUC's D-Bus API, reboots through systemd. The agent
// downloads the bundle itself (resumable, verified) unless configured to hand RAUC the URL.
import { readFile, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod';
import type { BootInfo, EffectContext, RebootOutcome, SlotInfo, UpdateBackend } from '../core/backend.js';
import type { Announcement } from '../schemas/announcement.js';
import { Version } from '../schemas/common.js';
import { requestReboot } from '../systemd/reboot.js';
import { BootedSlotGuard } from './booted-slot-guard.js';
import { GuardMarker } from './guard-marker.js';
import { RaucClient, RaucError, type RaucSlot } from './installer-client.js';

export const RaucOptions = z
  .object({
    type: z.literal('rauc'),
    busAddress: z.string().min(1).optional().describe('D-Bus address of the bus RAUC is on; default: the system bus'),
    slotClass: z.string().min(1).default('rootfs').describe('the slot class that holds the A/B system'),
    bootIdFile: z.string().regex(/^\//).default('/proc/sys/kernel/random/boot_id').describe('changes on every boot; how the agent knows a reboot happened'),
    fallbackVersion: Version.default('0.0.0').describe('version of a factory-flashed slot that RAUC has no bundle.version for'),
    passUrlToRauc: z.boolean().default(false).describe('let RAUC fetch the URL itself (needs a RAUC built with streaming/HTTP); default: the agent downloads and verifies'),
    bandwidthLimitBytesPerSec: z.number().int().min(1024).optional(),
    installTimeoutMs: z.number().int().min(10_000).max(24 * 3600_000).default(30 * 60_000),
    installAttempts: z.number().int().min(1).max(10).default(3).describe('tries for D-Bus failures (busy, RAUC restarting, bus restarted); a failed bundle is not retried'),
    retryDelayMs: z.number().int().min(0).max(600_000).default(2000),
    reboot: z
      .object({ method: z.enum(['logind', 'systemd']).default('logind'), busAddress: z.string().min(1).optional() })
      .strict()
      .default({ method: 'logind' }),
  })
  .strict();
export type RaucOptions = z.infer<typeof RaucOptions>;

export class RaucBackend implements UpdateBackend {
  readonly name = 'rauc';
  readonly handles = 'rauc' as const;
  private readonly client: RaucClient;
  private readonly guard: BootedSlotGuard;
  private guardResumed = false;

  constructor(
    private readonly opts: RaucOptions,
    private readonly downloadDir: string,
    private readonly log: { warn: (o: object, m: string) => void } = { warn: () => undefined },
    private readonly allowedHosts?: readonly string[],
  ) {
    this.client = new RaucClient(opts.busAddress);
    // Recorded in the agent's own 0700 state directory so that a restarted agent resumes it.
    const marker = new GuardMarker(join(downloadDir, 'keep-booted-slot.json'), opts.bootIdFile);
    this.guard = new BootedSlotGuard((wanted) => this.keepBootedIfIdle(wanted), this.log, undefined, undefined, marker);
  }

  private async retrying<T>(what: string, fn: () => Promise<T>, attempts = this.opts.installAttempts, signal?: AbortSignal): Promise<T> {
    for (let i = 1; ; i++) {
      try {
        return await fn();
      } catch (e) {
        const retryable = e instanceof RaucError && e.retryable;
        if (!retryable || i >= attempts || signal?.aborted) {
          throw new Error(`${what} failed${i > 1 ? ` after ${i} attempts` : ''}: ${(e as Error).message}`, { cause: e });
        }
        this.log.warn({ attempt: i, err: (e as Error).message }, `${what}: retrying in ${this.opts.retryDelayMs} ms`);
        await sleep(this.opts.retryDelayMs, undefined, signal ? { signal } : undefined);
      }
    }
  }

  private async systemSlots(): Promise<RaucSlot[]> {
    return (await this.client.slotStatus()).filter((s) => s.class === undefined || s.class === this.opts.slotClass);
  }

  async bootInfo(): Promise<BootInfo> {
    // The agent's first call, made before RAUC is asked anything (RAUC may still be frozen in the
    // install an earlier agent gave up on). Read-only tools (status) never call it, so they never
    // take over the guard.
    if (!this.guardResumed) {
      this.guardResumed = true;
      this.guard.resume();
    }
    // RAUC may start after the agent at boot: give it a while before giving up.
    return this.retrying('reading the boot state from RAUC', async () => {
      const bootId = (await readFile(this.opts.bootIdFile, 'utf8')).trim();
      const bootedSlot = await this.client.property('BootSlot');
      const slots = await this.systemSlots();
      const booted = slots.find((s) => s.bootname === bootedSlot) ?? slots.find((s) => s.state === 'booted');
      return { bootId, bootedSlot, version: booted?.version ?? this.opts.fallbackVersion };
    }, 10);
  }

  async slots(): Promise<SlotInfo[]> {
    const primary = await this.client.primary().catch(() => '');
    return (await this.systemSlots()).map((s) => ({
      name: s.bootname ?? s.name,
      booted: s.state === 'booted',
      primary: s.name === primary,
      ...(s.version ? { version: s.version } : {}),
      ...(s.bootStatus ? { bootStatus: s.bootStatus } : {}),
      details: { slot: s.name, state: s.state ?? '', ...(s.installedAt ? { installed: s.installedAt } : {}) },
    }));
  }

  private bundlePath(a: Announcement): string {
    if (a.backend !== 'rauc') throw new Error('the RAUC backend takes rauc announcements only');
    // The file name is the validated hex digest; no path from a message is used.
    return join(this.downloadDir, `${a.artifact.sha256}.raucb`);
  }

  async download(a: Announcement, ctx: EffectContext): Promise<void> {
    if (a.backend !== 'rauc') throw new Error('the RAUC backend takes rauc announcements only');
    if (this.opts.passUrlToRauc) return;
    await mkdir(this.downloadDir, { recursive: true, mode: 0o700 });
    const { fetchArtifact } = await import('../fetch/index.js');
    await fetchArtifact({
      url: a.artifact.url,
      destPath: this.bundlePath(a),
      sha256: a.artifact.sha256,
      size: a.artifact.size,
      signal: ctx.signal,
      onProgress: (got, total) => ctx.progress('downloading', total > 0 ? (100 * got) / total : 0),
      ...(this.opts.bandwidthLimitBytesPerSec ? { bandwidthLimitBytesPerSec: this.opts.bandwidthLimitBytesPerSec } : {}),
      allowedHosts: this.allowedHosts,
    });
  }

  async inspectArtifact(path: string): Promise<{ compatible: string; version: string }> {
    return this.client.info(path);
  }

  async install(a: Announcement, ctx: EffectContext): Promise<{ newSlot: string; oldSlot: string }> {
    if (a.backend !== 'rauc') throw new Error('the RAUC backend takes rauc announcements only');
    const source = this.opts.passUrlToRauc ? a.artifact.url : this.bundlePath(a);
    this.guard.cancel(); // this install decides the next boot from now on
    const oldSlot = await this.retrying('reading the booted slot', () => this.client.property('BootSlot'), this.opts.installAttempts, ctx.signal);
    await this.retrying(
      'RAUC install',
      () => this.client.install(source, { signal: ctx.signal, timeoutMs: this.opts.installTimeoutMs, onProgress: (p) => ctx.progress('installing', p) }),
      this.opts.installAttempts,
      ctx.signal,
    );
    const slots = await this.retrying('reading the slot status', () => this.systemSlots(), this.opts.installAttempts, ctx.signal);
    const target = slots
      .filter((s) => s.state !== 'booted' && s.version === a.version)
      .sort((x, y) => (y.installedAt ?? '').localeCompare(x.installedAt ?? ''))[0];
    if (!target?.bootname) throw new Error(`RAUC reported success but no inactive ${this.opts.slotClass} slot holds version ${a.version}`);
    return { newSlot: target.bootname, oldSlot };
  }

  async reboot(_reason: string): Promise<RebootOutcome> {
    await requestReboot(this.opts.reboot.method, this.opts.reboot.busAddress ?? this.opts.busAddress);
    return { kind: 'requested' };
  }

  async markGood(): Promise<void> {
    await this.retrying('marking the booted slot good', () => this.client.mark('good', 'booted'));
  }

  async revert(): Promise<void> {
    this.guard.cancel();
    await this.retrying('marking the booted slot bad', () => this.client.mark('bad', 'booted'));
    await this.retrying('activating the other slot', () => this.client.mark('active', 'other'));
  }

  async rollbackTarget(): Promise<{ slot: string; version: string } | null> {
    const other = (await this.systemSlots()).find((s) => s.state !== 'booted' && s.bootStatus === 'good' && s.version && s.bootname);
    return other ? { slot: other.bootname as string, version: other.version as string } : null;
  }

  async activateRollback(): Promise<void> {
    this.guard.cancel();
    await this.retrying('activating the other slot', () => this.client.mark('active', 'other'));
  }

  async discardDownload(a: Announcement): Promise<void> {
    if (a.backend !== 'rauc' || this.opts.passUrlToRauc) return;
    await rm(this.bundlePath(a), { force: true });
    await rm(`${this.bundlePath(a)}.part`, { force: true });
  }

  async keepBootedSlot(): Promise<void> {
    this.guard.record(); // on disk before the first try, which can hang on a frozen RAUC
    let outcome: 'done' | 'busy' | Error;
    try {
      outcome = await this.keepBootedIfIdle(() => true);
    } catch (e) {
      outcome = e as Error;
    }
    if (outcome === 'done') {
      this.guard.cancel();
      return;
    }
    // RAUC is busy or not answering: most likely still running the install the agent gave up on.
    this.log.warn({ err: outcome === 'busy' ? 'RAUC busy' : outcome.message }, 'RAUC cannot confirm the next boot now: the booted slot is made the next boot again as soon as RAUC is idle');
    this.guard.arm();
  }

  /** The booted slot becomes primary again, if RAUC is idle; 'busy' otherwise. */
  private async keepBootedIfIdle(stillWanted: () => boolean): Promise<'done' | 'busy'> {
    if ((await this.client.property('Operation')) !== 'idle') return 'busy';
    const booted = (await this.systemSlots()).find((s) => s.state === 'booted');
    if (!booted || !stillWanted() || (await this.client.primary()) === booted.name) return 'done';
    if (!stillWanted()) return 'done';
    await this.client.mark('active', 'booted');
    this.log.warn({ slot: booted.name }, 'the booted slot is the next boot again (an install that ended without a checked boot had made another slot primary)');
    return 'done';
  }

  async close(): Promise<void> {
    this.guard.stop(); // the record stays: the next agent on this boot resumes the guard
  }
}
