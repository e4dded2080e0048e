// Runs the configured checks and produces the verdict that decides commit vs. rollback.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { runAttempt } from './attempt.js';
import type { AttemptOutcome } from './outcome.js';
import type { HealthCheckResult, HealthCheckSpec, HealthVerdict } from './schema.js';

export { formatVerdictTable } from './format-verdict.js';

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
}

export async function runHealthChecks(
  specs: readonly HealthCheckSpec[],
  opts: RunHealthChecksOptions = {},
): Promise<HealthVerdict> {
  const now = opts.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const results: HealthCheckResult[] = [];

  // Sequential on purpose: checks are declared in dependency order (service up before its API is
  // probed), and a freshly booted device should not be hit with everything at once.
  for (const spec of specs) {
    const result = await runCheck(spec, opts.signal);
    results.push(result);
    opts.onResult?.(result);
  }

  const failed = results.filter((r) => r.required && !r.passed).map((r) => r.name);
  return { passed: failed.length === 0, startedAt, finishedAt: now().toISOString(), results, failed };
}

async function runCheck(spec: HealthCheckSpec, signal: AbortSignal | undefined): Promise<HealthCheckResult> {
  // Monotonic time: device clocks commonly jump when NTP syncs shortly after boot, mid-check.
  const started = performance.now();
  let attempts = 0;
  let outcome: AttemptOutcome;

  for (;;) {
    signal?.throwIfAborted();
    attempts += 1;
    outcome = await runAttempt(spec, signal);
    // An attempt cut short by the caller is not evidence about the device's health.
    signal?.throwIfAborted();
    if (outcome.passed || attempts > spec.retries) break;
    await pause(spec.intervalMs, signal);
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
