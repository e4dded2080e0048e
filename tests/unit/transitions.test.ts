// The lifecycle table (src/core/transitions.ts) and the pure reducer over it (src/core/machine.ts).
// Cases are generated from the table, and the table itself is pinned by a hand-written copy so an
// accidental edit to a row shows up here as a diff rather than as a silently re-generated test.
import { describe, expect, it } from 'vitest';
import type { HealthVerdict } from '../../src/health/schema.js';
import { onResume, step, type EventInput, type StepContext } from '../../src/core/machine.js';
import {
  EVENTS,
  STATES,
  TERMINAL_STATES,
  TRANSITIONS,
  nextState,
  type LifecycleEvent,
  type State,
} from '../../src/core/transitions.js';
import type { UpdateRecord } from '../../src/core/update-record.js';

const CTX: StepContext = { now: '2026-03-11T12:00:00.000Z', bootId: 'boot-2', maxTransitions: 32 };

function record(state: State, over: Partial<UpdateRecord> = {}): UpdateRecord {
  return {
    updateId: 'ann-42',
    kind: state === 'rolling-back' ? 'rollback' : 'update',
    state,
    fromVersion: '1.4.2',
    toVersion: '1.5.0',
    bootId: 'boot-1',
    transitions: 3,
    resumes: 0,
    startedAt: '2026-03-11T10:00:00.000Z',
    updatedAt: '2026-03-11T11:00:00.000Z',
    ...over,
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

function failingVerdict(): HealthVerdict {
  return {
    passed: false,
    startedAt: '2026-03-11T11:59:00.000Z',
    finishedAt: '2026-03-11T11:59:30.000Z',
    results: [
      { name: 'app-up', kind: 'http', required: true, passed: false, attempts: 3, durationMs: 2100, outputTail: 'HTTP 503', error: 'status 503, expected 200' },
      { name: 'disk', kind: 'command', required: false, passed: true, attempts: 1, durationMs: 12, outputTail: '' },
    ],
    failed: ['app-up'],
  };
}

function passingVerdict(): HealthVerdict {
  return {
    passed: true,
    startedAt: '2026-03-11T11:59:00.000Z',
    finishedAt: '2026-03-11T11:59:01.000Z',
    results: [{ name: 'app-up', kind: 'http', required: true, passed: true, attempts: 1, durationMs: 40, outputTail: 'ok' }],
    failed: [],
  };
}

/** Runs `step` and fails the test with the machine's own error when the step is refused. */
function must(rec: UpdateRecord, input: EventInput, ctx: StepContext = CTX): UpdateRecord {
  const r = step(rec, input, ctx);
  if (!r.ok) throw new Error(`expected a legal step, got: ${r.error}`);
  return r.record;
}

// The table, written out by hand. Keep in sync with src/core/transitions.ts on purpose.
const EXPECTED_ROWS = [
  'idle --ACCEPT--> accepted',
  'idle --ROLLBACK--> rolling-back',
  'accepted --PROCEED--> downloading',
  'accepted --WAIT_WINDOW--> deferred',
  'accepted --CANCEL--> cancelled',
  'accepted --FAIL--> failed',
  'accepted --LOOP_DETECTED--> failed',
  'deferred --WINDOW_OPEN--> downloading',
  'deferred --CANCEL--> cancelled',
  'deferred --FAIL--> failed',
  'deferred --LOOP_DETECTED--> failed',
  'downloading --DOWNLOADED--> installing',
  'downloading --CANCEL--> cancelled',
  'downloading --FAIL--> failed',
  'downloading --LOOP_DETECTED--> failed',
  'installing --INSTALLED--> rebooting',
  'installing --INSTALLED_WAIT_WINDOW--> reboot-deferred',
  'installing --BOOTED_NEW--> verifying',
  'installing --FAIL--> failed',
  'installing --LOOP_DETECTED--> failed',
  'reboot-deferred --WINDOW_OPEN--> rebooting',
  'reboot-deferred --FAIL--> failed',
  'reboot-deferred --LOOP_DETECTED--> failed',
  'rebooting --BOOTED_NEW--> verifying',
  'rebooting --BOOTED_OLD--> reverted',
  'rebooting --FAIL--> failed',
  'rebooting --LOOP_DETECTED--> failed',
  'verifying --CHECKS_PASSED--> committing',
  'verifying --CHECKS_FAILED--> reverting',
  'verifying --FAIL--> reverting',
  'verifying --LOOP_DETECTED--> reverting',
  'committing --MARKED_GOOD--> committed',
  'committing --FAIL--> reverting',
  'committing --LOOP_DETECTED--> reverting',
  'reverting --BOOTED_OLD--> reverted',
  'reverting --BOOTED_NEW--> failed',
  'reverting --FAIL--> failed',
  'reverting --LOOP_DETECTED--> failed',
  'rolling-back --BOOTED_NEW--> reverted',
  'rolling-back --BOOTED_OLD--> failed',
  'rolling-back --FAIL--> failed',
  'rolling-back --LOOP_DETECTED--> failed',
  'committed --CLOSE--> idle',
  'reverted --CLOSE--> idle',
  'failed --CLOSE--> idle',
  'cancelled --CLOSE--> idle',
];

const rowText = ([from, ev, to]: readonly [State, LifecycleEvent, State]): string => `${from} --${ev}--> ${to}`;
const ROWS = TRANSITIONS.map(([from, event, to]) => ({ from, event, to }));
const legal = new Set(TRANSITIONS.map(([from, ev]) => `${from}|${ev}`));
const ILLEGAL = STATES.flatMap((state) => EVENTS.filter((event) => !legal.has(`${state}|${event}`)).map((event) => ({ state, event })));

describe('the transition table', () => {
  it('is exactly the hand-written list of rows', () => {
    expect(TRANSITIONS.map(rowText)).toEqual(EXPECTED_ROWS);
  });

  it('has one target per (state, event) and only known states and events', () => {
    expect(legal.size).toBe(TRANSITIONS.length);
    for (const [from, ev, to] of TRANSITIONS) {
      expect(STATES).toContain(from);
      expect(EVENTS).toContain(ev);
      expect(STATES).toContain(to);
    }
  });

  it('lets terminal states only CLOSE back to idle', () => {
    for (const t of TERMINAL_STATES) {
      expect(TRANSITIONS.filter(([from]) => from === t).map(rowText)).toEqual([`${t} --CLOSE--> idle`]);
    }
  });

  it('nextState agrees with the rows and is undefined elsewhere', () => {
    for (const { from, event, to } of ROWS) expect(nextState(from, event)).toBe(to);
    for (const { state, event } of ILLEGAL) expect(nextState(state, event)).toBeUndefined();
  });
});

describe('step over every row', () => {
  it.each(ROWS)('$from --$event--> $to', ({ from, event, to }) => {
    const rec = deepFreeze(record(from));
    const r = step(rec, { type: event }, CTX);
    expect(r).toMatchObject({ ok: true, from, to });
    if (!r.ok) return;
    expect(r.record.state).toBe(to);
    expect(r.record.transitions).toBe(rec.transitions + 1);
    expect(r.record.resumes).toBe(0);
    expect(r.record.bootId).toBe(CTX.bootId);
    expect(r.record.updatedAt).toBe(CTX.now);
    expect(r.record.startedAt).toBe(rec.startedAt);
    expect(r.event.type).toBe(event);
    if (TERMINAL_STATES.includes(to)) expect(r.record.outcome).toBeDefined();
    else expect(r.record.outcome).toBeUndefined();
  });
});

describe('step over every pair not in the table', () => {
  it('covers STATES x EVENTS minus the table', () => {
    expect(ILLEGAL.length).toBe(STATES.length * EVENTS.length - TRANSITIONS.length);
    expect(ILLEGAL.length).toBe(15 * 17 - TRANSITIONS.length);
  });

  it.each(ILLEGAL)('$event in $state is refused', ({ state, event }) => {
    const r = step(deepFreeze(record(state)), { type: event }, CTX);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const words = r.error.split(/[\s:,;"'()]+/);
    expect(words).toContain(event);
    expect(words).toContain(state);
  });
});

describe('reachability', () => {
  const edges = new Map<State, State[]>();
  for (const [from, , to] of TRANSITIONS) edges.set(from, [...(edges.get(from) ?? []), to]);
  const reachableFrom = (start: State): Set<State> => {
    const seen = new Set<State>([start]);
    const queue: State[] = [start];
    while (queue.length > 0) {
      const s = queue.shift() as State;
      for (const n of edges.get(s) ?? []) {
        if (!seen.has(n)) {
          seen.add(n);
          queue.push(n);
        }
      }
    }
    return seen;
  };

  it('every state is reachable from idle', () => {
    expect([...reachableFrom('idle')].sort()).toEqual([...STATES].sort());
  });

  it.each(STATES.filter((s) => s !== 'idle'))('%s can get back to idle', (s) => {
    expect(reachableFrom(s).has('idle')).toBe(true);
  });

  it('walking the happy path through step reaches committed and closes to idle', () => {
    let rec = record('idle', { transitions: 0 });
    const path: LifecycleEvent[] = ['ACCEPT', 'PROCEED', 'DOWNLOADED', 'INSTALLED', 'BOOTED_NEW', 'CHECKS_PASSED', 'MARKED_GOOD', 'CLOSE'];
    const seen: State[] = [];
    for (const type of path) {
      rec = must(rec, { type });
      seen.push(rec.state);
    }
    expect(seen).toEqual(['accepted', 'downloading', 'installing', 'rebooting', 'verifying', 'committing', 'committed', 'idle']);
    expect(rec.transitions).toBe(path.length);
  });
});

describe('outcomes', () => {
  it('committed: says which version runs and keeps the passing verdict', () => {
    const checks = passingVerdict();
    const committing = must(record('verifying'), { type: 'CHECKS_PASSED', checks });
    expect(committing.state).toBe('committing');
    expect(committing.checks).toEqual(checks);
    const done = must(committing, { type: 'MARKED_GOOD' });
    expect(done.state).toBe('committed');
    expect(done.outcome).toEqual({ result: 'committed', message: expect.stringContaining('1.5.0'), checks });
    expect(done.outcome?.reason).toBeUndefined();
  });

  it('reverted from rebooting is BOOTLOADER_FALLBACK and names the old version', () => {
    const r = must(record('rebooting'), { type: 'BOOTED_OLD' });
    expect(r.state).toBe('reverted');
    expect(r.outcome).toEqual({ result: 'reverted', reason: 'BOOTLOADER_FALLBACK', message: expect.stringContaining('1.4.2') });
  });

  it('reverted from rolling-back is ROLLBACK_REQUESTED', () => {
    const rec = record('rolling-back', { fromVersion: '1.5.0', toVersion: '1.4.2' });
    const r = must(rec, { type: 'BOOTED_NEW' });
    expect(r.state).toBe('reverted');
    expect(r.outcome).toEqual({ result: 'reverted', reason: 'ROLLBACK_REQUESTED', message: expect.stringContaining('1.4.2') });
  });

  it('reverted after CHECKS_FAILED carries HEALTH_CHECK_FAILED and the verdict', () => {
    const checks = failingVerdict();
    const reverting = must(record('verifying'), {
      type: 'CHECKS_FAILED',
      reason: 'HEALTH_CHECK_FAILED',
      message: 'required check app-up failed: status 503, expected 200',
      checks,
    });
    expect(reverting.state).toBe('reverting');
    expect(reverting.outcome).toBeUndefined();
    expect(reverting.cause).toEqual({ reason: 'HEALTH_CHECK_FAILED', message: 'required check app-up failed: status 503, expected 200', checks });
    const reverted = must(reverting, { type: 'BOOTED_OLD' });
    expect(reverted.state).toBe('reverted');
    expect(reverted.outcome).toEqual({
      result: 'reverted',
      reason: 'HEALTH_CHECK_FAILED',
      message: 'required check app-up failed: status 503, expected 200',
      checks,
    });
  });

  it('reverted after CHECKS_FAILED without an explicit reason still says HEALTH_CHECK_FAILED', () => {
    const checks = failingVerdict();
    const reverted = must(must(record('verifying'), { type: 'CHECKS_FAILED', checks }), { type: 'BOOTED_OLD' });
    expect(reverted.outcome).toMatchObject({ result: 'reverted', reason: 'HEALTH_CHECK_FAILED', checks });
  });

  it('failed from reverting on BOOTED_NEW is REVERT_FAILED, even with an earlier cause', () => {
    const reverting = must(record('verifying'), { type: 'CHECKS_FAILED', reason: 'HEALTH_CHECK_FAILED', message: 'app-up failed', checks: failingVerdict() });
    const r = must(reverting, { type: 'BOOTED_NEW' });
    expect(r.state).toBe('failed');
    expect(r.outcome?.result).toBe('failed');
    expect(r.outcome?.reason).toBe('REVERT_FAILED');
    expect(r.outcome?.message).toMatch(/revert/);
  });

  it('failed from rolling-back on BOOTED_OLD (the rollback did not take) is REVERT_FAILED and keeps the boot detail', () => {
    // This is the event src/agent/effects.ts (bootedEvent) sends: BOOTED_OLD with a message and no reason.
    const detail = 'booted slot rootfs.0 running 1.5.0 (new slot rootfs.1, old slot rootfs.0)';
    const rec = record('rolling-back', { fromVersion: '1.5.0', toVersion: '1.4.2', newSlot: 'rootfs.1', oldSlot: 'rootfs.0' });
    const r = must(rec, { type: 'BOOTED_OLD', message: detail });
    expect(r.state).toBe('failed');
    expect(r.outcome).toEqual({ result: 'failed', reason: 'REVERT_FAILED', message: detail });
  });

  it.each(['accepted', 'deferred', 'downloading'] as const)('cancelled from %s is CANCELLED', (from) => {
    const r = must(record(from), { type: 'CANCEL', message: 'cancelled by command cmd-7' });
    expect(r.state).toBe('cancelled');
    expect(r.outcome).toEqual({ result: 'cancelled', reason: 'CANCELLED', message: 'cancelled by command cmd-7' });
    const plain = must(record(from), { type: 'CANCEL' });
    expect(plain.outcome).toMatchObject({ result: 'cancelled', reason: 'CANCELLED' });
    expect(plain.outcome?.message.length).toBeGreaterThan(0);
  });

  it('failed via FAIL carries the given reason and message', () => {
    const r = must(record('downloading'), { type: 'FAIL', reason: 'DOWNLOAD_FAILED', message: 'HTTP 404 for https://updates.example.com/b.raucb' });
    expect(r.state).toBe('failed');
    expect(r.cause).toEqual({ reason: 'DOWNLOAD_FAILED', message: 'HTTP 404 for https://updates.example.com/b.raucb' });
    expect(r.outcome).toEqual({ result: 'failed', reason: 'DOWNLOAD_FAILED', message: 'HTTP 404 for https://updates.example.com/b.raucb' });
  });

  it('FAIL from committing reverts and the reverted outcome keeps the reason', () => {
    const reverting = must(record('committing'), { type: 'FAIL', reason: 'COMMIT_FAILED', message: 'rauc status mark-good: exit 1' });
    expect(reverting.state).toBe('reverting');
    const reverted = must(reverting, { type: 'BOOTED_OLD' });
    expect(reverted.outcome).toMatchObject({ result: 'reverted', reason: 'COMMIT_FAILED', message: 'rauc status mark-good: exit 1' });
  });

  it('deferredUntil is kept only while deferred', () => {
    const deferred = must(record('accepted'), { type: 'WAIT_WINDOW', deferredUntil: '2026-03-12T02:00:00.000Z' });
    expect(deferred.deferredUntil).toBe('2026-03-12T02:00:00.000Z');
    const downloading = must(deferred, { type: 'WINDOW_OPEN' });
    expect(downloading.deferredUntil).toBeUndefined();
  });

  it('records the slots given by INSTALLED', () => {
    const r = must(record('installing'), { type: 'INSTALLED', newSlot: 'rootfs.1', oldSlot: 'rootfs.0' });
    expect(r).toMatchObject({ state: 'rebooting', newSlot: 'rootfs.1', oldSlot: 'rootfs.0' });
  });
});

describe('loop guard', () => {
  const ctx: StepContext = { ...CTX, maxTransitions: 16 };

  it.each(EVENTS.filter((e) => e !== 'CLOSE'))('at the limit, %s in verifying becomes LOOP_DETECTED -> reverting (STATE_LOOP)', (type) => {
    const r = step(deepFreeze(record('verifying', { transitions: 16 })), { type }, ctx);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.to).toBe('reverting');
    expect(r.event.type).toBe('LOOP_DETECTED');
    if (type !== 'LOOP_DETECTED') {
      expect(r.record.cause).toEqual({ reason: 'STATE_LOOP', message: expect.stringContaining('16') });
    }
  });

  it('past the limit, DOWNLOADED in downloading becomes LOOP_DETECTED -> failed', () => {
    const r = step(record('downloading', { transitions: 20 }), { type: 'DOWNLOADED' }, ctx);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.to).toBe('failed');
    expect(r.record.outcome).toMatchObject({ result: 'failed', reason: 'STATE_LOOP' });
  });

  it('one below the limit the event is taken as given', () => {
    const r = step(record('downloading', { transitions: 15 }), { type: 'DOWNLOADED' }, ctx);
    expect(r).toMatchObject({ ok: true, to: 'installing' });
  });

  it('CLOSE is never turned into LOOP_DETECTED', () => {
    for (const t of TERMINAL_STATES) {
      const r = step(record(t, { transitions: 99 }), { type: 'CLOSE' }, ctx);
      expect(r).toMatchObject({ ok: true, to: 'idle' });
    }
    const r = step(record('verifying', { transitions: 99 }), { type: 'CLOSE' }, ctx);
    expect(r.ok).toBe(false);
  });

  it('the longest path through the table fits in the smallest allowed maxTransitions (16)', () => {
    // Without CLOSE the table is acyclic; the loop guard must never fire on a legitimate path.
    const edges = TRANSITIONS.filter(([, ev]) => ev !== 'CLOSE');
    const longest = (s: State, seen: ReadonlySet<State>): number => {
      let best = 0;
      for (const [from, , to] of edges) {
        if (from !== s) continue;
        expect(seen.has(to)).toBe(false);
        best = Math.max(best, 1 + longest(to, new Set([...seen, to])));
      }
      return best;
    };
    const n = longest('idle', new Set(['idle']));
    expect(n).toBe(10);
    expect(n).toBeLessThan(16);
  });
});

describe('onResume', () => {
  const notCounted: State[] = ['idle', 'deferred', 'reboot-deferred', ...TERMINAL_STATES];
  const counted = STATES.filter((s) => !notCounted.includes(s));

  it('counts exactly the non-waiting, non-terminal states', () => {
    expect([...counted].sort()).toEqual(['accepted', 'committing', 'downloading', 'installing', 'rebooting', 'reverting', 'rolling-back', 'verifying']);
  });

  it.each(notCounted)('%s never counts', (s) => {
    const rec = deepFreeze(record(s, { resumes: 50 }));
    const d = onResume(rec, 3);
    expect(d.action).toBe('continue');
    expect(d.record.resumes).toBe(50);
  });

  it.each(counted)('%s counts up and past maxResumes asks for LOOP_DETECTED', (s) => {
    let rec = deepFreeze(record(s));
    for (let i = 1; i <= 3; i++) {
      const d = onResume(rec, 3);
      expect(d.action).toBe('continue');
      expect(d.record.resumes).toBe(i);
      rec = deepFreeze(d.record);
    }
    const d = onResume(rec, 3);
    expect(d.action).toBe('loop');
    if (d.action !== 'loop') return;
    expect(d.record.resumes).toBe(4);
    expect(d.event).toMatchObject({ type: 'LOOP_DETECTED', reason: 'RESUME_BUDGET_EXHAUSTED' });
    expect(d.event.message).toContain(s);
  });

  it('the loop event from verifying reverts the new slot', () => {
    const d = onResume(record('verifying', { resumes: 5 }), 5);
    expect(d.action).toBe('loop');
    if (d.action !== 'loop') return;
    const r = must(d.record, d.event);
    expect(r.state).toBe('reverting');
    expect(r.cause?.reason).toBe('RESUME_BUDGET_EXHAUSTED');
    expect(must(r, { type: 'BOOTED_OLD' }).outcome).toMatchObject({ result: 'reverted', reason: 'RESUME_BUDGET_EXHAUSTED' });
  });

  it('the loop event from downloading fails the update', () => {
    const d = onResume(record('downloading', { resumes: 5 }), 5);
    expect(d.action).toBe('loop');
    if (d.action !== 'loop') return;
    const r = must(d.record, d.event);
    expect(r.state).toBe('failed');
    expect(r.outcome).toMatchObject({ result: 'failed', reason: 'RESUME_BUDGET_EXHAUSTED' });
    expect(r.resumes).toBe(0);
  });

  it('does not mutate the persisted record', () => {
    const rec = deepFreeze(record('installing', { resumes: 1 }));
    const d = onResume(rec, 5);
    expect(rec.resumes).toBe(1);
    expect(d.record).not.toBe(rec);
  });
});

describe('purity', () => {
  it('step does not mutate a frozen input record, legal or not', () => {
    const checks = failingVerdict();
    const rec = deepFreeze(record('verifying', { checks: passingVerdict(), cause: { reason: 'STATE_LOOP', message: 'x' }, deferredUntil: '2026-03-12T02:00:00.000Z' }));
    const snapshot = structuredClone(rec);
    const r = step(rec, { type: 'CHECKS_FAILED', reason: 'HEALTH_CHECK_FAILED', message: 'app-up failed', checks, newSlot: 'b', oldSlot: 'a' }, CTX);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.record).not.toBe(rec);
    expect(rec).toEqual(snapshot);
    expect(step(rec, { type: 'ACCEPT' }, CTX).ok).toBe(false);
    expect(step(rec, { type: 'MARKED_GOOD' }, { ...CTX, maxTransitions: 1 }).ok).toBe(true);
    expect(rec).toEqual(snapshot);
  });

  it('the same input gives the same output', () => {
    const rec = deepFreeze(record('rebooting'));
    expect(step(rec, { type: 'BOOTED_OLD' }, CTX)).toEqual(step(rec, { type: 'BOOTED_OLD' }, CTX));
  });
});
