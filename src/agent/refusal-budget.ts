// A budget for recording refusals of unauthenticated input, one by one.
//
// Each recorded refusal is a SQLite transaction with an fsync plus a `rejected` event in the
// outbox. Anyone who can publish on the device's topics - no key needed - could otherwise make the
// device write to flash thousands of times a second and fill its outbox with events to send back
// upstream. So refusals of messages that carry no valid trusted signature are recorded one by one
// only within a token bucket (a burst, then a steady rate); beyond it they are counted in memory
// and reported as one RATE_LIMITED event with the counts per reason.
//
// A message a trusted key signed and the device refuses (EXPIRED, REPLAYED, NOT_NEWER, ...) is
// recorded the first time, always: only a key holder can produce a new one, and each is news to
// the fleet owner. The same message again is not: anyone who saw it once (a compromised broker)
// can replay it at any rate, alternating several so that the "same as last time" check does not
// catch it. Repeats of a signed message already refused for the same reason therefore go through
// the same budget (measured: such a replay flood cost one fsync per message, docs/performance.md).
// The counts are lost if the agent is killed before it reports them: nothing else is, since a
// throttled message changed nothing on the device.
import type { RejectReason } from '../core/reasons.js';

/** Refused before any trusted signature was verified: anyone can produce these. */
export const UNAUTHENTICATED_REASONS: ReadonlySet<RejectReason> = new Set<RejectReason>([
  'TOO_LARGE',
  'MALFORMED_JSON',
  'MALFORMED_ENVELOPE',
  'WRONG_PAYLOAD_TYPE',
  'UNKNOWN_KEY',
  'REVOKED_KEY',
  'BAD_SIGNATURE',
]);

const MAX_TOPICS = 4;
/** Signed refusals remembered to tell a repeat from a new message (a 64-hex digest each). */
const SIGNED_SEEN = 512;

export interface RefusalBudgetOptions {
  /** Refusals recorded back to back before the rate applies. */
  burst: number;
  /** Steady rate of recorded refusals once the burst is spent. */
  perMinute: number;
}

export interface SuppressedSummary {
  total: number;
  byReason: Partial<Record<RejectReason, number>>;
  /** Up to MAX_TOPICS of the topics they came on. */
  topics: string[];
  /** When the first of them was counted (ms since the epoch). */
  since: number;
}

export class RefusalBudget {
  private tokens: number;
  private refilledAt: number;
  private counts = new Map<RejectReason, number>();
  private topics = new Set<string>();
  private firstAt = 0;
  /** reason + digest of signed messages refused and recorded; oldest first (a Set keeps insertion order). */
  private readonly signedSeen = new Set<string>();

  constructor(
    private readonly opts: RefusalBudgetOptions,
    private readonly clock: () => number = Date.now,
  ) {
    this.tokens = opts.burst;
    this.refilledAt = clock();
  }

  /**
   * True: record this refusal as usual. False: it was counted, to be reported in a summary.
   * `digest` identifies the message; without it a signed refusal is always recorded.
   */
  admit(reason: RejectReason, topic: string, digest?: string): boolean {
    if (!UNAUTHENTICATED_REASONS.has(reason)) {
      if (digest === undefined) return true;
      const key = `${reason}:${digest}`;
      if (!this.signedSeen.has(key)) {
        this.signedSeen.add(key);
        if (this.signedSeen.size > SIGNED_SEEN) this.signedSeen.delete(this.signedSeen.values().next().value as string);
        return true;
      }
    }
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    if (this.counts.size === 0) this.firstAt = this.clock();
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    if (this.topics.size < MAX_TOPICS) this.topics.add(topic);
    return false;
  }

  get pending(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  /** The counted refusals since the last call, or null if there are none; resets the counts. */
  takeSummary(): SuppressedSummary | null {
    if (this.counts.size === 0) return null;
    const summary = { total: this.pending, byReason: Object.fromEntries(this.counts), topics: [...this.topics], since: this.firstAt };
    this.counts = new Map();
    this.topics = new Set();
    return summary;
  }

  private refill(): void {
    const now = this.clock();
    const elapsed = Math.max(0, now - this.refilledAt);
    this.refilledAt = now;
    this.tokens = Math.min(this.opts.burst, this.tokens + (elapsed * this.opts.perMinute) / 60_000);
  }
}

/** One line for the RATE_LIMITED event: "1203 refusals not recorded one by one since ...: BAD_SIGNATURE 1200, ...". */
export function describeSummary(s: SuppressedSummary): string {
  const parts = Object.entries(s.byReason)
    .sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0))
    .map(([reason, n]) => `${reason} ${String(n)}`);
  return `${String(s.total)} refused unauthenticated or repeated message(s) since ${new Date(s.since).toISOString()} were counted, not recorded one by one: ${parts.join(', ')}`;
}
