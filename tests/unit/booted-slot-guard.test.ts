import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BootedSlotGuard, type GuardAttempt } from '../../src/rauc/booted-slot-guard.js';
import { GuardMarker } from '../../src/rauc/guard-marker.js';

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

// The guard recorded on disk (GuardMarker, a real file in a temp dir): an agent restarted while RAUC
// is still busy resumes it. Each `new BootedSlotGuard` over the same file plays a new agent process.
describe('BootedSlotGuard on disk', () => {
  const setup = () => {
    const dir = mkdtempSync(join(tmpdir(), 'ota-guard-'));
    const bootIdFile = join(dir, 'boot_id');
    writeFileSync(bootIdFile, 'boot-1\n');
    const markerPath = join(dir, 'downloads', 'keep-booted-slot.json');
    return { bootIdFile, markerPath, marker: () => new GuardMarker(markerPath, bootIdFile) };
  };
  /** An attempt that answers 'busy' until `idle` is set, then 'done'; counts its calls. */
  const rauc = (): { idle: boolean; calls: number; attempt: GuardAttempt } => {
    const r: { idle: boolean; calls: number; attempt: GuardAttempt } = {
      idle: false,
      calls: 0,
      attempt: async () => {
        r.calls++;
        return r.idle ? 'done' : 'busy';
      },
    };
    return r;
  };

  it('is on disk while armed (in a directory made 0700) and removed once done', async () => {
    const { markerPath, marker } = setup();
    const r = rauc();
    const guard = new BootedSlotGuard(r.attempt, quiet, 1, 60_000, marker());
    guard.record();
    expect(JSON.parse(readFileSync(markerPath, 'utf8'))).toMatchObject({ bootId: 'boot-1' });
    expect(statSync(dirname(markerPath)).mode & 0o777).toBe(0o700);
    guard.arm();
    await until(() => r.calls >= 2);
    expect(existsSync(markerPath)).toBe(true);
    r.idle = true;
    await until(() => !existsSync(markerPath) && !guard.armed);
    expect(existsSync(`${markerPath}.tmp`)).toBe(false);
  });

  it('a restarted agent on the same boot resumes it (stop() keeps the record); cancel() removes it', async () => {
    const { markerPath, marker } = setup();
    const first = rauc();
    const dying = new BootedSlotGuard(first.attempt, quiet, 1, 60_000, marker());
    dying.record();
    dying.arm();
    dying.stop(); // the agent stops (or is killed: nothing runs at all)
    expect(existsSync(markerPath)).toBe(true);
    const r = rauc();
    const restarted = new BootedSlotGuard(r.attempt, quiet, 1, 60_000, marker());
    expect(restarted.resume()).toBe(true);
    await until(() => r.calls >= 3);
    expect(existsSync(markerPath)).toBe(true); // RAUC still busy: still recorded
    restarted.cancel(); // e.g. the next install
    expect(existsSync(markerPath)).toBe(false);
    expect(new BootedSlotGuard(rauc().attempt, quiet, 1, 60_000, marker()).resume()).toBe(false);
  });

  it('a record from an earlier boot is removed, not resumed; a restart does not extend the give-up time', () => {
    const { bootIdFile, markerPath, marker } = setup();
    new BootedSlotGuard(rauc().attempt, quiet, 1, 60_000, marker()).record();
    const until = (JSON.parse(readFileSync(markerPath, 'utf8')) as { until: number }).until;
    expect(until).toBeGreaterThan(Date.now());
    // Same boot, a guard that has run out meanwhile: removed.
    writeFileSync(markerPath, JSON.stringify({ bootId: 'boot-1', until: Date.now() - 1 }));
    const expired = rauc();
    expect(new BootedSlotGuard(expired.attempt, quiet, 1, 60_000, marker()).resume()).toBe(false);
    expect(existsSync(markerPath)).toBe(false);
    // A reboot since: RAUC's install ended with it.
    new BootedSlotGuard(rauc().attempt, quiet, 1, 60_000, marker()).record();
    writeFileSync(bootIdFile, 'boot-2\n');
    const r = rauc();
    expect(new BootedSlotGuard(r.attempt, quiet, 1, 60_000, marker()).resume()).toBe(false);
    expect(existsSync(markerPath)).toBe(false);
    expect(r.calls).toBe(0);
  });

  it('a record it cannot parse counts as armed (the safe side)', async () => {
    const { markerPath, marker } = setup();
    new BootedSlotGuard(rauc().attempt, quiet, 1, 60_000, marker()).record();
    writeFileSync(markerPath, 'not json');
    const r = rauc();
    r.idle = true;
    const guard = new BootedSlotGuard(r.attempt, quiet, 1, 60_000, marker());
    expect(guard.resume()).toBe(true);
    await until(() => r.calls === 1 && !existsSync(markerPath));
  });

  it('cannot write the record: still guards in memory, with a warning', async () => {
    const { bootIdFile } = setup();
    const warnings: string[] = [];
    const r = rauc();
    // The marker's directory is a file: mkdir fails.
    const guard = new BootedSlotGuard(r.attempt, { warn: (_o, m) => void warnings.push(m) }, 1, 60_000, new GuardMarker(join(bootIdFile, 'x', 'm.json'), bootIdFile));
    guard.record();
    guard.arm();
    r.idle = true;
    await until(() => r.calls >= 1 && !guard.armed);
    expect(warnings).toContain('cannot record the booted-slot guard on disk');
  });
});
