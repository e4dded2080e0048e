// A flood of unsigned or wrongly signed messages must not turn into a flood of disk writes and
// outbox events (src/agent/refusal-budget.ts): the first ones are recorded one by one, the rest are
// counted and reported as one RATE_LIMITED event; a signed message refused is recorded the first time, and replays of it go through the budget too.
import { afterEach, describe, expect, it } from 'vitest';
import {
  COMMANDS,
  STABLE,
  announcement,
  command,
  harness,
  outsiderKey,
  signedAnnouncement,
  signedCommand,
  utf8,
  type Harness,
} from './agent-harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('refusal budget under a flood', () => {
  it('records the burst, counts the rest, and reports them in one RATE_LIMITED event', async () => {
    h = await harness((c) => ({ ...c, limits: { refusalBurst: 5, refusalsPerMinute: 1 } }));
    const slots = h.slotsDigest();
    for (let i = 0; i < 200; i++) {
      const bytes = i % 2 === 0 ? signedAnnouncement(announcement({ sequence: 5000 + i }), [outsiderKey]) : utf8(`not json ${String(i)}`);
      expect(h.agent.handleAnnouncement(STABLE, bytes)?.kind).toBe('reject');
    }
    for (let i = 0; i < 20; i++) expect((await h.agent.handleCommand(COMMANDS, utf8(`{"x":${String(i)}}`))).kind).toBe('reject');
    // A signed message refused for what it says is always recorded, flood or not.
    const stale = await h.agent.handleCommand(COMMANDS, signedCommand(command({ deviceId: 'dev-0002' })));
    expect(stale).toMatchObject({ kind: 'reject', reason: 'WRONG_DEVICE' });

    let events = h.outbox().filter((e) => e.type === 'rejected');
    // 5 recorded one by one (at most one more if a token refilled), plus WRONG_DEVICE.
    expect(events.length).toBeGreaterThanOrEqual(6);
    expect(events.length).toBeLessThanOrEqual(7);
    expect(events.at(-1)?.reason).toBe('WRONG_DEVICE');
    expect(h.store.decisions(1000).length).toBe(events.length);
    const recorded = events.length - 1;

    await h.agent.stop(); // reports what was counted
    events = h.outbox().filter((e) => e.type === 'rejected');
    const summary = events.at(-1);
    expect(summary?.reason).toBe('RATE_LIMITED');
    const counted = 220 - recorded;
    expect(summary?.message).toContain(`${String(counted)} refused unauthenticated or repeated message(s)`);
    expect(summary?.message).toMatch(/UNKNOWN_KEY 10\d|UNKNOWN_KEY 9\d/);
    expect(summary?.message).toMatch(/MALFORMED_JSON \d+/);
    expect(h.store.current()).toBeNull();
    expect(h.slotsDigest()).toBe(slots);
  });

  it('a replay flood of signed announcements: the first refusal of each is recorded, the repeats go through the budget', async () => {
    h = await harness((c) => ({ ...c, limits: { refusalBurst: 5, refusalsPerMinute: 1 } }));
    // Two genuine announcements the device refuses (older than what it runs), replayed alternately
    // so that the "same as last time" check does not catch them.
    const stale = [signedAnnouncement(announcement({ version: '1.0.0', sequence: 7001 })), signedAnnouncement(announcement({ version: '1.1.0', sequence: 7002 }))];
    const first = stale.map((b) => h!.agent.handleAnnouncement(STABLE, b));
    for (const d of first) expect(d).toMatchObject({ kind: 'reject' });
    const reason = (first[0] as { reason: string }).reason;
    // A repeat is refused (recorded or counted), or ignored as the same message as the last one recorded.
    let refused = 0;
    for (let i = 0; i < 100; i++) {
      const d = h.agent.handleAnnouncement(STABLE, stale[i % 2] as Buffer);
      expect(['reject', 'ignore']).toContain(d?.kind);
      if (d?.kind === 'reject') refused++;
    }
    const rejected = h.outbox().filter((e) => e.type === 'rejected');
    // 2 first refusals + the budget's burst of 5 (at most one more if a token refilled), not one per message.
    expect(refused).toBeGreaterThan(50);
    expect(rejected.length).toBeGreaterThanOrEqual(7);
    expect(rejected.length).toBeLessThanOrEqual(8);
    await h.agent.stop();
    const summary = h.outbox().filter((e) => e.type === 'rejected').at(-1);
    expect(summary?.reason).toBe('RATE_LIMITED');
    expect(summary?.message).toContain(`${String(2 + refused - rejected.length)} refused unauthenticated or repeated message(s)`);
    expect(summary?.message).toContain(reason);
  });
});
