const BASE_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5_000;

/** Delay before retry number `retryIndex` (0 for the first retry): 200ms * 2^n, capped at 5s. */
export function computeBackoffMs(retryIndex: number): number {
  return Math.min(BASE_BACKOFF_MS * 2 ** Math.max(0, retryIndex), MAX_BACKOFF_MS);
}
