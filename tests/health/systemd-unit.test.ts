// `systemd-unit` checks against a systemd STAND-IN (tests/helpers/systemd-unit-standin.ts: GetUnit
// and the Unit's ActiveState on a private dbus-daemon started here) — real D-Bus, real wire
// protocol, not systemd. A missing dbus-daemon fails this file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSystemdUnitAttempt, SystemdUnitCheckSpec } from '../../src/health/index.js';
import { PrivateBus, SystemdUnitStandin, unitObjectPath } from '../helpers/systemd-unit-standin.js';
import { runOne } from './helpers.js';

let bus: PrivateBus;
let systemd: SystemdUnitStandin;

beforeAll(async () => {
  bus = await PrivateBus.start();
  systemd = await SystemdUnitStandin.start(bus.address);
});
afterAll(async () => {
  systemd?.close();
  await bus?.stop();
});

const check = (unit: string, extra: Record<string, unknown> = {}) => ({ kind: 'systemd-unit', name: 'unit', unit, busAddress: bus.address, ...extra }) as const;

describe('systemd-unit checks (stand-in systemd on a private bus)', () => {
  it('escapes unit names into object paths like systemd', () => {
    expect(unitObjectPath('nginx.service')).toBe('/org/freedesktop/systemd1/unit/nginx_2eservice');
    expect(unitObjectPath('getty@tty1.service')).toBe('/org/freedesktop/systemd1/unit/getty_40tty1_2eservice');
  });

  it('passes when ActiveState is active', async () => {
    systemd.setUnit('app.service', 'active');
    const result = await runOne(check('app.service'));
    expect(result).toMatchObject({ passed: true, attempts: 1, kind: 'systemd-unit', outputTail: 'app.service: ActiveState=active' });
  });

  it('fails on any other ActiveState and reports the SubState', async () => {
    systemd.setUnit('crashed.service', 'failed', 'failed');
    const result = await runOne(check('crashed.service'));
    expect(result.passed).toBe(false);
    expect(result.error).toBe('unit crashed.service is failed, expected active');
    expect(result.outputTail).toBe('crashed.service: ActiveState=failed SubState=failed');
  });

  it('fails on a unit systemd has not loaded (NoSuchUnit)', async () => {
    const result = await runOne(check('missing.service'));
    expect(result.passed).toBe(false);
    expect(result.error).toContain('org.freedesktop.systemd1.NoSuchUnit');
    expect(result.error).toContain('missing.service');
  });

  it('retries until the unit is active', async () => {
    systemd.setUnit('slow.service', 'activating', 'start');
    const before = systemd.getUnitCalls.filter((u) => u === 'slow.service').length;
    const timer = setTimeout(() => systemd.setUnit('slow.service', 'active'), 150);
    try {
      const result = await runOne(check('slow.service', { retries: 10, intervalMs: 100 }));
      expect(result.passed).toBe(true);
      expect(result.attempts).toBeGreaterThan(1);
      expect(systemd.getUnitCalls.filter((u) => u === 'slow.service').length - before).toBe(result.attempts);
    } finally {
      clearTimeout(timer);
    }
  });

  it('times out when systemd does not answer', async () => {
    systemd.setUnit('hung.service', 'active');
    systemd.getUnitDelayMs = 2_000;
    try {
      const started = Date.now();
      const result = await runOne(check('hung.service', { timeoutMs: 300, retries: 1, intervalMs: 0 }));
      expect(result).toMatchObject({ passed: false, attempts: 2, error: 'timed out after 300 ms' });
      expect(Date.now() - started).toBeLessThan(1_500);
    } finally {
      systemd.getUnitDelayMs = 0;
    }
  });

  it('fails when nobody owns org.freedesktop.systemd1 on the bus', async () => {
    const other = await PrivateBus.start();
    try {
      const result = await runOne({ kind: 'systemd-unit', name: 'u', unit: 'app.service', busAddress: other.address });
      expect(result.passed).toBe(false);
      expect(result.error).toMatch(/ServiceUnknown|not provided/);
    } finally {
      await other.stop();
    }
  });

  it('fails when the bus is not there', async () => {
    const result = await runOne({ kind: 'systemd-unit', name: 'u', unit: 'app.service', busAddress: 'unix:path=/nonexistent/ota-test-bus.sock', timeoutMs: 2_000 });
    expect(result.passed).toBe(false);
    expect(result.error).toMatch(/ENOENT|connect/);
  });

  it('fails without a D-Bus call when already aborted', async () => {
    const calls = systemd.getUnitCalls.length;
    const spec = SystemdUnitCheckSpec.parse(check('app.service'));
    expect(await runSystemdUnitAttempt(spec, AbortSignal.abort())).toMatchObject({ passed: false, error: 'aborted' });
    expect(systemd.getUnitCalls.length).toBe(calls);
  });

  it('rejects unit names without a type and bad bus addresses', () => {
    expect(SystemdUnitCheckSpec.safeParse({ kind: 'systemd-unit', name: 'u', unit: 'nginx' }).success).toBe(false);
    expect(SystemdUnitCheckSpec.safeParse({ kind: 'systemd-unit', name: 'u', unit: 'a.service', busAddress: '/run/dbus/sock' }).success).toBe(false);
    expect(SystemdUnitCheckSpec.parse({ kind: 'systemd-unit', name: 'u', unit: 'getty@tty1.service' }).busAddress).toBeUndefined();
  });
});
