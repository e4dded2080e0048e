import { describe, expect, it } from 'vitest';
import { RefusalBudget, UNAUTHENTICATED_REASONS, describeSummary } from '../../src/agent/refusal-budget.js';
import { REJECT_REASONS } from '../../src/core/reasons.js';

function budget(burst: number, perMinute: number) {
  let t = 1_000_000;
  const b = new RefusalBudget({ burst, perMinute }, () => t);
  return { b, advance: (ms: number) => (t += ms) };
}

describe('RefusalBudget', () => {
  it('records a burst of unauthenticated refusals, then only counts them', () => {
    const { b } = budget(3, 60);
    const admitted = Array.from({ length: 10 }, () => b.admit('BAD_SIGNATURE', 't/a'));
    expect(admitted).toEqual([true, true, true, false, false, false, false, false, false, false]);
    expect(b.pending).toBe(7);
  });

  it('refills at the steady rate, never above the burst', () => {
    const { b, advance } = budget(2, 60); // one a second
    b.admit('MALFORMED_JSON', 't');
    b.admit('MALFORMED_JSON', 't');
    expect(b.admit('MALFORMED_JSON', 't')).toBe(false);
    advance(1000);
    expect(b.admit('MALFORMED_JSON', 't')).toBe(true);
    expect(b.admit('MALFORMED_JSON', 't')).toBe(false);
    advance(3_600_000);
    expect([b.admit('TOO_LARGE', 't'), b.admit('TOO_LARGE', 't'), b.admit('TOO_LARGE', 't')]).toEqual([true, true, false]);
  });

  it('always records the first refusal of each message a trusted key signed', () => {
    const { b } = budget(1, 1);
    b.admit('BAD_SIGNATURE', 't');
    const signed = REJECT_REASONS.filter((r) => !UNAUTHENTICATED_REASONS.has(r));
    expect(signed).toContain('REPLAYED');
    expect(signed).toContain('INSUFFICIENT_SIGNATURES');
    for (const r of signed) for (let i = 0; i < 5; i++) expect(b.admit(r, 't', `digest-${String(i)}`), r).toBe(true);
    // Without a digest there is no telling a repeat: recorded.
    for (const r of signed) expect(b.admit(r, 't'), r).toBe(true);
    expect(b.pending).toBe(0);
  });

  it('budgets repeats of a signed message already refused (a replay flood), not a new reason for it', () => {
    const { b } = budget(2, 60);
    expect(b.admit('NOT_NEWER', 't', 'd1')).toBe(true);
    expect(b.admit('NOT_NEWER', 't', 'd2')).toBe(true);
    // Replayed alternately: the budget's burst of 2, then counted.
    const replays = Array.from({ length: 6 }, (_, i) => b.admit('NOT_NEWER', 't', i % 2 === 0 ? 'd1' : 'd2'));
    expect(replays).toEqual([true, true, false, false, false, false]);
    expect(b.takeSummary()).toMatchObject({ total: 4, byReason: { NOT_NEWER: 4 } });
    // The same message refused for another reason is news again.
    expect(b.admit('EXPIRED', 't', 'd1')).toBe(true);
  });

  it('forgets the oldest signed messages beyond its memory: they are recorded again, never lost', () => {
    const { b } = budget(0, 0);
    for (let i = 0; i < 600; i++) expect(b.admit('NOT_NEWER', 't', `d${String(i)}`)).toBe(true);
    expect(b.admit('NOT_NEWER', 't', 'd599')).toBe(false);
    expect(b.admit('NOT_NEWER', 't', 'd0')).toBe(true);
  });

  it('summarises the counted refusals per reason and topic once, then starts over', () => {
    const { b } = budget(1, 1);
    b.admit('BAD_SIGNATURE', 't/a');
    for (let i = 0; i < 5; i++) b.admit('BAD_SIGNATURE', 't/a');
    for (let i = 0; i < 2; i++) b.admit('UNKNOWN_KEY', 't/b');
    const s = b.takeSummary();
    expect(s).toMatchObject({ total: 7, byReason: { BAD_SIGNATURE: 5, UNKNOWN_KEY: 2 }, topics: ['t/a', 't/b'] });
    expect(describeSummary(s!)).toMatch(/^7 refused unauthenticated or repeated message\(s\) since .* BAD_SIGNATURE 5, UNKNOWN_KEY 2$/);
    expect(b.takeSummary()).toBeNull();
  });
});
