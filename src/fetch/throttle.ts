/**
 * How long to wait before `requestedBytes` may be consumed when only `availableTokens` are in the
 * bucket. A non-positive rate means "unlimited".
 */
export function computeThrottleDelayMs(
  availableTokens: number,
  requestedBytes: number,
  rateBytesPerSec: number,
): number {
  if (!(rateBytesPerSec > 0)) return 0;
  const deficit = requestedBytes - availableTokens;
  return deficit <= 0 ? 0 : Math.ceil((deficit * 1000) / rateBytesPerSec);
}

/**
 * Token bucket that lets callers go into debt: a socket chunk can be larger than the burst size,
 * and refusing it would stall the download, so the caller takes it and then waits out the debt.
 */
export class TokenBucket {
  private tokens: number;
  private lastRefillMs: number;

  constructor(
    private readonly rateBytesPerSec: number,
    // One second of burst keeps the average honest without making small rates sluggish to start.
    private readonly burstBytes: number = rateBytesPerSec,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burstBytes;
    this.lastRefillMs = now();
  }

  /** Consumes `bytes` and returns the delay (ms) the caller must wait before using them. */
  take(bytes: number): number {
    this.refill();
    const delay = computeThrottleDelayMs(this.tokens, bytes, this.rateBytesPerSec);
    this.tokens -= bytes;
    return delay;
  }

  private refill(): void {
    const now = this.now();
    const earned = ((now - this.lastRefillMs) * this.rateBytesPerSec) / 1000;
    this.tokens = Math.min(this.burstBytes, this.tokens + Math.max(0, earned));
    this.lastRefillMs = now;
  }
}
