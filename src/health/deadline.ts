// One attempt's cancellation: its own timeout or the caller's signal, whichever comes first. Built by
// hand rather than with AbortSignal.any/timeout so the timer is cleared the moment the attempt
// settles and the reason can be reported precisely.

export interface Deadline {
  /** Aborts when the timeout expires or the caller's signal aborts. */
  readonly signal: AbortSignal;
  /** Why the signal aborted, phrased for a health check error. */
  readonly reason: () => string;
  /** Releases the timer and the listener on the caller's signal. Safe to call repeatedly. */
  readonly dispose: () => void;
}

export function startDeadline(timeoutMs: number, outer?: AbortSignal): Deadline {
  const controller = new AbortController();
  let timedOut = false;
  const onOuterAbort = (): void => controller.abort(outer?.reason);
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`timed out after ${timeoutMs} ms`));
  }, timeoutMs);

  if (outer?.aborted) onOuterAbort();
  else outer?.addEventListener('abort', onOuterAbort, { once: true });

  return {
    signal: controller.signal,
    reason: () => (timedOut ? `timed out after ${timeoutMs} ms` : 'aborted'),
    dispose: () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuterAbort);
    },
  };
}
