// Runs the configured checks and produces the verdict that decides commit vs. rollback.
// performance is the global one: importing node:perf_hooks would load it at start, not on first use.
import { setTimeout as sleep } from 'node:timers/promises';
import { runAttempt } from './attempt.js';
import type { HealthContext } from './context.js';
import { failed as failedOutcome, type AttemptOutcome } from './outcome.js';
import type { HealthCheckResult, HealthCheckSpec, HealthVerdict, JournalTail } from './schema.js';

export { formatVerdictTable } from './format-verdict.js';

/** The error text of a check cut short, or never started, because the run's deadline passed. */
export const DEADLINE_EXCEEDED = 'deadline exceeded';

export interface RunHealthChecksOptions {
  /**
   * Cancels the run. An aborted run rejects with the signal's reason instead of producing a verdict:
   * the checks did not fail, the agent stopped asking, and a failed verdict would trigger a rollback.
   */
  signal?: AbortSignal;
  /** Clock for startedAt/finishedAt. Durations use a monotonic clock regardless. */
  now?: () => Date;
  /** Called after each check finishes, e.g. for progress logging. */
  onResult?: (result: HealthCheckResult) => void;
  /** What checks need from the agent (its MQTT settings for `mqtt-broker`). */
  context?: HealthContext;
  /**
   * Wait this long before the first check (services settling after boot). The caller subtracts the
   * time already spent since boot (see graceRemainingMs). Cancellable through `signal`.
   */
  graceMs?: number;
  /**
   * Budget for all checks, counted from the first one (after the grace period). On expiry the check
   * in progress is cut short and it and every remaining check fail with "deadline exceeded" — a
   * verdict, not a rejection: a device whose checks hang is not healthy.
   */
  deadlineMs?: number;
  /** On a failed verdict, attach the last `lines` lines of this boot's journal (0 or absent: none). */
  journalLines?: number;
  /** Collector for journalTail; default collectJournalTail (journalctl, else the agent's log). */
  collectJournal?: (lines: number) => Promise<JournalTail>;
}

export async function runHealthChecks(
  specs: readonly HealthCheckSpec[],
  opts: RunHealthChecksOptions = {},
): Promise<HealthVerdict> {
  const now = opts.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const results: HealthCheckResult[] = [];

  if (opts.graceMs !== undefined && opts.graceMs > 0 && specs.length > 0) await pause(opts.graceMs, opts.signal);

  const budget = startBudget(opts.deadlineMs, opts.signal);
  try {
    // Sequential on purpose: checks are declared in dependency order (service up before its API is
    // probed), and a freshly booted device should not be hit with everything at once.
    for (const spec of specs) {
      opts.signal?.throwIfAborted();
      const result = budget.expired() ? skipped(spec, budget.text) : await runCheck(spec, opts, budget);
      results.push(result);
      opts.onResult?.(result);
    }
  } finally {
    budget.dispose();
  }

  const failed = results.filter((r) => r.required && !r.passed).map((r) => r.name);
  const verdict: HealthVerdict = { passed: failed.length === 0, startedAt, finishedAt: now().toISOString(), results, failed };
  if (!verdict.passed && opts.journalLines !== undefined && opts.journalLines > 0) {
    const collect = opts.collectJournal ?? ((lines: number) => import('./journal-tail.js').then((m) => m.collectJournalTail({ lines })));
    try {
      verdict.journalTail = await collect(opts.journalLines);
    } catch (e) {
      verdict.journalTail = { source: 'agent-log', lines: [], note: `collecting the journal failed: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
  return verdict;
}

/** How much of a grace period after boot is still left, given the kernel uptime. */
export function graceRemainingMs(graceSeconds: number, uptimeSeconds: number): number {
  return Math.max(0, Math.round((graceSeconds - uptimeSeconds) * 1000));
}

interface Budget {
  /** Aborts when the caller's signal or the run's deadline does. */
  signal: AbortSignal | undefined;
  expired: () => boolean;
  text: string;
  dispose: () => void;
}

function startBudget(deadlineMs: number | undefined, outer: AbortSignal | undefined): Budget {
  if (deadlineMs === undefined) return { signal: outer, expired: () => false, text: DEADLINE_EXCEEDED, dispose: () => undefined };
  const controller = new AbortController();
  let expired = false;
  const text = `${DEADLINE_EXCEEDED} (${formatMs(deadlineMs)} for all checks)`;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort(new Error(text));
  }, deadlineMs);
  const onOuter = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });
  return {
    signal: controller.signal,
    expired: () => expired,
    text,
    dispose: () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

function skipped(spec: HealthCheckSpec, text: string): HealthCheckResult {
  return { name: spec.name, kind: spec.kind, required: spec.required, passed: false, attempts: 0, durationMs: 0, outputTail: `not run: ${text}`, error: text };
}

async function runCheck(spec: HealthCheckSpec, opts: RunHealthChecksOptions, budget: Budget): Promise<HealthCheckResult> {
  const outer = opts.signal;
  // Monotonic time: device clocks commonly jump when NTP syncs shortly after boot, mid-check.
  const started = performance.now();
  let attempts = 0;
  let outcome: AttemptOutcome;

  for (;;) {
    outer?.throwIfAborted();
    attempts += 1;
    outcome = await runAttempt(spec, budget.signal, opts.context);
    // An attempt cut short by the caller is not evidence about the device's health.
    outer?.throwIfAborted();
    if (outcome.passed) break;
    if (budget.expired()) {
      // Cut short by the deadline (or out of time for another attempt): say so, keep any output.
      outcome = failedOutcome(budget.text, outcome.outputTail && outcome.outputTail !== 'aborted' ? outcome.outputTail : budget.text);
      break;
    }
    if (attempts > spec.retries) break;
    try {
      await pause(spec.intervalMs, budget.signal);
    } catch (err) {
      outer?.throwIfAborted();
      if (!budget.expired()) throw err;
      outcome = failedOutcome(budget.text, outcome.outputTail);
      break;
    }
  }

  const result: HealthCheckResult = {
    name: spec.name,
    kind: spec.kind,
    required: spec.required,
    passed: outcome.passed,
    attempts,
    durationMs: Math.max(0, Math.round(performance.now() - started)),
    outputTail: outcome.outputTail,
  };
  if (!outcome.passed) result.error = outcome.error ?? 'failed';
  return result;
}

async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms === 0) return;
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    // Surface the caller's own reason rather than the timers module's generic AbortError.
    signal?.throwIfAborted();
    throw err;
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
