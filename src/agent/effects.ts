// What the agent does on entering each state. Each effect returns the lifecycle event that ends it
// (or says to wait / that a reboot is under way); the agent commits that event before the next
// effect runs. Effects must be idempotent: after a crash the agent runs the current one again.
import type { BootInfo, RebootOutcome, SlotInfo, UpdateBackend } from '../core/backend.js';
import type { EventInput } from '../core/machine.js';
import type { State } from '../core/transitions.js';
import type { UpdateRecord } from '../core/update-record.js';
import { windowState } from '../core/window.js';
import type { HealthCheckSpec, HealthVerdict } from '../health/schema.js';
import type { Logger } from '../util/log.js';

export type EffectResult =
  | { kind: 'event'; event: EventInput }
  | { kind: 'wait'; until?: Date }
  | { kind: 'reboot'; outcome: RebootOutcome };

export interface EffectEnv {
  backend: UpdateBackend;
  boot: BootInfo;
  checks: readonly HealthCheckSpec[];
  /** Reboot only on a signed "reboot" command (config reboot.waitForCommand). */
  rebootOnCommand: boolean;
  runChecks: (specs: readonly HealthCheckSpec[], signal: AbortSignal) => Promise<HealthVerdict>;
  now: () => Date;
  signal: AbortSignal;
  progress: (phase: string, percent: number) => void;
  log: Logger;
}

type Effect = (rec: UpdateRecord, env: EffectEnv) => Promise<EffectResult>;

const ev = (event: EventInput): EffectResult => ({ kind: 'event', event });
const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Is the window (if any) that governs `what` closed now? Then: when does it open. */
function windowWait(rec: UpdateRecord, what: 'install' | 'reboot', now: Date): Date | null {
  const w = rec.announcement?.rollout.window;
  if (!w || w.applies !== what) return null;
  const s = windowState(w, now);
  if (s.open) return null;
  return s.until ?? new Date(now.getTime() + 24 * 3600_000);
}

/** One line per slot, for messages that must explain what the bootloader did. */
function describeSlots(slots: SlotInfo[]): string {
  return slots
    .map((s) => `${s.name} (${[s.booted ? 'booted' : 'inactive', s.primary ? 'primary' : '', s.bootStatus ?? '', s.version ?? 'no version'].filter(Boolean).join(', ')})`)
    .join('; ');
}

/** After a reboot-ish state: did we boot, and into which slot? */
async function bootedEvent(rec: UpdateRecord, env: EffectEnv): Promise<EffectResult | null> {
  if (env.boot.bootId === rec.bootId) return null;
  const slot = env.boot.bootedSlot;
  const detail = `booted slot ${slot} running ${env.boot.version} (new slot ${rec.newSlot ?? '?'}, old slot ${rec.oldSlot ?? '?'})`;
  if (slot === rec.newSlot) return ev({ type: 'BOOTED_NEW', message: detail });
  // Not where we meant to be: the slot status says why (e.g. the new slot marked bad by the bootloader).
  const slots = await env.backend.slots().then(describeSlots, (e: unknown) => `slot status unavailable: ${errorText(e)}`);
  return ev({ type: 'BOOTED_OLD', message: `${detail}; slots: ${slots}` });
}

/**
 * Resuming `installing` on another boot that already runs the announced version: the install had
 * finished and made the new slot the next boot, and the power went before INSTALLED was written.
 * Installing again would write the *other* slot — the known-good one we must be able to go back to —
 * so the update goes on as "booted the new slot" and is verified like any other first boot.
 */
async function bootedIntoInstall(rec: UpdateRecord, env: EffectEnv): Promise<EffectResult | null> {
  if (env.boot.bootId === rec.bootId || env.boot.version !== rec.toVersion) return null;
  const newSlot = env.boot.bootedSlot;
  const slots = await env.backend.slots().catch(() => [] as SlotInfo[]);
  const oldSlot = slots.find((s) => !s.booted && s.name !== newSlot && s.version === rec.fromVersion)?.name;
  return ev({
    type: 'BOOTED_NEW',
    newSlot,
    ...(oldSlot ? { oldSlot } : {}),
    message: `the device rebooted while installing and came up on slot ${newSlot} running ${env.boot.version}: the install had completed; verifying it instead of installing again`,
  });
}

async function reboot(env: EffectEnv, reason: string): Promise<EffectResult> {
  try {
    return { kind: 'reboot', outcome: await env.backend.reboot(reason) };
  } catch (e) {
    return ev({ type: 'FAIL', reason: 'REBOOT_FAILED', message: `reboot failed: ${errorText(e)}` });
  }
}

export const EFFECTS: Partial<Record<State, Effect>> = {
  async accepted(rec, env) {
    const until = windowWait(rec, 'install', env.now());
    return until ? ev({ type: 'WAIT_WINDOW', deferredUntil: until.toISOString(), message: `waiting for the maintenance window opening ${until.toISOString()}` }) : ev({ type: 'PROCEED' });
  },

  async deferred(rec, env) {
    const until = windowWait(rec, 'install', env.now());
    return until ? { kind: 'wait', until } : ev({ type: 'WINDOW_OPEN' });
  },

  async downloading(rec, env) {
    if (!rec.announcement) return ev({ type: 'FAIL', reason: 'DOWNLOAD_FAILED', message: 'no announcement on record' });
    try {
      await env.backend.download(rec.announcement, env);
      return ev({ type: 'DOWNLOADED' });
    } catch (e) {
      if (env.signal.aborted) throw e;
      return ev({ type: 'FAIL', reason: 'DOWNLOAD_FAILED', message: errorText(e) });
    }
  },

  async installing(rec, env) {
    if (!rec.announcement) return ev({ type: 'FAIL', reason: 'INSTALL_FAILED', message: 'no announcement on record' });
    const alreadyBooted = await bootedIntoInstall(rec, env);
    if (alreadyBooted) return alreadyBooted;
    try {
      const slots = await env.backend.install(rec.announcement, env);
      if (env.rebootOnCommand) return ev({ type: 'INSTALLED_WAIT_WINDOW', ...slots, message: 'installed; the reboot waits for a reboot command' });
      const until = windowWait(rec, 'reboot', env.now());
      if (until) {
        return ev({ type: 'INSTALLED_WAIT_WINDOW', ...slots, deferredUntil: until.toISOString(), message: `installed; reboot waits for the window opening ${until.toISOString()}` });
      }
      return ev({ type: 'INSTALLED', ...slots });
    } catch (e) {
      if (env.signal.aborted) throw e;
      return ev({ type: 'FAIL', reason: 'INSTALL_FAILED', message: errorText(e) });
    }
  },

  async 'reboot-deferred'(rec, env) {
    // Policy "on command": the reboot command applies WINDOW_OPEN itself (src/agent/commands.ts).
    if (env.rebootOnCommand) return { kind: 'wait' };
    const until = windowWait(rec, 'reboot', env.now());
    return until ? { kind: 'wait', until } : ev({ type: 'WINDOW_OPEN' });
  },

  async rebooting(rec, env) {
    return (await bootedEvent(rec, env)) ?? reboot(env, `update ${rec.updateId} to ${rec.toVersion}`);
  },

  async verifying(rec, env) {
    if (env.boot.version !== rec.toVersion) {
      return ev({ type: 'FAIL', reason: 'INSTALL_FAILED', message: `booted version ${env.boot.version}, expected ${rec.toVersion}` });
    }
    const verdict = await env.runChecks(env.checks, env.signal);
    if (verdict.passed) return ev({ type: 'CHECKS_PASSED', checks: verdict });
    return ev({ type: 'CHECKS_FAILED', reason: 'HEALTH_CHECK_FAILED', message: `health check failed: ${verdict.failed.join(', ')}`, checks: verdict });
  },

  async committing(_rec, env) {
    try {
      await env.backend.markGood();
      return ev({ type: 'MARKED_GOOD' });
    } catch (e) {
      return ev({ type: 'FAIL', reason: 'COMMIT_FAILED', message: `marking the new slot good failed: ${errorText(e)}` });
    }
  },

  async reverting(rec, env) {
    const booted = await bootedEvent(rec, env);
    if (booted) return booted;
    try {
      await env.backend.revert();
    } catch (e) {
      return ev({ type: 'FAIL', reason: 'REVERT_FAILED', message: `could not switch back: ${errorText(e)}` });
    }
    return reboot(env, `revert of ${rec.updateId}`);
  },

  async 'rolling-back'(rec, env) {
    const booted = await bootedEvent(rec, env);
    if (booted) return booted;
    try {
      await env.backend.activateRollback();
    } catch (e) {
      return ev({ type: 'FAIL', reason: 'REVERT_FAILED', message: `could not activate the previous slot: ${errorText(e)}` });
    }
    return reboot(env, `rollback ${rec.updateId}`);
  },
};

/** Clean-up on a terminal state, then CLOSE. Best effort: a failed clean-up is logged, not fatal. */
export async function finish(rec: UpdateRecord, env: EffectEnv): Promise<EffectResult> {
  try {
    if (rec.announcement) await env.backend.discardDownload(rec.announcement);
    // Failed while booted on the new slot means a revert that did not happen (it failed, did not
    // take, or the agent kept dying in it): never pin that unverified slot as the next boot.
    const onUnverifiedSlot = rec.state === 'failed' && rec.kind === 'update' && env.boot.bootedSlot === rec.newSlot;
    // After a fallback the bootloader chose the old slot, but nothing may have told the backend
    // (an OSTree default stays on the new deployment): make the running slot the next boot's choice.
    const fellBack = rec.outcome?.reason === 'BOOTLOADER_FALLBACK';
    if ((rec.state === 'failed' || rec.state === 'cancelled' || fellBack) && !onUnverifiedSlot) await env.backend.keepBootedSlot();
  } catch (e) {
    env.log.warn({ err: errorText(e), updateId: rec.updateId }, 'clean-up after the update failed');
  }
  return ev({ type: 'CLOSE' });
}
