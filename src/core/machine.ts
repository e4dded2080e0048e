// The pure lifecycle reducer: (record, event) -> record. No I/O, no clock, no randomness: the caller
// passes `now` and the boot id, which makes every path unit-testable and replayable.
import type { HealthVerdict } from '../health/schema.js';
import type { FailureReason } from './reasons.js';
import { nextState, TERMINAL_STATES, type LifecycleEvent, type State } from './transitions.js';
import type { UpdateOutcome, UpdateRecord } from './update-record.js';

export interface EventInput {
  type: LifecycleEvent;
  reason?: FailureReason;
  message?: string;
  checks?: HealthVerdict;
  deferredUntil?: string;
  newSlot?: string;
  oldSlot?: string;
}

export interface StepContext {
  now: string;
  bootId: string;
  /** Transitions one update may take before the loop guard stops it (the longest path in the table is 10). */
  maxTransitions: number;
}

export type StepResult =
  | { ok: true; record: UpdateRecord; from: State; to: State; event: EventInput }
  | { ok: false; error: string };

export class IllegalTransitionError extends Error {}

export function step(record: UpdateRecord, input: EventInput, ctx: StepContext): StepResult {
  let event = input;
  if (record.transitions >= ctx.maxTransitions && input.type !== 'CLOSE' && input.type !== 'LOOP_DETECTED') {
    event = { type: 'LOOP_DETECTED', reason: 'STATE_LOOP', message: `more than ${ctx.maxTransitions} transitions in one update` };
  }
  const to = nextState(record.state, event.type);
  if (!to) return { ok: false, error: `illegal transition: ${event.type} in state ${record.state}` };

  const next: UpdateRecord = {
    ...record,
    state: to,
    transitions: record.transitions + 1,
    resumes: 0,
    bootId: ctx.bootId,
    updatedAt: ctx.now,
  };
  if (event.newSlot !== undefined) next.newSlot = event.newSlot;
  if (event.oldSlot !== undefined) next.oldSlot = event.oldSlot;
  if (event.checks) next.checks = event.checks;
  next.deferredUntil = to === 'deferred' || to === 'reboot-deferred' ? event.deferredUntil : undefined;
  if (event.reason) next.cause = { reason: event.reason, message: event.message ?? event.reason, ...(event.checks ? { checks: event.checks } : {}) };
  if (TERMINAL_STATES.includes(to)) next.outcome = outcomeOf(record, next, event);
  return { ok: true, record: next, from: record.state, to, event };
}

/** What a terminal state means for the fleet owner, and why. */
function outcomeOf(prev: UpdateRecord, next: UpdateRecord, event: EventInput): UpdateOutcome {
  const checks = next.checks;
  const withChecks = (o: UpdateOutcome): UpdateOutcome => (checks ? { ...o, checks } : o);
  switch (next.state) {
    case 'committed':
      return withChecks({ result: 'committed', message: `running ${next.toVersion}; health checks passed` });
    case 'cancelled':
      return { result: 'cancelled', reason: 'CANCELLED', message: event.message ?? 'cancelled by command' };
    case 'reverted': {
      if (prev.state === 'rebooting') {
        return { result: 'reverted', reason: 'BOOTLOADER_FALLBACK', message: event.message ?? `the bootloader fell back to ${prev.fromVersion}` };
      }
      if (prev.state === 'rolling-back') {
        return { result: 'reverted', reason: 'ROLLBACK_REQUESTED', message: event.message ?? `rolled back to ${next.toVersion} by command` };
      }
      const cause = next.cause;
      return withChecks({
        result: 'reverted',
        reason: cause?.reason ?? 'HEALTH_CHECK_FAILED',
        message: cause?.message ?? `back on ${prev.fromVersion}`,
      });
    }
    case 'failed': {
      if (prev.state === 'reverting' && event.type === 'BOOTED_NEW') {
        return withChecks({ result: 'failed', reason: 'REVERT_FAILED', message: event.message ?? 'the revert reboot came up on the new slot again' });
      }
      if (prev.state === 'rolling-back' && event.type === 'BOOTED_OLD') {
        return { result: 'failed', reason: 'REVERT_FAILED', message: event.message ?? 'the rollback reboot came up on the same slot again' };
      }
      const cause = next.cause;
      return withChecks({ result: 'failed', reason: cause?.reason ?? 'INSTALL_FAILED', message: cause?.message ?? 'failed' });
    }
    default:
      throw new IllegalTransitionError(`not a terminal state: ${next.state}`);
  }
}

/** States where a restart simply waits again: they do not count towards the crash-loop budget. */
const WAITING: readonly State[] = ['idle', 'deferred', 'reboot-deferred'];

export type ResumeDecision =
  | { action: 'continue'; record: UpdateRecord }
  | { action: 'loop'; event: EventInput; record: UpdateRecord };

/**
 * Called once per agent start with the persisted record. Counts restarts in the same state (on the
 * same boot or not) and, past `maxResumes`, hands back LOOP_DETECTED so a slot that keeps crashing
 * the agent is reverted instead of retried forever.
 */
export function onResume(record: UpdateRecord, maxResumes: number): ResumeDecision {
  if (WAITING.includes(record.state) || TERMINAL_STATES.includes(record.state)) {
    return { action: 'continue', record };
  }
  const resumed: UpdateRecord = { ...record, resumes: record.resumes + 1 };
  if (resumed.resumes > maxResumes) {
    return {
      action: 'loop',
      record: resumed,
      event: { type: 'LOOP_DETECTED', reason: 'RESUME_BUDGET_EXHAUSTED', message: `the agent restarted ${resumed.resumes} times in state ${record.state}` },
    };
  }
  return { action: 'continue', record: resumed };
}
