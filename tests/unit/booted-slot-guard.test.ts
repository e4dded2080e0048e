import { describe, expect, it } from 'vitest';
import { BootedSlotGuard } from '../../src/rauc/booted-slot-guard.js';

const quiet = { warn: () => undefined };
const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  expect(cond()).toBe(true);
};

describe('BootedSlotGuard', () => {
  it('retries while RAUC is busy or not answering, and stops once done', async () => {
    const answers: Array<'busy' | 'done' | Error> = ['busy', new Error('timed out'), 'busy', 'done'];
    let calls = 0;
    const guard = new BootedSlotGuard(async () => {
      const a = answers[calls++] ?? 'done';
      if (a instanceof Error) throw a;
      return a;
    }, quiet, 1);
    guard.arm();
    await until(() => calls === 4 && !guard.armed);
    await new Promise((r) => setTimeout(r, 20));
    expect(calls).toBe(4);
  });

  it('cancel() stops it, and an attempt in progress learns it is no longer wanted', async () => {
    let wantedAfter: boolean | undefined;
    let release!: () => void;
    const guard = new BootedSlotGuard(async (stillWanted) => {
      await new Promise<void>((r) => (release = r));
      wantedAfter = stillWanted();
      return 'busy';
    }, quiet, 1);
    guard.arm();
    await until(() => release !== undefined);
    guard.cancel(); // e.g. a new install starts: it decides the next boot now
    release();
    await until(() => wantedAfter !== undefined);
    expect(wantedAfter).toBe(false);
    expect(guard.armed).toBe(false);
  });
});
