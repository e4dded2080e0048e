// Version ordering, rollout buckets and maintenance windows: the pure decisions behind "is this
// update for me, and may it run now".
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compareVersions } from '../../src/core/version.js';
import { inRollout, rolloutBucket } from '../../src/core/rollout.js';
import { validateWindow, windowState } from '../../src/core/window.js';
import type { MaintenanceWindow } from '../../src/schemas/announcement.js';

describe('compareVersions', () => {
  // [a, b, sign of compareVersions(a, b)]
  const cases: Array<[string, string, -1 | 0 | 1]> = [
    ['1.4.2', '1.4.2', 0],
    ['1.4.3', '1.4.2', 1],
    ['1.5.0', '1.4.99', 1],
    ['2.0.0', '1.99.99', 1],
    ['1.10', '1.9', 1],
    ['1.9', '1.10', -1],
    ['1.10.0', '1.9.9', 1],
    ['2026.11.0.3', '2026.11.0.2', 1],
    ['1.4', '1.4.0', 0],
    ['1', '1.0.0.0', 0],
    ['1.4', '1.4.1', -1],
    ['1.4.0.1', '1.4', 1],
    ['1.5.0-rc.1', '1.5.0', -1],
    ['1.5.0', '1.5.0-rc.1', 1],
    ['1.5.0-rc.1', '1.4.9', 1],
    ['1.5.0-rc.2', '1.5.0-rc.10', -1],
    ['1.5.0-rc.10', '1.5.0-rc.2', 1],
    ['1.5.0-rc.1', '1.5.0-rc.1.1', -1],
    ['1.5.0-alpha', '1.5.0-beta', -1],
    ['1.5.0-1', '1.5.0-alpha', -1],
    ['1.5.0-rc.1', '1.5-rc.1', 0],
    ['1.5.0+build7', '1.5.0', 0],
    ['1.5.0+build7', '1.5.0+build8', 0],
    ['1.5.0-rc.1+build7', '1.5.0-rc.1+other', 0],
    ['1.5.0+build9', '1.5.1+build1', -1],
  ];

  it.each(cases)('compare(%s, %s) has sign %i', (a, b, expected) => {
    expect(Math.sign(compareVersions(a, b))).toBe(expected);
    expect(Math.sign(compareVersions(b, a))).toBe(expected === 0 ? 0 : -expected);
  });

  it('sorts a mixed list like semver', () => {
    const sorted = ['1.10.0', '1.5.0', '1.5.0-rc.10', '1.9.1', '1.5.0-rc.2', '1.5.0-beta', '0.9', '1.5.0+b2'].sort(compareVersions);
    expect(sorted).toEqual(['0.9', '1.5.0-beta', '1.5.0-rc.2', '1.5.0-rc.10', '1.5.0', '1.5.0+b2', '1.9.1', '1.10.0']);
  });
});

describe('rolloutBucket', () => {
  it('is deterministic and depends on both the device and the announcement', () => {
    expect(rolloutBucket('dev-0001', 'ann-42')).toBe(rolloutBucket('dev-0001', 'ann-42'));
    const devices = Array.from({ length: 50 }, (_, i) => `dev-${i}`);
    expect(new Set(devices.map((d) => rolloutBucket(d, 'ann-42'))).size).toBe(50);
    expect(devices.some((d) => rolloutBucket(d, 'ann-42') !== rolloutBucket(d, 'ann-43'))).toBe(true);
  });

  it('is SHA-256(device + "\\n" + announcement) first 32 bits scaled to [0, 100)', () => {
    const d = createHash('sha256').update('dev-0001\nann-42').digest();
    expect(rolloutBucket('dev-0001', 'ann-42')).toBe((d.readUInt32BE(0) / 2 ** 32) * 100);
  });

  it('is in [0, 100) and roughly uniform over 10,000 devices (each decile 8%..12%)', () => {
    const deciles = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const b = rolloutBucket(`device-${i.toString().padStart(5, '0')}`, 'ann-2026-03-stable');
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(100);
      const k = Math.floor(b / 10);
      deciles[k] = (deciles[k] ?? 0) + 1;
    }
    for (const count of deciles) {
      expect(count).toBeGreaterThanOrEqual(800);
      expect(count).toBeLessThanOrEqual(1200);
    }
    expect(deciles.reduce((a, b) => a + b, 0)).toBe(10_000);
  });
});

describe('inRollout', () => {
  const devices = Array.from({ length: 2000 }, (_, i) => `gw-${i}`);
  const included = (percent: number): Set<string> =>
    new Set(devices.filter((d) => inRollout(d, [], 'ann-42', { percent }).included));

  it('raising percent only adds devices (30% subset of 60%)', () => {
    const at30 = included(30);
    const at60 = included(60);
    for (const d of at30) expect(at60.has(d)).toBe(true);
    expect(at30.size).toBeGreaterThan(2000 * 0.25);
    expect(at30.size).toBeLessThan(2000 * 0.35);
    expect(at60.size).toBeGreaterThan(2000 * 0.55);
    expect(at60.size).toBeLessThan(2000 * 0.65);
    expect(at60.size).toBeGreaterThan(at30.size);
  });

  it('0% takes nobody, 100% takes everybody', () => {
    expect(included(0).size).toBe(0);
    expect(included(100).size).toBe(2000);
  });

  it('includes exactly the devices whose bucket is below percent, and says so', () => {
    const d = inRollout('gw-7', [], 'ann-42', { percent: 50 });
    expect(d.bucket).toBe(rolloutBucket('gw-7', 'ann-42'));
    expect(d.included).toBe(d.bucket < 50);
    expect(d.why).toContain('50%');
    expect(d.why).toContain(d.bucket.toFixed(2));
  });

  it('groups filter: a device outside every rollout group is excluded even at 100%', () => {
    const out = inRollout('gw-1', ['prod', 'eu'], 'ann-42', { percent: 100, groups: ['canary', 'lab'] });
    expect(out.included).toBe(false);
    expect(out.why).toContain('canary');
    expect(out.why).toContain('prod');
    expect(inRollout('gw-1', ['prod', 'lab'], 'ann-42', { percent: 100, groups: ['canary', 'lab'] }).included).toBe(true);
    expect(inRollout('gw-1', [], 'ann-42', { percent: 100, groups: [] }).included).toBe(true);
    expect(inRollout('gw-1', [], 'ann-42', { percent: 100, groups: ['lab'] }).included).toBe(false);
  });

  it('groups and percent combine: a group member still needs a bucket below percent', () => {
    const members = devices.filter((d) => inRollout(d, ['lab'], 'ann-42', { percent: 30, groups: ['lab'] }).included);
    expect(new Set(members)).toEqual(included(30));
  });
});

describe('windowState', () => {
  const win = (timezone: string): MaintenanceWindow => ({ cron: '0 2 * * *', durationMinutes: 60, timezone, applies: 'install' });

  describe('UTC, 02:00 for 60 minutes', () => {
    it('is open at 02:30 and says when it closes', () => {
      expect(windowState(win('UTC'), new Date('2026-03-10T02:30:00Z'))).toEqual({ open: true, until: new Date('2026-03-10T03:00:00Z') });
    });
    it('is open at exactly 02:00', () => {
      expect(windowState(win('UTC'), new Date('2026-03-10T02:00:00Z'))).toEqual({ open: true, until: new Date('2026-03-10T03:00:00Z') });
    });
    it('is closed at 03:30 and opens next at 02:00 the next day', () => {
      expect(windowState(win('UTC'), new Date('2026-03-10T03:30:00Z'))).toEqual({ open: false, until: new Date('2026-03-11T02:00:00Z') });
    });
    it('is closed at 01:59 and opens at 02:00 the same day', () => {
      expect(windowState(win('UTC'), new Date('2026-03-10T01:59:30Z'))).toEqual({ open: false, until: new Date('2026-03-10T02:00:00Z') });
    });
    it('is closed at exactly 03:00 (the closing instant)', () => {
      expect(windowState(win('UTC'), new Date('2026-03-10T03:00:00Z'))).toEqual({ open: false, until: new Date('2026-03-11T02:00:00Z') });
    });
  });

  describe('Europe/Berlin, 02:00 local for 60 minutes', () => {
    it('winter (CET, UTC+1): open at 02:30 local, closes at 03:00 local', () => {
      expect(windowState(win('Europe/Berlin'), new Date('2026-01-15T01:30:00Z'))).toEqual({ open: true, until: new Date('2026-01-15T02:00:00Z') });
    });
    it('winter: closed at 03:30 local, opens next day 02:00 local = 01:00Z', () => {
      expect(windowState(win('Europe/Berlin'), new Date('2026-01-15T02:30:00Z'))).toEqual({ open: false, until: new Date('2026-01-16T01:00:00Z') });
    });
    it('summer (CEST, UTC+2): open at 02:30 local, closes at 03:00 local', () => {
      expect(windowState(win('Europe/Berlin'), new Date('2026-07-15T00:30:00Z'))).toEqual({ open: true, until: new Date('2026-07-15T01:00:00Z') });
    });
    it('summer: closed at 03:30 local, opens next day 02:00 local = 00:00Z', () => {
      expect(windowState(win('Europe/Berlin'), new Date('2026-07-15T01:30:00Z'))).toEqual({ open: false, until: new Date('2026-07-16T00:00:00Z') });
    });
    it('02:30 UTC is not 02:30 in Berlin: the time zone is honoured', () => {
      expect(windowState(win('Europe/Berlin'), new Date('2026-07-15T02:30:00Z')).open).toBe(false);
      expect(windowState(win('UTC'), new Date('2026-07-15T02:30:00Z')).open).toBe(true);
    });
  });
});

describe('validateWindow', () => {
  const base: MaintenanceWindow = { cron: '0 2 * * *', durationMinutes: 60, timezone: 'UTC', applies: 'install' };

  it('accepts a 5-field cron in a known zone', () => {
    expect(validateWindow(base)).toBeNull();
    expect(validateWindow({ ...base, timezone: 'Europe/Berlin' })).toBeNull();
    expect(validateWindow({ ...base, cron: '30 1 * * 1-5' })).toBeNull();
  });

  it('rejects a bad cron expression and quotes it', () => {
    const hour = validateWindow({ ...base, cron: '0 25 * * *' });
    expect(hour).toMatch(/invalid cron "0 25 \* \* \*"/);
    const junk = validateWindow({ ...base, cron: 'every night' });
    expect(junk).toContain('"every night"');
  });

  it('rejects a 6-field (seconds) cron', () => {
    const r = validateWindow({ ...base, cron: '0 0 2 * * *' });
    expect(r).toContain('"0 0 2 * * *"');
    expect(r).toContain('5 fields');
  });

  it('rejects an unknown time zone and names it', () => {
    expect(validateWindow({ ...base, timezone: 'Mars/Olympus_Mons' })).toBe('unknown time zone "Mars/Olympus_Mons"');
  });
});
